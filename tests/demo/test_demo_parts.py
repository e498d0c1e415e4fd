"""The demo's parts on their own: rule compression, the schedule, attribution, the scripted
provider, the journal reader and the plain view. Fast; the full run is in test_demo_run.py."""

from __future__ import annotations

import io
import json
from pathlib import Path

import openai
import pytest

from llmpulse.demo.provider import BAD_ANSWERS, JUDGE_DIMENSIONS, reply_for
from llmpulse.demo.report import DETECTED, MISSED, NO_ENGINE, NO_RULE, attribute, render_table
from llmpulse.demo.rules import (
    alert_rules,
    compress_alertmanager,
    compress_duration,
    compress_rules,
    parse_duration,
)
from llmpulse.demo.scenario import INCIDENTS, ScenarioState, Schedule, read_active
from llmpulse.demo.sources import FiredAlert, read_journal
from llmpulse.demo.view import FeatureRow, PlainView, Snapshot, make_view
from llmpulse.processor.quality.judge import parse_verdict
from llmpulse.testing.fake_provider import FakeProvider


def test_durations_parse_and_compress_with_floors() -> None:
    assert parse_duration("1h30m") == 5400
    assert parse_duration("500ms") == 0.5
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        parse_duration("5 minutes")
    assert compress_duration("1d", 120) == "720s"
    assert compress_duration("5m", 120) == "2s"
    assert compress_duration("5m", 120, floor_s=5) == "5s"


def test_rules_are_compressed_in_ranges_offsets_and_for_only() -> None:
    text = (
        "      - alert: X\n"
        "        expr: rate(a_total[5m]) > 0.05 and quantile_over_time(0.5, b[1d] offset 1h) > 1\n"
        "          and max_over_time(c[30m:1m]) > 0\n"
        "        for: 15m\n"
        "        labels: {severity: warning}\n"
    )
    out = compress_rules(text, 60, min_window_s=6)
    assert "rate(a_total[6s]) > 0.05" in out  # 5s floored to 6s
    assert "b[1440s] offset 60s" in out
    assert "c[30s:1s]" in out
    assert "for: 15s" in out
    assert "0.05" in out and "0.5," in out  # thresholds untouched
    assert compress_rules(text, 1) == text
    # a for: holds a few scrapes (min_for_s); for: 0s stays immediate
    assert "for: 5s" in compress_rules(text.replace("15m", "2m"), 60, min_window_s=6, min_for_s=5)
    assert "for: 1s" in compress_rules(text.replace("15m", "0s"), 60, min_window_s=6, min_for_s=5)


def test_alertmanager_timings_are_compressed() -> None:
    text = "route:\n  group_wait: 30s\n  group_interval: 5m\n  repeat_interval: 4h\n"
    assert compress_alertmanager(text, 60) == (
        "route:\n  group_wait: 1s\n  group_interval: 5s\n  repeat_interval: 240s\n"
    )


def test_alert_rules_are_read_from_the_files_at_call_time(tmp_path: Path) -> None:
    shipped = alert_rules()
    assert shipped["LLMPulseErrorRateHigh"].severity == "critical"
    assert shipped["LLMPulseStepLatencyHigh"].component == "llm"
    extra = tmp_path / "quality.yml"
    extra.write_text(
        "groups:\n  - name: q\n    rules:\n      - alert: LLMPulseQualityRegression\n"
        "        expr: llmpulse_spc_alarm == 1\n        for: 5m\n        labels:\n"
        "          severity: warning\n          component: quality\n"
    )
    found = alert_rules([extra])
    assert set(found) == {"LLMPulseQualityRegression"}
    assert found["LLMPulseQualityRegression"].component == "quality"


def test_schedule_runs_every_incident_once_in_order() -> None:
    schedule = Schedule(speed=60)
    assert [i.key for i in INCIDENTS] == [
        "error_burst",
        "retrieval_slowdown",
        "quality_regression",
        "cost_spike",
        "topic_shift",
        "abandonment_surge",
        "silent_model_change",
        "tool_failure",
        "agent_loop",
        "first_answer_exit",
    ]
    seen: list[str] = []
    t = 0.0
    while t < schedule.duration_s:
        active = schedule.active(t)
        assert len(active) <= 1, "incidents overlap"
        if active and (not seen or seen[-1] != active[0].key):
            seen.append(active[0].key)
        t += 1.0
    assert seen == [i.key for i in INCIDENTS]
    assert schedule.active(schedule.duration_s - 1) == []  # the run ends recovered


def _alert(name: str, feature: str, at: float, **labels: str) -> FiredAlert:
    pairs = {"alertname": name, "feature": feature, "severity": "warning", **labels}
    return FiredAlert(tuple(sorted(pairs.items())), at - 1, at)


def test_attribution_credits_expected_alerts_and_lists_the_rest_as_false_alarms() -> None:
    """The SPC alarm on the error rate during the burst is a side effect, not a false alarm."""
    schedule = Schedule(speed=60)
    t0 = 1_000_000.0
    by_key = {i.key: i for i in INCIDENTS}
    burst = by_key["error_burst"]
    slow = by_key["retrieval_slowdown"]
    at_burst = t0 + schedule.seconds(burst.start_min) + 5
    at_slow = t0 + schedule.seconds(slow.start_min) + 5
    alerts = [
        _alert("LLMPulseErrorRateHigh", "support-chat", at_burst),
        _alert("LLMPulseErrorRateHigh", "doc-qa", at_burst),  # another feature: false alarm
        _alert("LLMPulseStepLatencyHigh", "doc-qa", at_slow, step="rerank"),  # wrong step
        _alert("LLMPulseErrorRateHigh", "support-chat", t0 + 1),  # before any incident
    ]
    alerts.append(_alert("LLMPulseQualitySPCAlarm", "support-chat", at_burst + 1, statistic="error_rate"))
    defined = {
        "LLMPulseErrorRateHigh",
        "LLMPulseStepLatencyHigh",
        "LLMPulseQualityScoreDrop",
        "LLMPulseSurvivorshipBiasRisk",
    }
    result = attribute(schedule, t0, alerts, defined, has_data=lambda expr: "survivorship" not in expr)
    status = {r.incident.key: r.status for r in result.incidents}
    assert status["error_burst"] == DETECTED
    assert status["retrieval_slowdown"] == MISSED
    assert status["quality_regression"] == MISSED  # its rule exists and its engine runs: checked
    assert status["abandonment_surge"] == NO_ENGINE  # rule defined, no input series
    assert status["topic_shift"] == NO_RULE
    assert status["cost_spike"] == NO_RULE  # LLMPulseCostPerHourAnomaly not in `defined`
    detected = next(r for r in result.incidents if r.status == DETECTED)
    assert detected.delay_s == pytest.approx(5.0)
    assert [a.describe() for a in result.false_alarms] == [
        "LLMPulseErrorRateHigh{feature=support-chat}",
        "LLMPulseErrorRateHigh{feature=doc-qa}",
        "LLMPulseStepLatencyHigh{feature=doc-qa, step=rerank}",
    ]
    assert not result.ok
    table = render_table(result)
    assert "MISSED (LLMPulseStepLatencyHigh)" in table and "no alert rule yet" in table
    assert "engine not running (LLMPulseSurvivorshipBiasRisk)" in table
    # every alert that fired is listed: the side effect credited to the burst as well
    assert [a.name for a in detected.credited] == ["LLMPulseErrorRateHigh", "LLMPulseQualitySPCAlarm"]
    assert "also credited to provider error burst: LLMPulseQualitySPCAlarm{" in table
    document = json.loads(json.dumps(result.to_json()))
    assert document["ok"] is False
    assert [c["alert"] for c in document["incidents"][0]["credited"]][1].startswith("LLMPulseQualitySPCAlarm")


def test_the_loop_is_credited_only_under_its_agent() -> None:
    """The demo's agent is an llmpulse.agent run: its loop, caught while the run is open, is
    named by the calls' llmpulse.agent.name; an agent="unknown" runaway is nobody's."""
    schedule = Schedule(speed=60)
    t0 = 1_000_000.0
    loop = next(i for i in INCIDENTS if i.key == "agent_loop")
    at = t0 + schedule.seconds(loop.start_min) + 5

    def runaway(agent: str) -> FiredAlert:
        pairs = {"alertname": "LLMPulseAgentRunaway", "severity": "warning", "agent": agent}
        return FiredAlert(tuple(sorted(pairs.items())), at - 1, at)

    for agent, credited in (("trip-planner", True), ("unknown", False)):
        result = attribute(schedule, t0, [runaway(agent)], {"LLMPulseAgentRunaway"}, has_data=lambda _e: True)
        status = {r.incident.key: r.status for r in result.incidents}
        assert (status["agent_loop"] == DETECTED) is credited, agent
        assert [a.describe() for a in result.false_alarms] == (
            [] if credited else [runaway(agent).describe()]
        )


def test_scripted_provider_plays_the_provider_side_incidents(tmp_path: Path) -> None:
    state = ScenarioState(tmp_path / "scenario.json")
    with FakeProvider() as provider:
        provider.set_handler(reply_for(state, seed=1, latency_scale=0.01))
        client = openai.OpenAI(base_url=provider.openai_base_url, api_key="t", max_retries=0)

        def ask(model: str) -> str:
            try:
                response = client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "hi"}]
                )
            except openai.InternalServerError:
                return "error"
            except openai.APIStatusError as exc:
                return f"status {exc.status_code}"
            return f"{response.model}: {response.choices[0].message.content}"

        state.set_active(["error_burst", "quality_regression"])
        mini = [ask("gpt-4o-mini") for _ in range(40)]
        other = [ask("gpt-4o") for _ in range(10)]
        assert 5 <= sum(r in {"error", "status 503"} for r in mini) <= 25
        assert all(r.split(": ", 1)[1] in BAD_ANSWERS for r in mini if r.startswith("gpt-4o-mini"))
        assert all(r.startswith("gpt-4o: ") and r.split(": ", 1)[1] not in BAD_ANSWERS for r in other)

        state.set_active(["silent_model_change"])
        answer = client.with_options(base_url=provider.openai_base_url).chat.completions.create(
            model="claude-haiku-4-5", messages=[{"role": "user", "content": "x"}]
        )
        assert answer.model == "claude-3-5-haiku"

        judge = [{"role": "system", "content": "You are a strict evaluator of answers."}]
        for answer_text, low in ((BAD_ANSWERS[0], True), ("Refunds take five days.", False)):
            verdict = client.chat.completions.create(
                model="gpt-4o-mini", messages=[*judge, {"role": "user", "content": f"ANSWER: {answer_text}"}]
            )
            scores, _ = parse_verdict(verdict.choices[0].message.content or "", JUDGE_DIMENSIONS)
            assert (max(scores.values()) <= 2) is low


def test_scenario_file_round_trip(tmp_path: Path) -> None:
    state = ScenarioState(tmp_path / "s.json")
    assert read_active(state.path) == (frozenset(), False)
    assert state.set_active(["cost_spike"]) and not state.set_active(["cost_spike"])
    assert read_active(state.path) == (frozenset({"cost_spike"}), False)
    state.stop_app()
    assert read_active(state.path)[1] is True
    assert read_active(tmp_path / "missing.json") == (frozenset(), False)


def test_journal_keeps_the_first_arrival_of_each_firing(tmp_path: Path) -> None:
    alert = {
        "status": "firing",
        "labels": {"alertname": "A", "feature": "f"},
        "startsAt": "2026-01-01T00:00:00Z",
    }
    resolved = {**alert, "status": "resolved"}
    refired = {**alert, "startsAt": "2026-01-01T00:10:00.123456789Z"}
    lines = [
        {"received_at": 10.0, "alerts": [alert]},
        {"received_at": 20.0, "alerts": [alert]},  # a repeat
        {"received_at": 30.0, "alerts": [resolved]},
        {"received_at": 40.0, "alerts": [refired]},
    ]
    path = tmp_path / "notifications.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    found = read_journal(path)
    assert [(a.name, a.webhook_at) for a in found] == [("A", 10.0), ("A", 40.0)]
    assert found[0].fired_at == 1767225600.0


def test_plain_view_when_not_a_terminal() -> None:
    stream = io.StringIO()
    view = make_view(stream)
    assert isinstance(view, PlainView)
    snapshot = Snapshot(
        30.0,
        120.0,
        60.0,
        ("provider error burst",),
        "retrieval slowdown",
        {"support-chat": FeatureRow(calls_per_s=3.0, error_rate=0.25, p95_s=0.5, usd_per_hour=1.5)},
        ("LLMPulseErrorRateHigh{support-chat}",),
    )
    with view:
        view.update(snapshot)
    out = stream.getvalue()
    assert "[ 25%]" in out and "sim 0h30" in out and "provider error burst" in out
    assert "errors=25.0%" in out and "p95=500ms" in out and "quality EWMA=—" in out
    assert "firing: LLMPulseErrorRateHigh{support-chat}" in out


def test_engine_settings_are_accepted_by_the_engines() -> None:
    """The processor parses what the demo appends to its config (a typo would stop `serve`)."""
    import tomllib

    from llmpulse.demo.rules import SESSION_TIMEOUT_FLOOR_S, SUPPORT_JUDGE_RATE, engine_settings
    from llmpulse.processor.agents.settings import AgentSettings
    from llmpulse.processor.drift.state import DriftSettings
    from llmpulse.processor.quality.settings import QualitySettings

    config = tomllib.loads(engine_settings(120))
    quality = QualitySettings.from_dict(config["quality"])
    assert quality.signals.window_s == 30 and quality.signals.bucket_s == 1
    assert quality.rate_for("support-chat") == SUPPORT_JUDGE_RATE
    assert quality.rate_for("doc-qa") == quality.judge_rate
    # the user-signal gauges are refreshed every 15 s / speed, at least every second
    assert (
        quality.tick_s == 1
        and QualitySettings.from_dict(tomllib.loads(engine_settings(1))["quality"]).tick_s
        == QualitySettings().tick_s
        == 15
    )
    assert quality.rate_for("trip-agent") == 0.0
    drift = DriftSettings(**config["drift"]["settings"])
    assert drift.reference_size == 150
    agents = AgentSettings.from_dict(config["agents"])
    assert agents.session_timeout_s == SESSION_TIMEOUT_FLOOR_S and agents.judge_rate == 0.0
    assert AgentSettings.from_dict(tomllib.loads(engine_settings(1))["agents"]).session_timeout_s == 180
    assert tomllib.loads(engine_settings(1))["quality"]["signals"]["window_s"] == 3600


def test_the_stack_merges_the_demo_quality_keys_into_its_own_quality_table(tmp_path: Path) -> None:
    """TOML defines a table once: the demo's ``[quality]`` keys (``tick_s``) join the stack's."""
    import tomllib

    from llmpulse.demo.rules import engine_settings
    from llmpulse.stack.local import Stack

    stack = Stack(tmp_path, processor_config_extra=engine_settings(120))
    config = tomllib.loads(stack._processor_config().read_text())
    assert config["quality"]["tick_s"] == 1
    assert config["quality"]["db_path"] == str(tmp_path / "quality.db")
    assert config["quality"]["signals"]["window_s"] == 30 and config["drift"]["settings"]["spc_block"] == 10


@pytest.mark.parametrize("speed", [1.0, 60.0, 120.0])
def test_every_spc_warm_up_ends_inside_the_demo_warm_up_phase(speed: float) -> None:
    """Traffic is not sped up: at each speed the windows are sized so that every chart of every
    feature (and support-chat's judge score) has its warm-up windows before the first incident."""
    from llmpulse.demo.rules import SUPPORT_JUDGE_RATE, spc_windows
    from llmpulse.demo.scenario import FEATURES, WARMUP_MIN

    windows = spc_windows(speed)
    seconds = WARMUP_MIN * 60 / speed
    assert 2 <= windows.warmup_windows <= 100
    assert windows.warmup_windows == 100 or speed > 1  # the shipped warm-up when the calls allow it
    for feature in FEATURES:
        size = windows.requests_per_window[feature.name]
        assert size >= 5 or size * windows.warmup_windows <= feature.calls_per_s * seconds
        assert size * windows.warmup_windows <= 0.75 * feature.calls_per_s * seconds
    support = next(f for f in FEATURES if f.name == "support-chat")
    verdicts = support.calls_per_s * SUPPORT_JUDGE_RATE * seconds
    assert windows.scores_per_window * windows.warmup_windows <= 0.75 * verdicts


def test_a_fired_alert_links_to_its_console_page() -> None:
    """The stack's Prometheus puts ``console_url`` on every alert; the report links with it."""
    alert = _alert("LLMPulseQualitySPCAlarm", "support chat", 10.0, console_url="http://127.0.0.1:9470/")
    assert alert.console_link() == (
        "http://127.0.0.1:9470/alert?alertname=LLMPulseQualitySPCAlarm&feature=support+chat"
    )
    assert "console_url" not in alert.describe()
    assert _alert("LLMPulseQualitySPCAlarm", "x", 10.0).console_link() is None
