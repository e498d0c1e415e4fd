"""The quality engine: cheap checks on every call, sample-and-judge, SPC charts, user signals.

Integration (on the processor's event loop)::

    engine = QualityEngine(settings, registry=registry)
    await engine.start()
    ...
    engine.observe(sample)           # every LLM call; never blocks, never raises
    engine.observe_feedback(event)   # every feedback span
    ...
    await engine.stop()

:meth:`QualityEngine.observe` (this module: the ingest path) runs the cheap checks inline, feeds
the control-chart windows and the user-signal counts, and offers samples chosen by the trace-id
sampler to the judge. The rest is one job per module behind this facade:

* :mod:`~llmpulse.processor.quality.judging`: the judge queue and a pool of worker tasks that
  judge samples off the ingest path, behind a rate limit, a daily budget and a circuit breaker;
* :mod:`~llmpulse.processor.quality.flag_writer`: flagged samples go to the store (SQLite or
  PostgreSQL, :mod:`~llmpulse.processor.store`) through a writer task (store calls run in a thread);
* :mod:`~llmpulse.processor.quality.ticker`: a periodic :meth:`QualityEngine.tick` persists
  changed charts (:mod:`~llmpulse.processor.quality.chart_store`), applies ``llmpulse spc reset``
  requests, enforces retention and refreshes the gauges.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Any

from prometheus_client.registry import CollectorRegistry

from llmpulse.contract import attributes as A
from llmpulse.contract.sampling import is_sampled_bytes
from llmpulse.processor.metrics.names import OUTCOME_REFUSAL
from llmpulse.processor.pipeline.records import LLMCall
from llmpulse.processor.quality import checks as C
from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.chart_store import ChartStore
from llmpulse.processor.quality.charts import QualityCharts
from llmpulse.processor.quality.content_watch import ContentWatch
from llmpulse.processor.quality.flag_writer import FlagWriter
from llmpulse.processor.quality.ingest import sample_from_call
from llmpulse.processor.quality.judge import LLMJudge
from llmpulse.processor.quality.judging import EvaluationSink, JudgeScheduler
from llmpulse.processor.quality.metrics import QualityMetrics
from llmpulse.processor.quality.settings import SCOPE_SESSION, QualitySettings
from llmpulse.processor.quality.ticker import Ticker
from llmpulse.processor.quality.types import FeedbackEvent, QualitySample, Verdict
from llmpulse.processor.quality.user_signals import UserSignals
from llmpulse.processor.store.factory import open_store
from llmpulse.processor.store.protocols import BudgetLedger, ChartSnapshots, FlaggedSamples, StateStore

__all__ = ["QualityEngine"]

_log = logging.getLogger(__name__)

_NOT_FLAGGING = frozenset({C.NEAR_CONTEXT_LIMIT})  # counted, but not a bad answer
_REFUSALS = frozenset({C.API_REFUSAL, C.REFUSAL_PHRASE})
_UNKNOWN_LIMIT: Any = object()  # not looked up yet (None: the model's window is unknown)
_MAX_MODELS = 10_000  # context windows remembered per model name
_EXPLICIT = frozenset({A.FEEDBACK_THUMBS, A.FEEDBACK_RATING, A.FEEDBACK_COMMENT_KIND})


class QualityEngine:
    """Checks, judge, charts, user signals and flagged samples behind ``observe`` / ``observe_feedback``.

    Args:
        settings: the parsed quality settings.
        registry: where the metrics go (never the global registry).
        store: the flagged-sample store; by default the store at ``settings.store_url`` (PostgreSQL)
            or ``settings.db_path`` (SQLite) is opened, with its chart store and budget ledger.
        chart_store: where SPC charts persist; by default the opened store's, or a chart store on
            the given SQLite store's file.
        budget_ledger: the judge budget's ledger; by default the opened store's. With a ``store``
            given and no ledger, the budget is kept in memory.
        judge: the judge; by default built from ``settings.judge``. The engine installs its own
            spend hook on it (budget and spend metrics).
        evaluation_sink: receives one ``gen_ai.evaluation.result``-shaped record per dimension.
        clock: wall clock (Unix seconds) for budgets, signals and stored times.
        monotonic: clock of the circuit breaker and the rate limit.
        tick_s: seconds between periodic ticks (default ``settings.tick_s``).
    """

    def __init__(
        self,
        settings: QualitySettings,
        *,
        registry: CollectorRegistry,
        store: FlaggedSamples | None = None,
        chart_store: ChartSnapshots | None = None,
        budget_ledger: BudgetLedger | None = None,
        judge: LLMJudge | None = None,
        evaluation_sink: EvaluationSink | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        tick_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = QualityMetrics(registry)
        self._state: StateStore | None = None
        if store is None:
            self._state = open_store(
                settings.store_url or settings.db_path,
                retention_days=settings.retention_days,
                retention_rows=settings.retention_rows,
            )
            store = self._state.flagged
            chart_store = chart_store or self._state.charts
            budget_ledger = budget_ledger or self._state.budget
        self.store: FlaggedSamples = store
        self._owns_chart_store = chart_store is None
        self.chart_store: ChartSnapshots = chart_store or ChartStore(getattr(store, "path", ":memory:"))
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
        self._flags = FlagWriter(self.store, self.metrics, clock=clock)
        judge = judge or LLMJudge(settings.judge)
        self.metrics.set_judge(settings.judge.model, getattr(judge, "prompt_version", "custom"))
        self.judging = JudgeScheduler(
            settings,
            metrics=self.metrics,
            judge=judge,
            charts=self.charts,
            flags=self._flags,
            on_feature=self._feature,
            evaluation_sink=evaluation_sink,
            clock=clock,
            monotonic=monotonic,
            budget_ledger=budget_ledger,
        )
        self.judge = self.judging.judge
        self.budget = self.judging.budget
        self.breaker = self.judging.breaker
        self.limiter = self.judging.limiter
        self.ticker = Ticker(
            metrics=self.metrics,
            charts=self.charts,
            chart_store=self.chart_store,
            store=self.store,
            signals=self.signals,
            judging=self.judging,
            flush_counts=self.flush_counts,
            clock=clock,
            tick_s=settings.tick_s if tick_s is None else tick_s,
        )
        self.content = ContentWatch(
            self.metrics, missing_after_s=settings.content_missing_after_s, clock=monotonic
        )
        self._clock = clock
        # Everything per feature is kept per (service, feature): the key of a sample.
        self._features: set[tuple[str, str]] = set()
        self._checked: dict[tuple[str, str], Any] = {}  # labelled children, looked up once per key
        self._children: dict[tuple[Any, ...], Any] = {}
        self._limits: dict[str, int | None] = {}  # model -> context window (checks.context_limit)
        # key -> [calls observed, successful responses among them], not counted yet
        self._pending: dict[tuple[str, str], list[int]] = {}
        # (service, feature, check) -> failures on the numbers path, not counted yet
        self._pending_failures: dict[tuple[str, str, str], int] = {}
        self._pending_flags: dict[tuple[str, str], int] = {}  # key -> calls flagged by checks, likewise
        self._pending_rate_limited = 0  # flagged calls not stored for the per-minute quota, likewise
        self._quota: dict[tuple[str, str], list[int]] = {}  # key -> [minute, check-flagged samples stored]
        self._recent: OrderedDict[str, QualitySample] = OrderedDict()
        self._recent_bytes = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._accepting = False

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Restore saved charts and start the judge workers, the store writer and the ticker."""
        self.charts.load(await asyncio.to_thread(self.chart_store.load_charts))
        self._accepting = True
        loop = asyncio.get_running_loop()
        self._tasks = self.judging.start_workers(loop)
        self._tasks.append(loop.create_task(self._flags.run(), name="quality-store-writer"))
        self._tasks.append(loop.create_task(self.ticker.run(), name="quality-ticker"))

    async def resume(self, keys: Collection[tuple[str, str]]) -> None:
        """Take over the SPC charts of (service, feature) ``keys`` from the store (a Kafka owner
        topic gave this replica their partition): the previous owner's baselines, no new warm-up.
        The keys are claimed first, so a late save by their previous owner is refused from now on
        (one that came before is in what is read here)."""
        await asyncio.to_thread(self.chart_store.claim, keys)
        snapshots = await asyncio.to_thread(self.chart_store.load_charts)
        restored = self.charts.resume(keys, snapshots)
        _log.info("event=spc_charts_resumed keys=%d charts=%d", len(keys), restored)

    def release(self, keys: Collection[tuple[str, str]] | None, *, save: bool = True) -> None:
        """Save the changed charts of ``keys`` (None: every key) and forget them and their
        gauges (their partition moved to another replica). Blocks on the store: it runs inside
        the revocation, so the next owner reads what this one saved. ``save=False`` (the
        partition was lost, a new owner may hold the key already): forget without saving."""
        self.flush_counts()
        dirty = self.charts.release(keys)
        if not save:
            _log.info(
                "event=spc_charts_dropped keys=%s charts_not_saved=%d",
                "all" if keys is None else len(keys),
                len(dirty),
            )
            return
        if dirty:
            try:
                self.metrics.charts_refused(self.chart_store.save_charts(dirty))
            except Exception:  # a store down for a moment: the next owner resumes an older chart
                _log.exception("event=spc_charts_not_saved charts=%d", len(dirty))
        _log.info(
            "event=spc_charts_released keys=%s charts_saved=%d",
            "all" if keys is None else len(keys),
            len(dirty),
        )

    @property
    def queue_size(self) -> int:
        """Samples waiting for the judge."""
        return self.judging.queue_size

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until every queued sample is judged and every flagged record stored."""
        await asyncio.wait_for(self._drain(), timeout)

    async def _drain(self) -> None:
        await self.judging.queue.join()
        await self._flags.join()

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
        self.judging.drop_queued()  # not judged in time
        await self._flags.store_remaining()  # the writer was stopped (or never started)
        await self.tick()
        await self.judge.aclose()
        if self._owns_chart_store:
            await asyncio.to_thread(self.chart_store.close)
        if self._state is not None:
            await asyncio.to_thread(self._state.close)

    async def tick(self) -> None:
        """Apply reset requests, persist changed charts, enforce retention, refresh gauges."""
        await self.ticker.tick()

    async def judge_one(self, sample: QualitySample) -> Verdict | None:
        """Judge one sample through the guards and record the outcome; None when not judged."""
        return await self.judging.judge_one(sample)

    # --- ingest path -----------------------------------------------------------------------
    def _feature(self, key: tuple[str, str]) -> None:
        if key not in self._features:
            self._features.add(key)
            self.metrics.init_feature(key)
            self._checked[key] = self.metrics.checked.labels(*key)

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
            _log.exception("quality engine failed on a sample of service %s feature %s", *sample.key)
            return []

    def observe_numbers(self, call: LLMCall) -> bool:
        """:meth:`observe` (with ``defer_counts``) for a call whose span carried no content, read
        from the normalised record: no sample is built unless the call is flagged. The common
        case on the ingest path. Returns whether the call failed. Never raises."""
        try:
            return self._observe_numbers(call)
        except Exception:  # the ingest path never fails because of the quality engine
            _log.exception(
                "quality engine failed on a call of service %s feature %s", call.service, call.feature
            )
            return False

    def _observe_numbers(self, call: LLMCall) -> bool:
        key = (call.service, call.feature)
        if key not in self._features:
            self._feature(key)
        finish = call.finish_reason
        is_error = bool(call.error_type) or finish == A.FINISH_ERROR
        tokens = call.input_tokens
        limit = None
        if tokens is not None:
            model = call.model
            limit = self._limits.get(model, _UNKNOWN_LIMIT)
            if limit is _UNKNOWN_LIMIT:
                limit = C.context_limit(model, self.settings.context_limits)
                if len(self._limits) < _MAX_MODELS:
                    self._limits[model] = limit
        failed = C.limit_checks(
            call.outcome == OUTCOME_REFUSAL, finish, tokens, limit, self.settings.context_limit_fraction
        )
        counts = self._pending.get(key)
        if counts is None:
            counts = self._pending[key] = [0, 0]
        counts[0] += 1
        counts[1] += not is_error
        if not failed:
            self.charts.observe_numbers(key, is_error, False, call.duration_s, call.cost_usd)
            return is_error
        failures = self._pending_failures
        for name in failed:
            failure = (*key, name)
            failures[failure] = failures.get(failure, 0) + 1
        refused = not _REFUSALS.isdisjoint(failed)
        self.charts.observe_numbers(key, is_error, refused, call.duration_s, call.cost_usd)
        flagging = tuple(name for name in failed if name not in _NOT_FLAGGING)
        if flagging:
            flags = self._pending_flags
            flags[key] = flags.get(key, 0) + 1
            if self._check_quota(key):
                self._flags.save(self._flags.record(sample_from_call(call), (Q.SOURCE_CHECK,), flagging))
            else:
                self._pending_rate_limited += 1
        return is_error

    def flush_counts(self) -> None:
        """Apply the counts deferred by ``observe(..., defer_counts=True)`` and by the numbers path."""
        pending, self._pending = self._pending, {}
        failures, self._pending_failures = self._pending_failures, {}
        for failure, n in failures.items():
            self._child(self.metrics.check_failures, *failure).inc(n)
        flags, self._pending_flags = self._pending_flags, {}
        for key, n in flags.items():
            self._child(self.metrics.flagged, *key, Q.SOURCE_CHECK).inc(n)
        if self._pending_rate_limited:
            self._child(self.metrics.store_dropped, Q.STORE_DROP_RATE_LIMITED).inc(self._pending_rate_limited)
            self._pending_rate_limited = 0
        for key, (calls, responses) in pending.items():
            self._checked[key].inc(calls)
            if responses:
                self.signals.observe_response(key, responses)

    def _observe(self, sample: QualitySample, defer_counts: bool = False) -> list[str]:
        s = self.settings
        feature = sample.feature
        key = (sample.service, feature)
        self._feature(key)
        failed = C.run_checks(
            sample,
            s.rules_for(feature),
            context_fraction=s.context_limit_fraction,
            context_limits=s.context_limits,
        )
        # Only a successful call is a response users can react to (the user-signal denominator).
        answered = not sample.is_error
        if defer_counts:
            counts = self._pending.get(key)
            if counts is None:
                counts = self._pending[key] = [0, 0]
            counts[0] += 1
            counts[1] += answered
        else:
            self._checked[key].inc()
            if answered:
                self.signals.observe_response(key)
        for name in failed:
            self._child(self.metrics.check_failures, *key, name).inc()
        self.charts.observe_call(sample, refused=bool(failed) and not _REFUSALS.isdisjoint(failed))
        has_content = sample.has_content
        if has_content and sample.response_id:
            self._remember(sample)
        if failed:
            flagging = tuple(name for name in failed if name not in _NOT_FLAGGING)
            if flagging:
                self._child(self.metrics.flagged, *key, Q.SOURCE_CHECK).inc()
                if self._check_quota(key):
                    self._flags.save(self._flags.record(sample, (Q.SOURCE_CHECK,), flagging))
                    self._flags.flagged(sample)
                else:
                    self._child(self.metrics.store_dropped, Q.STORE_DROP_RATE_LIMITED).inc()
        if (
            has_content
            and self._accepting
            and s.judge.enabled
            and not sample.is_error
            and is_sampled_bytes(sample.trace_id, s.rate_for(feature))
        ):
            self.judging.offer(sample)
        return failed

    def offer_session(
        self,
        service: str,
        feature: str,
        conversation_id: str,
        *,
        trace_id: bytes,
        messages: list[dict[str, Any]],
        end_ns: int,
    ) -> bool:
        """Queue a closed conversation (its messages, oldest first) for the session judge, behind
        the same guards and budget as the calls; False when the judge is off or stopping."""
        if not (self._accepting and self.settings.judge.enabled):
            return False
        try:
            self._feature((service, feature))
            sample = QualitySample(
                trace_id,
                feature,
                "session",
                input_messages=messages,
                timestamp=end_ns / 1e9,
                content_bytes=sum(len(p["content"]) for m in messages for p in m["parts"]),
                service=service,
                scope=SCOPE_SESSION,
            )
            self.judging.offer(sample)
        except Exception:
            _log.exception("quality engine failed on session %s of service %s", conversation_id, service)
            return False
        return True

    def on_flagged(self, listener: Callable[[QualitySample], None] | None) -> None:
        """Call ``listener`` with each flagged call (check, judge or feedback) of a conversation
        that carried content, once its record is queued for the store."""
        self._flags.on_flagged = listener

    def observe_feedback(self, event: FeedbackEvent) -> None:
        """Count one feedback event; explicit negative feedback and corrections flag the answer."""
        try:
            self._feature(event.key)
            self.signals.observe_feedback(event)
            # Abandonment (negative to the processor) is too weak a signal to flag an answer on.
            explicit_negative = event.kind in _EXPLICIT and event.sentiment == "negative"
            if not explicit_negative and event.kind != A.FEEDBACK_CORRECTION:
                return
            self.metrics.flagged.labels(*event.key, Q.SOURCE_FEEDBACK).inc()
            sample = self._recent.get(event.response_id) if event.response_id else None
            reason = f"feedback:{event.kind}"
            if sample is None:
                sample = QualitySample(
                    event.trace_id,
                    event.feature,
                    "unknown",
                    response_id=event.response_id,
                    timestamp=event.timestamp,
                    service=event.service,
                )
            record = self._flags.record(sample, (Q.SOURCE_FEEDBACK,), (reason,))
            if event.comment:
                record = dataclasses.replace(record, explanation=f"user: {event.comment}")
            self._flags.save(record)
            self._flags.flagged(sample)
        except Exception:
            _log.exception("quality engine failed on feedback of service %s feature %s", *event.key)

    def _remember(self, sample: QualitySample) -> None:
        """Keep ``sample`` for late feedback, within the count and the byte budget (oldest out)."""
        assert sample.response_id is not None
        recent = self._recent
        replaced = recent.pop(sample.response_id, None)
        if replaced is not None:
            self._recent_bytes -= replaced.content_bytes
        recent[sample.response_id] = sample
        self._recent_bytes += sample.content_bytes
        s = self.settings
        while len(recent) > s.recent_samples or (self._recent_bytes > s.recent_bytes and len(recent) > 1):
            reason = Q.RECENT_EVICT_COUNT if len(recent) > s.recent_samples else Q.RECENT_EVICT_BYTES
            _, old = recent.popitem(last=False)
            self._recent_bytes -= old.content_bytes
            self.metrics.recent_evicted.labels(reason).inc()
        self.metrics.recent_bytes.set(self._recent_bytes)

    def _check_quota(self, key: tuple[str, str]) -> bool:
        """Whether one more check-flagged sample of (service, feature) ``key`` may be stored this minute."""
        minute = int(self._clock() // 60.0)
        used = self._quota.get(key)
        if used is None or used[0] != minute:
            used = self._quota[key] = [minute, 0]
        if used[1] >= self.settings.check_samples_per_minute:
            return False
        used[1] += 1
        return True
