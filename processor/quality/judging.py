"""Judge scheduling: the bounded queue of sampled calls, the worker tasks that judge them, the
guards in front of the judge (daily budget, circuit breaker, rate limit) and what a verdict
leads to (score metrics, the judge-score chart, evaluation records, flagged and audit samples).

The ingest path only :meth:`JudgeScheduler.offer` s a sample (never blocks: a full queue drops
it and counts the drop); the workers take samples off the event loop's hot path.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import zlib
from collections.abc import Callable

from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.charts import QualityCharts
from llmpulse.processor.quality.flag_writer import FlagWriter
from llmpulse.processor.quality.guards import (
    Budget,
    CircuitBreaker,
    DailyBudget,
    Ledger,
    RateLimiter,
    SharedBudget,
)
from llmpulse.processor.quality.judge import JudgeError, JudgeUnparseable, LLMJudge, verdict_is_bad
from llmpulse.processor.quality.metrics import QualityMetrics
from llmpulse.processor.quality.settings import SCOPE_SESSION, QualitySettings
from llmpulse.processor.quality.types import EvaluationRecord, QualitySample, Verdict
from llmpulse.processor.store.sessions import SessionVerdict

__all__ = ["EvaluationSink", "JudgeScheduler", "SessionVerdictSink"]

_log = logging.getLogger(__name__)

EvaluationSink = Callable[[EvaluationRecord], None]
SessionVerdictSink = Callable[[str, bytes, SessionVerdict], None]
"""Gets each verdict on a whole conversation: (service, its last turn's trace id, the verdict)."""

# What the judge call in flight on this task has spent so far: [tokens, usd]. Workers judge
# concurrently; the spend hook finds its call's tally through the task's context.
_CALL_SPEND: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("judge_spend", default=None)


class JudgeScheduler:
    """The judge's queue, workers, guards and spend accounting.

    Args:
        settings: the quality settings (``judge`` and ``audit_rate`` are read).
        metrics: the engine's metrics.
        judge: the judge; its spend hook is set to charge the budget and the spend metrics.
        charts: gets each verdict's overall score.
        flags: where flagged (and audit) samples go.
        on_feature: called with a sample's (service, feature) before it is judged (first-use setup).
        evaluation_sink: receives one ``gen_ai.evaluation.result``-shaped record per dimension.
        clock: wall clock for the daily budget; monotonic: for the breaker and the rate limit.
        budget_ledger: the store's budget ledger, shared by every process on the store; without
            one the budget is kept in memory.
    """

    def __init__(
        self,
        settings: QualitySettings,
        *,
        metrics: QualityMetrics,
        judge: LLMJudge,
        charts: QualityCharts,
        flags: FlagWriter,
        on_feature: Callable[[tuple[str, str]], None],
        evaluation_sink: EvaluationSink | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        budget_ledger: Ledger | None = None,
    ) -> None:
        js = settings.judge
        self.settings = settings
        self.metrics = metrics
        self.judge = judge
        self.judge.on_spend = self._spend
        self.budget: Budget = (
            DailyBudget(js.daily_token_budget, js.daily_usd_budget, clock=clock)
            if budget_ledger is None
            else SharedBudget(budget_ledger, js.daily_token_budget, js.daily_usd_budget, clock=clock)
        )
        self.breaker = CircuitBreaker(js.breaker_failures, js.breaker_cooldown_s, clock=monotonic)
        self.limiter = RateLimiter(js.requests_per_second, js.burst, clock=monotonic)
        self._charts = charts
        self._flags = flags
        self._on_feature = on_feature
        self._sink = evaluation_sink
        self._clock = clock
        self.on_session_verdict: SessionVerdictSink | None = None  # captured sessions keep their verdict
        self.queue: asyncio.Queue[QualitySample] = asyncio.Queue(js.queue_size)

    @property
    def queue_size(self) -> int:
        """Samples waiting for the judge."""
        return self.queue.qsize()

    def offer(self, sample: QualitySample) -> None:
        """Queue a sampled call for judging; a full queue drops it (counted)."""
        self.metrics.judge_sampled.labels(*sample.key).inc()
        try:
            self.queue.put_nowait(sample)
        except asyncio.QueueFull:
            self.metrics.judge_dropped.labels(*sample.key, Q.DROP_QUEUE_FULL).inc()
        self.metrics.judge_queue.set(self.queue.qsize())

    def start_workers(self, loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[None]]:
        """The worker tasks (``judge.workers`` of them; none when the judge is off)."""
        workers = self.settings.judge.workers if self.settings.judge.enabled else 0
        return [loop.create_task(self._worker(), name=f"quality-judge-{i}") for i in range(workers)]

    def drop_queued(self) -> None:
        """Count the samples still queued (not judged in time) as dropped at shutdown."""
        while not self.queue.empty():
            sample = self.queue.get_nowait()
            self.metrics.judge_dropped.labels(*sample.key, Q.DROP_SHUTDOWN).inc()

    def refresh_gauges(self) -> None:
        """Set the queue and circuit gauges from the current state."""
        self.metrics.judge_queue.set(self.queue.qsize())
        self.metrics.judge_circuit_open.set(1.0 if self.breaker.is_open else 0.0)

    def _spend(self, tokens_in: int, tokens_out: int, usd: float) -> None:
        tally = _CALL_SPEND.get()
        if tally is not None:  # settled with the call's admission in judge_one
            tally[0] += tokens_in + tokens_out
            tally[1] += usd
        elif isinstance(self.budget, DailyBudget):
            self.budget.charge(tokens_in + tokens_out, usd)
        else:
            _log.warning(
                "judge spend outside judge_one not charged to the shared budget: %d tokens",
                tokens_in + tokens_out,
            )
        self.metrics.judge_tokens.labels("input").inc(tokens_in)
        self.metrics.judge_tokens.labels("output").inc(tokens_out)
        self.metrics.judge_cost.inc(usd)

    async def _worker(self) -> None:
        while True:
            sample = await self.queue.get()
            try:
                await self.judge_one(sample)
            except Exception:
                _log.exception("judge worker failed on a sample of feature %s", sample.feature)
            finally:
                self.queue.task_done()
                self.metrics.judge_queue.set(self.queue.qsize())

    async def judge_one(self, sample: QualitySample) -> Verdict | None:
        """Judge one sample through the guards and record the outcome; None when not judged."""
        key = sample.key
        self._on_feature(key)
        admission = await self.budget.admit()
        if admission is None:
            self.metrics.judge_dropped.labels(*key, Q.DROP_BUDGET).inc()
            return None
        tally = [0.0, 0.0]
        context = _CALL_SPEND.set(tally)
        try:
            return await self._judge_admitted(sample)
        finally:
            _CALL_SPEND.reset(context)
            await self.budget.settle(admission, int(tally[0]), tally[1])

    async def _judge_admitted(self, sample: QualitySample) -> Verdict | None:
        key = sample.key
        if not self.breaker.allow():
            self.metrics.judge_dropped.labels(*key, Q.DROP_CIRCUIT_OPEN).inc()
            self.metrics.judge_circuit_open.set(1.0)
            return None
        await self.limiter.acquire()
        try:
            verdict = await self.judge.evaluate(sample)
        except JudgeError as exc:
            # The endpoint answered when the verdict was merely unparseable: not a breaker failure.
            self.breaker.record(isinstance(exc, JudgeUnparseable))
            self.metrics.judge_circuit_open.set(1.0 if self.breaker.is_open else 0.0)
            self.metrics.judge_errors.labels(*key, exc.reason).inc()
            _log.info("judge error (%s) for service %s feature %s: %s", exc.reason, *key, exc)
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
        key = sample.key
        self.metrics.judge_verdicts.labels(*key).inc()
        for dimension, score in verdict.scores.items():
            self.metrics.judge_score.labels(*key, dimension).observe(score)
        statistic = Q.STAT_SESSION_SCORE if sample.scope == SCOPE_SESSION else Q.STAT_JUDGE_SCORE
        self._charts.observe_score(key, verdict.overall, statistic)
        if self._sink is not None:
            for record in EvaluationRecord.from_verdict(sample, verdict, js.fail_at_or_below):
                try:
                    self._sink(record)
                except Exception:
                    _log.exception("evaluation sink failed")
        reasons = [f"low_{d}" for d, v in verdict.scores.items() if v <= js.fail_at_or_below]
        bad = verdict_is_bad(verdict, js)
        if sample.scope == SCOPE_SESSION and self.on_session_verdict is not None:
            outcome = SessionVerdict(
                "bad" if bad else "good",
                verdict.overall,
                dict(verdict.scores),
                verdict.explanation,
                self._clock(),
            )
            try:
                self.on_session_verdict(sample.service, sample.trace_id, outcome)
            except Exception:
                _log.exception("session verdict sink failed")
        flags = self._flags
        if bad:
            if verdict.overall < js.flag_overall_below:
                reasons.insert(0, "low_overall")
            self.metrics.flagged.labels(*key, Q.SOURCE_JUDGE).inc()
            flags.save(flags.record(sample, (Q.SOURCE_JUDGE,), tuple(reasons), verdict, "bad"))
            flags.flagged(sample)
        elif zlib.crc32(sample.trace_id) < self.settings.audit_rate * 2**32:
            flags.save(flags.record(sample, (Q.SOURCE_AUDIT,), (), verdict, "good"))
