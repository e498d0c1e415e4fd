"""The quality engine: cheap checks on every call, sample-and-judge, SPC charts, user signals.

Integration (on the processor's event loop)::

    engine = QualityEngine(settings, registry=registry)
    await engine.start()
    ...
    engine.observe(sample)           # every LLM call; never blocks, never raises
    engine.observe_feedback(event)   # every feedback span
    ...
    await engine.stop()

:meth:`QualityEngine.observe` runs the cheap checks inline, feeds the control-chart windows and
the user-signal counts, and puts samples chosen by the trace-id sampler on a bounded queue. A
pool of worker tasks judges them off the ingest path, behind a rate limit, a daily budget and a
circuit breaker. Flagged samples go to the SQLite store through a writer task (SQLite calls run
in a thread). A periodic :meth:`QualityEngine.tick` persists changed charts, applies
``llmpulse spc reset`` requests, enforces retention and refreshes the gauges.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from prometheus_client.registry import CollectorRegistry

from llmpulse.contract import attributes as A
from llmpulse.contract.sampling import is_sampled_bytes
from llmpulse.processor.quality import checks as C
from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.charts import QualityCharts
from llmpulse.processor.quality.guards import CircuitBreaker, DailyBudget, RateLimiter
from llmpulse.processor.quality.judge import JudgeError, JudgeUnparseable, LLMJudge
from llmpulse.processor.quality.metrics import QualityMetrics
from llmpulse.processor.quality.settings import QualitySettings
from llmpulse.processor.quality.store import FlaggedRecord, FlaggedStore
from llmpulse.processor.quality.types import EvaluationRecord, FeedbackEvent, QualitySample, Verdict
from llmpulse.processor.quality.user_signals import UserSignals

__all__ = ["QualityEngine"]

_log = logging.getLogger(__name__)

EvaluationSink = Callable[[EvaluationRecord], None]
_NOT_FLAGGING = frozenset({C.NEAR_CONTEXT_LIMIT})  # counted, but not a bad answer
_REFUSALS = frozenset({C.API_REFUSAL, C.REFUSAL_PHRASE})
_STORE_BATCH = 256  # flagged records written per transaction
# Retention runs this often: ~40 ms on a 100k-row store, and with the check-flag quota a busy
# processor can store thousands of samples a minute.
_PRUNE_EVERY_S = 600.0
_EXPLICIT = frozenset({A.FEEDBACK_THUMBS, A.FEEDBACK_RATING, A.FEEDBACK_COMMENT_KIND})


class QualityEngine:
    """Checks, judge, charts, user signals and flagged samples behind ``observe`` / ``observe_feedback``.

    Args:
        settings: the parsed quality settings.
        registry: where the metrics go (never the global registry).
        store: the flagged-sample store; by default opened at ``settings.db_path``.
        judge: the judge; by default built from ``settings.judge``. The engine installs its own
            spend hook on it (budget and spend metrics).
        evaluation_sink: receives one ``gen_ai.evaluation.result``-shaped record per dimension.
        clock: wall clock (Unix seconds) for budgets, signals and stored times.
        tick_s: seconds between periodic ticks.
    """

    def __init__(
        self,
        settings: QualitySettings,
        *,
        registry: CollectorRegistry,
        store: FlaggedStore | None = None,
        judge: LLMJudge | None = None,
        evaluation_sink: EvaluationSink | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        tick_s: float = 15.0,
    ) -> None:
        self.settings = settings
        self.metrics = QualityMetrics(registry)
        self._owns_store = store is None
        self.store = store or FlaggedStore(
            settings.db_path, retention_days=settings.retention_days, retention_rows=settings.retention_rows
        )
        js = settings.judge
        self.judge = judge or LLMJudge(js)
        self.judge.on_spend = self._spend
        self.budget = DailyBudget(js.daily_token_budget, js.daily_usd_budget, clock=clock)
        self.breaker = CircuitBreaker(js.breaker_failures, js.breaker_cooldown_s, clock=monotonic)
        self.limiter = RateLimiter(js.requests_per_second, js.burst, clock=monotonic)
        self.charts = QualityCharts(
            settings.spc,
            self.metrics,
            window_sizes={
                name: rules.requests_per_window
                for name, rules in settings.features.items()
                if rules.requests_per_window is not None
            },
        )
        self.signals = UserSignals(settings.signals, clock=clock)
        self._sink = evaluation_sink
        self._clock = clock
        self._tick_s = tick_s
        self._features: set[str] = set()
        self._checked: dict[str, Any] = {}  # labelled children, looked up once per feature
        self._children: dict[tuple[Any, ...], Any] = {}
        self._pending: dict[str, int] = {}  # feature -> calls observed, not counted yet
        self._quota: dict[str, list[int]] = {}  # feature -> [minute, check-flagged samples stored]
        self._recent: OrderedDict[str, QualitySample] = OrderedDict()
        self._judge_queue: asyncio.Queue[QualitySample] = asyncio.Queue(js.queue_size)
        self._store_queue: asyncio.Queue[FlaggedRecord] = asyncio.Queue(1000)
        self._tasks: list[asyncio.Task[None]] = []
        self._accepting = False
        self._last_prune = 0.0

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Restore saved charts and start the judge workers, the store writer and the ticker."""
        self.charts.load(await asyncio.to_thread(self.store.load_charts))
        self._accepting = True
        loop = asyncio.get_running_loop()
        workers = self.settings.judge.workers if self.settings.judge.enabled else 0
        self._tasks = [
            loop.create_task(self._judge_worker(), name=f"quality-judge-{i}") for i in range(workers)
        ]
        self._tasks.append(loop.create_task(self._store_writer(), name="quality-store-writer"))
        self._tasks.append(loop.create_task(self._ticker(), name="quality-ticker"))

    @property
    def queue_size(self) -> int:
        """Samples waiting for the judge."""
        return self._judge_queue.qsize()

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until every queued sample is judged and every flagged record stored."""
        await asyncio.wait_for(self._drain(), timeout)

    async def _drain(self) -> None:
        await self._judge_queue.join()
        await self._store_queue.join()

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, drain within ``timeout`` seconds, persist charts, close what it opened."""
        self._accepting = False
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await self.drain(timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        while not self._judge_queue.empty():  # not judged in time
            sample = self._judge_queue.get_nowait()
            self.metrics.judge_dropped.labels(sample.feature, Q.DROP_SHUTDOWN).inc()
        while not self._store_queue.empty():  # the writer was stopped (or never started)
            record = self._store_queue.get_nowait()
            try:
                await asyncio.to_thread(self.store.add, record)
            except Exception:
                _log.exception("could not store a flagged sample of feature %s", record.feature)
        await self.tick()
        await self.judge.aclose()
        if self._owns_store:
            await asyncio.to_thread(self.store.close)

    # --- ingest path -----------------------------------------------------------------------
    def _feature(self, feature: str) -> None:
        if feature not in self._features:
            self._features.add(feature)
            self.metrics.init_feature(feature)
            self._checked[feature] = self.metrics.checked.labels(feature)

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once: the ingest path calls this per failed check."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, sample: QualitySample, *, defer_counts: bool = False) -> list[str]:
        """Check one call and maybe queue it for judging; returns the failed check names.

        Cheap: no I/O, no awaiting. Must be called from the event loop's thread. With
        ``defer_counts`` the per-call counts (calls checked, responses for the user-signal
        rates) are added up and applied by :meth:`flush_counts`, once per batch of calls.
        """
        try:
            return self._observe(sample, defer_counts)
        except Exception:  # the ingest path never fails because of the quality engine
            _log.exception("quality engine failed on a sample of feature %s", sample.feature)
            return []

    def flush_counts(self) -> None:
        """Apply the counts deferred by ``observe(..., defer_counts=True)``."""
        pending, self._pending = self._pending, {}
        for feature, n in pending.items():
            self._checked[feature].inc(n)
            self.signals.observe_response(feature, n)

    def _observe(self, sample: QualitySample, defer_counts: bool = False) -> list[str]:
        s = self.settings
        feature = sample.feature
        self._feature(feature)
        failed = C.run_checks(
            sample,
            s.rules_for(feature),
            context_fraction=s.context_limit_fraction,
            context_limits=s.context_limits,
        )
        if defer_counts:
            pending = self._pending
            pending[feature] = pending.get(feature, 0) + 1
        else:
            self._checked[feature].inc()
            self.signals.observe_response(feature)
        for name in failed:
            self._child(self.metrics.check_failures, feature, name).inc()
        self.charts.observe_call(sample, refused=bool(failed) and not _REFUSALS.isdisjoint(failed))
        has_content = sample.has_content
        if has_content and sample.response_id:
            self._remember(sample)
        if failed:
            flagging = tuple(name for name in failed if name not in _NOT_FLAGGING)
            if flagging:
                self._child(self.metrics.flagged, feature, Q.SOURCE_CHECK).inc()
                if self._check_quota(feature):
                    self._save(self._record(sample, (Q.SOURCE_CHECK,), flagging))
                else:
                    self._child(self.metrics.store_dropped, Q.STORE_DROP_RATE_LIMITED).inc()
        if (
            has_content
            and self._accepting
            and s.judge.enabled
            and not sample.is_error
            and is_sampled_bytes(sample.trace_id, s.rate_for(feature))
        ):
            self.metrics.judge_sampled.labels(feature).inc()
            try:
                self._judge_queue.put_nowait(sample)
            except asyncio.QueueFull:
                self.metrics.judge_dropped.labels(feature, Q.DROP_QUEUE_FULL).inc()
            self.metrics.judge_queue.set(self._judge_queue.qsize())
        return failed

    def observe_feedback(self, event: FeedbackEvent) -> None:
        """Count one feedback event; explicit negative feedback and corrections flag the answer."""
        try:
            self._feature(event.feature)
            self.signals.observe_feedback(event)
            # Abandonment (negative to the processor) is too weak a signal to flag an answer on.
            explicit_negative = event.kind in _EXPLICIT and event.sentiment == "negative"
            if not explicit_negative and event.kind != A.FEEDBACK_CORRECTION:
                return
            self.metrics.flagged.labels(event.feature, Q.SOURCE_FEEDBACK).inc()
            sample = self._recent.get(event.response_id) if event.response_id else None
            reason = f"feedback:{event.kind}"
            if sample is None:
                sample = QualitySample(
                    event.trace_id,
                    event.feature,
                    "unknown",
                    response_id=event.response_id,
                    timestamp=event.timestamp,
                )
            record = self._record(sample, (Q.SOURCE_FEEDBACK,), (reason,))
            if event.comment:
                record = dataclasses.replace(record, explanation=f"user: {event.comment}")
            self._save(record)
        except Exception:
            _log.exception("quality engine failed on feedback of feature %s", event.feature)

    def _remember(self, sample: QualitySample) -> None:
        assert sample.response_id is not None
        self._recent[sample.response_id] = sample
        if len(self._recent) > self.settings.recent_samples:
            self._recent.popitem(last=False)

    def _record(
        self,
        sample: QualitySample,
        sources: tuple[str, ...],
        reasons: tuple[str, ...],
        verdict: Verdict | None = None,
        judge_verdict: str | None = None,
    ) -> FlaggedRecord:
        return FlaggedRecord.from_sample(
            sample, sources, reasons, self._clock(), verdict=verdict, judge_verdict=judge_verdict
        )

    def _check_quota(self, feature: str) -> bool:
        """Whether one more check-flagged sample of ``feature`` may be stored this minute."""
        minute = int(self._clock() // 60.0)
        used = self._quota.get(feature)
        if used is None or used[0] != minute:
            used = self._quota[feature] = [minute, 0]
        if used[1] >= self.settings.check_samples_per_minute:
            return False
        used[1] += 1
        return True

    def _save(self, record: FlaggedRecord) -> None:
        try:
            self._store_queue.put_nowait(record)
        except asyncio.QueueFull:
            self._child(self.metrics.store_dropped, Q.STORE_DROP_QUEUE_FULL).inc()

    # --- judging ---------------------------------------------------------------------------
    def _spend(self, tokens_in: int, tokens_out: int, usd: float) -> None:
        self.budget.charge(tokens_in + tokens_out, usd)
        self.metrics.judge_tokens.labels("input").inc(tokens_in)
        self.metrics.judge_tokens.labels("output").inc(tokens_out)
        self.metrics.judge_cost.inc(usd)

    async def _judge_worker(self) -> None:
        while True:
            sample = await self._judge_queue.get()
            try:
                await self.judge_one(sample)
            except Exception:
                _log.exception("judge worker failed on a sample of feature %s", sample.feature)
            finally:
                self._judge_queue.task_done()
                self.metrics.judge_queue.set(self._judge_queue.qsize())

    async def judge_one(self, sample: QualitySample) -> Verdict | None:
        """Judge one sample through the guards and record the outcome; None when not judged."""
        feature = sample.feature
        self._feature(feature)
        if not self.budget.allows():
            self.metrics.judge_dropped.labels(feature, Q.DROP_BUDGET).inc()
            return None
        if not self.breaker.allow():
            self.metrics.judge_dropped.labels(feature, Q.DROP_CIRCUIT_OPEN).inc()
            self.metrics.judge_circuit_open.set(1.0)
            return None
        await self.limiter.acquire()
        try:
            verdict = await self.judge.evaluate(sample)
        except JudgeError as exc:
            # The endpoint answered when the verdict was merely unparseable: not a breaker failure.
            self.breaker.record(isinstance(exc, JudgeUnparseable))
            self.metrics.judge_circuit_open.set(1.0 if self.breaker.is_open else 0.0)
            self.metrics.judge_errors.labels(feature, exc.reason).inc()
            _log.info("judge error (%s) for feature %s: %s", exc.reason, feature, exc)
            return None
        except BaseException:
            self.breaker.record(False)  # never leave a half-open trial hanging
            raise
        self.breaker.record(True)
        self.metrics.judge_circuit_open.set(0.0)
        self._record_verdict(sample, verdict)
        return verdict

    def _record_verdict(self, sample: QualitySample, verdict: Verdict) -> None:
        js = self.settings.judge
        feature = sample.feature
        self.metrics.judge_verdicts.labels(feature).inc()
        for dimension, score in verdict.scores.items():
            self.metrics.judge_score.labels(feature, dimension).observe(score)
        self.charts.observe_score(feature, verdict.overall)
        if self._sink is not None:
            for record in EvaluationRecord.from_verdict(sample, verdict, js.fail_at_or_below):
                try:
                    self._sink(record)
                except Exception:
                    _log.exception("evaluation sink failed")
        reasons = [f"low_{d}" for d, v in verdict.scores.items() if v <= js.fail_at_or_below]
        bad = (
            verdict.overall < js.flag_overall_below
            or verdict.scores.get("correctness", 5.0) <= js.fail_at_or_below
        )
        if bad:
            if verdict.overall < js.flag_overall_below:
                reasons.insert(0, "low_overall")
            self.metrics.flagged.labels(feature, Q.SOURCE_JUDGE).inc()
            self._save(self._record(sample, (Q.SOURCE_JUDGE,), tuple(reasons), verdict, "bad"))
        elif zlib.crc32(sample.trace_id) < self.settings.audit_rate * 2**32:
            self._save(self._record(sample, (Q.SOURCE_AUDIT,), (), verdict, "good"))

    # --- background ------------------------------------------------------------------------
    async def _store_writer(self) -> None:
        queue = self._store_queue
        while True:
            batch = [await queue.get()]  # then whatever else is waiting: one thread hop, one commit
            while len(batch) < _STORE_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await asyncio.to_thread(self.store.add_many, batch)
            except Exception:
                _log.exception("could not store %d flagged sample(s)", len(batch))
            finally:
                for _ in batch:
                    queue.task_done()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            try:
                await self.tick()
            except Exception:
                _log.exception("quality tick failed")

    async def tick(self) -> None:
        """Apply reset requests, persist changed charts, enforce retention, refresh gauges."""
        self.flush_counts()
        for feature, statistic in await asyncio.to_thread(self.store.take_resets):
            reset = self.charts.reset(feature, statistic)
            _log.info("SPC baseline reset: feature=%s statistics=%s", feature, ",".join(reset) or "none yet")
        dirty = self.charts.take_dirty()
        if dirty:
            await asyncio.to_thread(self.store.save_charts, dirty)
        now = self._clock()
        if now - self._last_prune >= _PRUNE_EVERY_S:
            self._last_prune = now
            await asyncio.to_thread(self.store.prune, now=now)
        for feature, (labelled, agreed) in (await asyncio.to_thread(self.store.agreement)).items():
            self.metrics.labelled.labels(feature).set(labelled)
            self.metrics.agreement.labels(feature).set(agreed / labelled)
        for feature in self.signals.features():
            snap = self.signals.snapshot(feature)
            values = {
                "positive": snap.positive_rate,
                "coverage": snap.coverage,
                "correction": snap.correction_rate,
                "follow_up": snap.follow_up_rate,
                "abandonment": snap.abandonment_rate,
                "survivorship_risk": snap.survivorship_risk,
            }
            for key, value in values.items():
                self.metrics.user[key].labels(feature).set(value)
        self.metrics.judge_queue.set(self._judge_queue.qsize())
        self.metrics.judge_circuit_open.set(1.0 if self.breaker.is_open else 0.0)
