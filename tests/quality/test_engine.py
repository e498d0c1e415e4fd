"""The engine end to end against the fake provider as judge: sampling, guards, SPC, signals, flags."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.registry import CollectorRegistry

from llmpulse.contract.attributes import UNKNOWN_SERVICE
from llmpulse.contract.sampling import is_sampled_bytes
from llmpulse.processor.quality.charts import QualityCharts
from llmpulse.processor.quality.engine import QualityEngine
from llmpulse.processor.quality.judge import LLMJudge
from llmpulse.processor.quality.settings import (
    FeatureRules,
    JudgeSettings,
    QualityConfigError,
    QualitySettings,
    SpcSettings,
)
from llmpulse.processor.quality.status import quality_status
from llmpulse.processor.quality.store import FlaggedStore
from llmpulse.processor.quality.types import EvaluationRecord, FeedbackEvent, QualitySample
from llmpulse.testing.clock import FakeClock
from llmpulse.testing.fake_provider import FakeProvider, FakeReply, RecordedRequest

GOOD = '{"correctness": 5, "completeness": 4, "tone": 5, "explanation": "Right."}'
BAD = '{"correctness": 1, "completeness": 2, "tone": 4, "explanation": "Wrong product."}'
Factory = Callable[..., QualitySample]
Sleep = Callable[[float], Awaitable[None]]


START = 1_764_000_000.0  # where the engine's clock starts: the samples' timestamps (conftest)


MakeEngine = Callable[..., QualityEngine]


@pytest.fixture
def make_engine(
    tmp_path: Path, judge_settings: JudgeSettings, fake_sleep: Sleep, judge_client: httpx.AsyncClient
) -> MakeEngine:
    """Engines on a store in ``tmp_path`` judged by the fake provider; keywords go to QualitySettings.

    ``registry``, ``judge`` (JudgeSettings), ``clock``, ``sink`` and ``db`` are taken out first.
    """

    def make(
        registry: CollectorRegistry | None = None,
        *,
        judge: JudgeSettings | None = None,
        clock: FakeClock | None = None,
        sink: Callable[[EvaluationRecord], None] | None = None,
        db: str = "quality.db",
        **settings: Any,
    ) -> QualityEngine:
        qs = QualitySettings(judge=judge or judge_settings, db_path=str(tmp_path / db), **settings)
        clock = clock or FakeClock(START)
        return QualityEngine(
            qs,
            registry=registry if registry is not None else CollectorRegistry(),
            judge=LLMJudge(qs.judge, sleep=fake_sleep, client=judge_client),
            evaluation_sink=sink,
            clock=clock,
            monotonic=clock,
            tick_s=3600.0,
        )

    return make


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    if "feature" in labels:  # the samples here come from the default service
        labels = {"service": UNKNOWN_SERVICE, **labels}
    value = registry.get_sample_value(name, labels)
    assert value is not None, f"{name}{labels} not exported"
    return value


async def test_sampling_rate_and_determinism(
    make_engine: MakeEngine, registry: CollectorRegistry, provider: FakeProvider, sample_factory: Factory
) -> None:
    provider.set_default(FakeReply(text=GOOD))
    samples = [sample_factory(feature="support") for _ in range(400)] + [
        sample_factory(feature="search") for _ in range(400)
    ]
    judged: list[list[bytes]] = []
    for run in range(2):
        records: list[EvaluationRecord] = []
        engine = make_engine(
            sink=records.append,
            db=f"run{run}.db",
            judge_rate=0.2,
            features={"search": FeatureRules(judge_rate=0.05)},
        )
        await engine.start()
        for sample in samples:
            engine.observe(sample)
        await engine.drain(timeout=30)
        await engine.stop()
        judged.append(sorted({r.trace_id for r in records}))
    # The same trace ids give the same decisions, and the ones the instrumentation's sampler gives.
    assert judged[0] == judged[1]
    expected = sorted(
        s.trace_id for s in samples if is_sampled_bytes(s.trace_id, 0.2 if s.feature == "support" else 0.05)
    )
    assert judged[0] == expected
    support = sum(1 for s in samples[:400] if s.trace_id in set(expected))
    search = len(expected) - support
    assert 0.15 * 400 <= support <= 0.25 * 400
    assert 0.02 * 400 <= search <= 0.08 * 400


async def test_verdicts_become_metrics_flags_and_evaluation_records(
    make_engine: MakeEngine, registry: CollectorRegistry, provider: FakeProvider, sample_factory: Factory
) -> None:
    provider.enqueue(FakeReply(text=GOOD, input_tokens=100, output_tokens=20), FakeReply(text=BAD))
    records: list[EvaluationRecord] = []
    engine = make_engine(registry, sink=records.append, audit_rate=0.0)
    await engine.start()
    good, bad = sample_factory(), sample_factory(output_text="Buy the Acme router instead.")
    assert await engine.judge_one(good) is not None
    assert await engine.judge_one(bad) is not None
    await engine.stop()
    assert _value(registry, "llmpulse_judge_verdicts_total", feature="support") == 2
    assert _value(registry, "llmpulse_judge_score_count", feature="support", dimension="correctness") == 2
    assert (
        _value(registry, "llmpulse_judge_score_bucket", feature="support", dimension="correctness", le="1.0")
        == 1
    )
    assert _value(registry, "llmpulse_quality_flagged_total", feature="support", source="judge") == 1
    assert _value(registry, "llmpulse_judge_tokens_total", token_type="input") >= 100
    assert _value(registry, "llmpulse_judge_cost_usd_total") > 0
    failing = [r for r in records if r.label == "fail"]
    assert {r.name for r in failing} == {"correctness", "completeness"}
    assert failing[0].attributes == {
        "gen_ai.evaluation.name": failing[0].name,
        "gen_ai.evaluation.score.value": failing[0].score,
        "gen_ai.evaluation.score.label": "fail",
        "gen_ai.evaluation.explanation": "Wrong product.",
        "gen_ai.response.id": bad.response_id,
    }
    store = FlaggedStore(engine.settings.db_path)
    [stored] = store.query()
    assert stored.record.trace_id == bad.trace_id
    assert stored.record.reasons == ("low_overall", "low_correctness", "low_completeness")
    assert stored.record.judge_verdict == "bad"
    assert stored.record.output == "Buy the Acme router instead."
    store.close()


async def test_unparseable_twice_is_a_judge_error_and_no_score(
    make_engine: MakeEngine, registry: CollectorRegistry, provider: FakeProvider, sample_factory: Factory
) -> None:
    provider.set_default(FakeReply(text="The answer looks fine to me."))
    engine = make_engine(registry)
    assert await engine.judge_one(sample_factory()) is None
    await engine.stop()
    assert _value(registry, "llmpulse_judge_errors_total", feature="support", reason="unparseable") == 1
    assert _value(registry, "llmpulse_judge_verdicts_total", feature="support") == 0
    assert (
        registry.get_sample_value("llmpulse_judge_score_count", {"feature": "support", "dimension": "tone"})
        is None
    )
    assert len(provider.requests) == 2


async def test_daily_budget_caps_the_spend_and_renews_the_next_day(
    make_engine: MakeEngine,
    registry: CollectorRegistry,
    provider: FakeProvider,
    judge_settings: JudgeSettings,
    sample_factory: Factory,
) -> None:
    provider.set_default(FakeReply(text=GOOD, input_tokens=600, output_tokens=50))
    clock = FakeClock(START)
    budgeted = _replace(judge_settings, daily_token_budget=1500, daily_usd_budget=1.0)
    engine = make_engine(registry, judge=budgeted, clock=clock)
    results = [await engine.judge_one(sample_factory()) for _ in range(5)]
    assert [r is not None for r in results] == [True, True, True, False, False]  # 650 tokens a call
    assert _value(registry, "llmpulse_judge_dropped_total", feature="support", reason="budget") == 2
    clock.now += 86400
    assert await engine.judge_one(sample_factory()) is not None
    # The USD budget caps too: gpt-4o-mini at 600/50 tokens costs 0.00012 USD a call.
    usd = make_engine(judge=_replace(judge_settings, daily_usd_budget=0.0002), db="usd.db")
    assert [await usd.judge_one(sample_factory()) is not None for _ in range(3)] == [True, True, False]
    await engine.stop()
    await usd.stop()


def _replace(settings: JudgeSettings, **changes: object) -> JudgeSettings:
    import dataclasses

    return dataclasses.replace(settings, **changes)


async def test_circuit_breaker_opens_then_half_opens_after_the_cooldown(
    make_engine: MakeEngine,
    registry: CollectorRegistry,
    provider: FakeProvider,
    judge_settings: JudgeSettings,
    sample_factory: Factory,
) -> None:
    provider.set_default(FakeReply(status=500))
    clock = FakeClock(START)
    js = _replace(judge_settings, max_retries=0, breaker_failures=3, breaker_cooldown_s=60.0)
    engine = make_engine(registry, judge=js, clock=clock)
    for _ in range(6):
        await engine.judge_one(sample_factory())
    assert len(provider.requests) == 3
    assert _value(registry, "llmpulse_judge_errors_total", feature="support", reason="http") == 3
    assert _value(registry, "llmpulse_judge_dropped_total", feature="support", reason="circuit_open") == 3
    assert _value(registry, "llmpulse_judge_circuit_open") == 1
    clock.now += 61
    provider.set_default(FakeReply(text=GOOD))
    assert await engine.judge_one(sample_factory()) is not None  # the half-open trial closes it
    assert _value(registry, "llmpulse_judge_circuit_open") == 0
    assert await engine.judge_one(sample_factory()) is not None
    await engine.stop()


async def test_queue_full_samples_are_dropped_and_counted(
    make_engine: MakeEngine,
    registry: CollectorRegistry,
    judge_settings: JudgeSettings,
    sample_factory: Factory,
) -> None:
    engine = make_engine(registry, judge=_replace(judge_settings, queue_size=2), judge_rate=1.0)
    engine._accepting = True  # accepting, but no workers started: the queue only fills
    for _ in range(5):
        engine.observe(sample_factory())
    assert _value(registry, "llmpulse_judge_sampled_total", feature="support") == 5
    assert _value(registry, "llmpulse_judge_dropped_total", feature="support", reason="queue_full") == 3
    assert _value(registry, "llmpulse_judge_queue_samples") == 2
    await engine.stop(timeout=0.01)
    assert _value(registry, "llmpulse_judge_dropped_total", feature="support", reason="shutdown") == 2


def _scores_handler(bad_after: int) -> Callable[[RecordedRequest], FakeReply]:
    """Good verdicts that vary a little, then a quality drop after ``bad_after`` calls."""
    calls = {"n": 0}

    def handler(_: RecordedRequest) -> FakeReply:
        n = calls["n"] = calls["n"] + 1
        if n > bad_after:
            scores = (3, 3, 4) if n % 2 else (2, 3, 4)
        else:
            scores = ((5, 4, 5), (4, 4, 5), (5, 5, 5), (4, 5, 4), (5, 4, 4))[n % 5 if n % 7 else (n // 7) % 5]
        c, m, t = scores
        return FakeReply(
            text=json.dumps({"correctness": c, "completeness": m, "tone": t, "explanation": "x"})
        )

    return handler


@pytest.mark.parametrize("drop", [False, True])
async def test_spc_alarms_on_an_injected_quality_drop_and_not_on_a_stable_stream(
    drop: bool,
    make_engine: MakeEngine,
    registry: CollectorRegistry,
    provider: FakeProvider,
    sample_factory: Factory,
) -> None:
    warmup, per_window, after = 10, 5, 20
    provider.set_handler(_scores_handler(bad_after=warmup * per_window if drop else 10**9))
    engine = make_engine(registry, spc=SpcSettings(warmup_windows=warmup, scores_per_window=per_window))
    labels = {"feature": "support", "statistic": "judge_score"}
    alarms = []
    for window in range(warmup + after):
        for _ in range(per_window):
            await engine.judge_one(sample_factory())
        assert _value(registry, "llmpulse_spc_in_warmup", **labels) == (1 if window < warmup else 0)
        if window >= warmup:
            alarms.append(_value(registry, "llmpulse_spc_alarm", **labels))
    await engine.stop()
    centre = _value(registry, "llmpulse_spc_centre", **labels)
    assert 4.3 < centre < 4.9
    assert (
        _value(registry, "llmpulse_spc_lower", **labels)
        < centre
        < _value(registry, "llmpulse_spc_upper", **labels)
    )
    if drop:
        # within two windows of the drop (limits widened for a 10-window warm-up) and on
        assert alarms[1:] == [1.0] * (after - 1)
        assert _value(registry, "llmpulse_spc_ewma", **labels) < _value(
            registry, "llmpulse_spc_lower", **labels
        )
    else:
        assert set(alarms) == {0.0}


async def test_error_rate_chart_alarms_on_a_burst_of_errors_and_baselines_survive_a_restart(
    make_engine: MakeEngine,
    registry: CollectorRegistry,
    judge_settings: JudgeSettings,
    sample_factory: Factory,
) -> None:
    spc = SpcSettings(warmup_windows=5, requests_per_window=20)
    engine = make_engine(registry, spc=spc, judge_rate=0.0)
    await engine.start()
    for i in range(5 * 20):  # warm-up: 1 or 2 errors per window of 20
        engine.observe(sample_factory(error_type="APIError" if i % 20 in (0, 7 * (i // 40)) else None))
    labels = {"feature": "support", "statistic": "error_rate"}
    assert _value(registry, "llmpulse_spc_in_warmup", **labels) == 1  # the 5th point completes the warm-up
    baseline = engine.charts.chart(UNKNOWN_SERVICE, "support", "error_rate").baseline
    assert baseline is not None and baseline.n == 5
    await engine.stop()
    # A restart restores the baseline from the store; a burst of errors then alarms at once.
    registry2 = CollectorRegistry()
    engine2 = make_engine(registry2, spc=spc, judge_rate=0.0)
    await engine2.start()
    assert engine2.charts.chart(UNKNOWN_SERVICE, "support", "error_rate").baseline == baseline
    for i in range(20):
        engine2.observe(sample_factory(error_type="APIError" if i % 2 else None))
    assert _value(registry2, "llmpulse_spc_alarm", **labels) == 1
    assert _value(registry2, "llmpulse_spc_value", **labels) == 0.5
    # `llmpulse spc reset` asks the running engine to forget the baseline.
    engine2.chart_store.request_reset("support")
    await engine2.tick()
    assert engine2.charts.chart(UNKNOWN_SERVICE, "support", "error_rate").in_warmup
    assert registry2.get_sample_value("llmpulse_spc_alarm", labels) is None
    await engine2.stop()
    restarted = make_engine(spc=spc)
    await restarted.start()
    assert restarted.charts.chart(UNKNOWN_SERVICE, "support", "error_rate").in_warmup
    await restarted.stop()


def test_saved_charts_with_other_parameters_are_learnt_again(sample_factory: Factory) -> None:
    old = SpcSettings(warmup_windows=3, requests_per_window=2)
    charts = QualityCharts(old)
    for i in range(8):
        charts.observe_call(sample_factory(duration_s=1.0 + i / 10), refused=False)
    saved = charts.take_dirty()
    assert (
        QualityCharts(old).chart(UNKNOWN_SERVICE, "support", "latency_p95_seconds").in_warmup
    )  # nothing loaded yet
    same = QualityCharts(old)
    same.load(saved)
    assert same.chart(UNKNOWN_SERVICE, "support", "latency_p95_seconds").baseline is not None
    changed = QualityCharts(SpcSettings(lambda_=0.2, L=2.962, warmup_windows=3, requests_per_window=2))
    changed.load(saved)
    assert changed.chart(UNKNOWN_SERVICE, "support", "latency_p95_seconds").in_warmup
    assert (
        UNKNOWN_SERVICE,
        "support",
        "latency_p95_seconds",
    ) in changed.take_dirty()  # the stale snapshot is overwritten


def test_a_quiet_feature_charts_with_its_own_window_size(sample_factory: Factory) -> None:
    spc = SpcSettings(warmup_windows=3, requests_per_window=100)
    settings = QualitySettings.from_dict(
        {"spc": {"warmup_windows": 3}, "features": {"quiet": {"requests_per_window": 5}}}
    )
    assert settings.features["quiet"].requests_per_window == 5
    charts = QualityCharts(spc, window_sizes={"quiet": 5})
    for _ in range(5):
        charts.observe_call(sample_factory(feature="quiet", duration_s=1.0), refused=False)
        charts.observe_call(sample_factory(duration_s=1.0), refused=False)
    states = charts.states()
    assert states[(UNKNOWN_SERVICE, "quiet", "error_rate")] is not None  # one point after 5 calls
    assert (UNKNOWN_SERVICE, "support", "error_rate") not in states  # the default feature needs 100
    assert charts.chart(UNKNOWN_SERVICE, "quiet", "error_rate").sigma_floor == pytest.approx(1 / 5)
    assert charts.chart(UNKNOWN_SERVICE, "support", "error_rate").sigma_floor == pytest.approx(1 / 100)
    # a baseline learnt with another window size is not reused
    saved = charts.take_dirty()
    resized = QualityCharts(spc, window_sizes={"quiet": 10})
    resized.load(saved)
    assert resized.chart(UNKNOWN_SERVICE, "quiet", "error_rate").in_warmup
    assert (UNKNOWN_SERVICE, "quiet", "error_rate") in resized.take_dirty()
    with pytest.raises(QualityConfigError, match="requests_per_window"):
        QualitySettings.from_dict({"features": {"quiet": {"requests_per_window": 1}}})


async def test_check_flags_are_stored_at_a_bounded_rate_per_feature(
    make_engine: MakeEngine, registry: CollectorRegistry, sample_factory: Factory
) -> None:
    """An outage that fails every call counts every call but stores a few per minute."""
    clock = FakeClock(START)
    engine = make_engine(registry, judge_rate=0.0, clock=clock, check_samples_per_minute=2)
    await engine.start()
    truncated = {"finish_reason": "length", "output_text": "The steps are"}
    for _ in range(5):
        engine.observe(sample_factory(**truncated))
    engine.observe(sample_factory(feature="billing", **truncated))  # its own quota
    clock.now += 60.0
    engine.observe(sample_factory(**truncated))
    await engine.drain(timeout=10)
    assert _value(registry, "llmpulse_quality_flagged_total", feature="support", source="check") == 6
    assert _value(registry, "llmpulse_quality_flagged_store_dropped_total", reason="rate_limited") == 3
    assert _value(registry, "llmpulse_quality_flagged_store_dropped_total", reason="queue_full") == 0
    stored = [s.record.feature for s in engine.store.query(limit=None)]
    assert sorted(stored) == ["billing", "support", "support", "support"]
    await engine.stop()


async def test_ticks_apply_retention_every_ten_minutes(
    make_engine: MakeEngine, registry: CollectorRegistry, sample_factory: Factory
) -> None:
    clock = FakeClock(START)
    engine = make_engine(registry, judge_rate=0.0, clock=clock, retention_rows=2)
    await engine.start()
    truncated = {"finish_reason": "length", "output_text": "The steps are"}

    async def flag(n: int) -> None:
        for _ in range(n):
            engine.observe(sample_factory(**truncated))
        await engine.drain(timeout=10)

    await flag(4)
    await engine.tick()
    assert engine.store.count() == 2
    await flag(3)
    clock.now += 599.0
    await engine.tick()
    assert engine.store.count() == 5  # not yet
    clock.now += 1.0
    await engine.tick()
    assert engine.store.count() == 2
    await engine.stop()


async def test_check_failures_are_counted_and_flagged(
    make_engine: MakeEngine,
    registry: CollectorRegistry,
    judge_settings: JudgeSettings,
    sample_factory: Factory,
) -> None:
    engine = make_engine(registry, judge_rate=0.0)
    await engine.start()
    assert engine.observe(sample_factory(output_text="  ")) == ["empty_output"]
    assert engine.observe(sample_factory(finish_reason="length", output_text="The steps are")) == [
        "truncated"
    ]
    assert engine.observe(sample_factory(input_tokens=125_000)) == ["near_context_limit"]
    engine.observe(sample_factory())
    await engine.drain(timeout=10)
    assert _value(registry, "llmpulse_quality_checked_total", feature="support") == 4
    assert (
        _value(registry, "llmpulse_quality_check_failures_total", feature="support", check="empty_output")
        == 1
    )
    assert (
        _value(registry, "llmpulse_quality_check_failures_total", feature="support", check="truncated") == 1
    )
    assert (
        _value(
            registry, "llmpulse_quality_check_failures_total", feature="support", check="near_context_limit"
        )
        == 1
    )
    assert _value(registry, "llmpulse_quality_flagged_total", feature="support", source="check") == 2
    assert sorted(s.record.reasons for s in engine.store.query()) == [("empty_output",), ("truncated",)]
    await engine.stop()


async def test_survivorship_gauge_and_negative_feedback_flags_the_answer(
    make_engine: MakeEngine,
    registry: CollectorRegistry,
    judge_settings: JudgeSettings,
    sample_factory: Factory,
) -> None:
    engine = make_engine(registry, judge_rate=0.0)
    await engine.start()
    answers = [sample_factory(feature="chat") for _ in range(100)] + [
        sample_factory(feature="faq") for _ in range(100)
    ]
    for sample in answers:
        engine.observe(sample)
    # chat: 40% abandon, the 5 who click are all happy -> survivorship risk.
    for sample in answers[:40]:  # the processor calls abandonment negative; it flags nothing
        engine.observe_feedback(
            FeedbackEvent("chat", "abandoned", "negative", response_id=sample.response_id)
        )
    for sample in answers[50:55]:
        engine.observe_feedback(FeedbackEvent("chat", "thumbs", "positive", response_id=sample.response_id))
    # faq: few abandon, half give feedback, mixed -> no risk; one thumbs-down flags its answer.
    for sample in answers[100:103]:
        engine.observe_feedback(FeedbackEvent("faq", "abandoned", "negative", response_id=sample.response_id))
    for i, sample in enumerate(answers[110:160]):
        sentiment = "negative" if i == 0 else "positive" if i % 3 else "neutral"
        engine.observe_feedback(FeedbackEvent("faq", "thumbs", sentiment, response_id=sample.response_id,
                                              comment="wrong steps" if i == 0 else None))  # fmt: skip
    engine.observe_feedback(
        FeedbackEvent("faq", "correction", "negative", response_id=answers[170].response_id)
    )
    engine.observe_feedback(FeedbackEvent("faq", "follow_up", response_id=answers[171].response_id))
    await engine.drain(timeout=10)
    await engine.tick()
    assert _value(registry, "llmpulse_user_survivorship_risk", feature="chat") == 1.0
    assert _value(registry, "llmpulse_user_abandonment_ratio", feature="chat") == 0.4
    assert _value(registry, "llmpulse_user_explicit_coverage_ratio", feature="chat") == 0.05
    assert _value(registry, "llmpulse_user_explicit_positive_ratio", feature="chat") == 1.0
    faq_risk = _value(registry, "llmpulse_user_survivorship_risk", feature="faq")
    assert faq_risk < 0.2
    assert _value(registry, "llmpulse_user_correction_ratio", feature="faq") == 0.01
    assert _value(registry, "llmpulse_user_follow_up_ratio", feature="faq") == 0.01
    assert _value(registry, "llmpulse_quality_flagged_total", feature="faq", source="feedback") == 2
    assert _value(registry, "llmpulse_quality_flagged_total", feature="chat", source="feedback") == 0
    stored = {s.record.response_id: s.record for s in engine.store.query(feature="faq", limit=None)}
    flagged = stored[answers[110].response_id]
    assert flagged.reasons == ("feedback:thumbs",)
    assert flagged.output == answers[110].output_text and flagged.explanation == "user: wrong steps"
    assert stored[answers[170].response_id].reasons == ("feedback:correction",)
    status = json.loads(json.dumps(quality_status(engine), allow_nan=False))
    assert status["services"][UNKNOWN_SERVICE]["chat"]["signals"]["at_risk"] is True
    assert status["services"][UNKNOWN_SERVICE]["faq"]["signals"]["explicit_coverage_ratio"] == 0.5
    assert status["judge"]["queue"] == 0 and status["judge"]["circuit_open"] is False
    js = engine.settings.judge  # what the queue is measured against (LLMPulseJudgeLagging's runbook)
    assert (status["judge"]["queue_size"], status["judge"]["workers"]) == (js.queue_size, js.workers)
    assert status["judge"]["requests_per_second"] == js.requests_per_second
    await engine.stop()


def test_signal_rates_are_nan_without_responses() -> None:
    from llmpulse.processor.quality.settings import SignalSettings
    from llmpulse.processor.quality.user_signals import UserSignals

    snap = UserSignals(SignalSettings()).snapshot((UNKNOWN_SERVICE, "none"))
    assert math.isnan(snap.coverage) and snap.survivorship_risk == 0.0 and not snap.at_risk


async def test_recent_samples_are_bounded_by_bytes_and_evictions_counted(
    make_engine: MakeEngine, registry: CollectorRegistry, sample_factory: Factory
) -> None:
    engine = make_engine(registry, judge_rate=0.0, recent_bytes=1_000_000)
    await engine.start()
    answer = "x" * 100_000
    samples = [sample_factory(output_text=answer, content_bytes=len(answer)) for _ in range(50)]
    for sample in samples:
        engine.observe(sample)
    await engine.drain(timeout=10)
    assert _value(registry, "llmpulse_quality_recent_bytes") == 1_000_000
    assert _value(registry, "llmpulse_quality_recent_evicted_total", reason="bytes") == 40
    assert _value(registry, "llmpulse_quality_recent_evicted_total", reason="count") == 0
    # the newest are kept: late feedback on one of them still flags it with its content
    engine.observe_feedback(
        FeedbackEvent("support", "thumbs", "negative", response_id=samples[-1].response_id)
    )
    await engine.drain(timeout=10)
    [stored] = engine.store.query(feature="support", limit=None)
    assert stored.record.output == answer


@pytest.mark.parametrize("deferred", [False, True])
async def test_failed_calls_are_not_responses_in_the_user_signal_ratios(
    make_engine: MakeEngine, registry: CollectorRegistry, sample_factory: Factory, deferred: bool
) -> None:
    engine = make_engine(registry, judge_rate=0.0)
    await engine.start()
    answered = [sample_factory(feature="chat") for _ in range(10)]
    failed = [
        sample_factory(
            feature="chat", output_text=None, error_type="InternalServerError", finish_reason="error"
        )
        for _ in range(10)
    ]
    for sample in answered + failed:
        engine.observe(sample, defer_counts=deferred)
    engine.flush_counts()
    for sample in answered[:5]:
        engine.observe_feedback(
            FeedbackEvent("chat", "abandoned", "negative", response_id=sample.response_id)
        )
    await engine.tick()
    # 5 of the 10 answers were abandoned; the 10 failed calls answered nobody.
    assert _value(registry, "llmpulse_user_abandonment_ratio", feature="chat") == 0.5
    assert _value(registry, "llmpulse_quality_checked_total", feature="chat") == 20
    await engine.stop()
