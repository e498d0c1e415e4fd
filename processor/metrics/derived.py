"""Prometheus metrics derived from normalised records.

Hot-path updates are plain integer and float arithmetic on per-series objects found by one
dict lookup; the Prometheus families are built only when ``/metrics`` is scraped (see
:mod:`llmpulse.processor.metrics.exposition`). Everything runs on the processor's event loop, so no
locks are needed.

Histograms keep, per bucket, the trace id of the latest observation as an exemplar; they show
in the OpenMetrics exposition only (prometheus-client drops exemplars from the text format).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from prometheus_client.samples import Exemplar

from llmpulse.processor.metrics import names as M
from llmpulse.processor.pipeline.records import Feedback, LLMCall, StepRun


class Histogram:
    """Non-cumulative bucket counts, a sum, and one exemplar per bucket."""

    __slots__ = ("bounds", "counts", "ex_time", "ex_trace", "ex_value", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.ex_trace: list[bytes | None] = [None] * (len(bounds) + 1)
        self.ex_value = [0.0] * (len(bounds) + 1)
        self.ex_time = [0] * (len(bounds) + 1)

    def observe(self, value: float) -> None:
        """Count ``value`` without an exemplar."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def observe_traced(self, value: float, trace_id: bytes, time_ns: int) -> None:
        """Count ``value`` and make it the exemplar of its bucket."""
        i = bisect_left(self.bounds, value)
        self.counts[i] += 1
        self.sum += value
        self.ex_trace[i] = trace_id
        self.ex_value[i] = value
        self.ex_time[i] = time_ns

    def buckets(self) -> list[Any]:
        """Cumulative buckets in the form ``HistogramMetricFamily.add_metric`` takes."""
        out: list[Any] = []
        total = 0
        for i, count in enumerate(self.counts):
            total += count
            le = repr(self.bounds[i]) if i < len(self.bounds) else "+Inf"
            trace = self.ex_trace[i]
            if trace:
                exemplar = Exemplar({"trace_id": trace.hex()}, self.ex_value[i], self.ex_time[i] / 1e9)
                out.append((le, total, exemplar))
            else:
                out.append((le, total))
        return out


MAX_LABEL_LENGTH = 128


class LabelCap:
    """Caps the number of distinct values of one label; later values become ``__other__``.

    Each admitted value remembers when it was last seen (``values``: value -> time); a value
    unseen for the idle time is dropped by :meth:`expire` and its slot goes to the next new value.
    """

    __slots__ = ("cap", "name", "values")

    def __init__(self, name: str, cap: int) -> None:
        self.name = name
        self.cap = cap
        self.values: dict[str, float] = {}

    def __call__(self, value: str, now: float = 0.0) -> str:
        """Return ``value`` if it is (or can become) one of the allowed values, else the overflow value.

        Values longer than :data:`MAX_LABEL_LENGTH` are cut to that length. ``now`` is the time
        the value is seen at (the clock of :class:`DerivedMetrics`).
        """
        values = self.values
        if value in values:
            values[value] = now
            return value
        value = value[:MAX_LABEL_LENGTH]
        if value in values or len(values) < self.cap:
            values[value] = now
            return value
        return M.OVERFLOW_VALUE

    def touch(self, value: str, seen: float) -> None:
        """Make ``seen`` the value's last-seen time if it is later (for uses that skip the cap)."""
        values = self.values
        if values.get(value, seen) < seen:
            values[value] = seen

    def expire(self, cutoff: float) -> set[str]:
        """Drop the values last seen before ``cutoff``; returns them."""
        gone = {value for value, seen in self.values.items() if seen < cutoff}
        for value in gone:
            del self.values[value]
        return gone


LLMLabels = tuple[str, str, str, str, str, str]
"""Values of :data:`~llmpulse.processor.metrics.names.LLM_LABELS`, in that order."""


class LLMSeries:
    """Everything derived from LLM calls that share service, environment, feature, provider,
    model and operation."""

    __slots__ = (
        "cost",
        "duration",
        "errors",
        "key",
        "labels",
        "mismatches",
        "refusals",
        "requests",
        "scopes",
        "seen",
        "tokens",
        "tokens_in",
        "tokens_out",
        "ttfc",
        "unpriced",
    )

    def __init__(self, labels: LLMLabels) -> None:
        self.labels = labels
        self.key = (labels[0], labels[2])  # (service, feature): the rolling windows' key
        self.duration = Histogram(M.DURATION_BUCKETS)
        self.ttfc = Histogram(M.DURATION_BUCKETS)
        self.tokens_in = Histogram(M.TOKEN_BUCKETS)
        self.tokens_out = Histogram(M.TOKEN_BUCKETS)
        self.tokens = [0] * len(M.TOKEN_TYPES)
        self.cost: dict[str, float] = {}  # pricing_version -> USD
        self.unpriced = 0
        self.refusals = 0
        self.requests: dict[tuple[str, str], int] = {}
        self.errors: dict[str, int] = {}
        self.mismatches: dict[str, int] = {}
        self.scopes: dict[tuple[str, str], int] = {}  # (scope dimension, capped value) -> calls
        self.seen = 0.0  # when a call last counted here (DerivedMetrics' clock)


class StepSeries:
    """Duration and errors of one step of one feature of one service."""

    __slots__ = ("duration", "errors", "labels", "seen")

    def __init__(self, labels: tuple[str, str, str, str]) -> None:
        self.labels = labels
        self.duration = Histogram(M.STEP_DURATION_BUCKETS)
        self.errors = 0
        self.seen = 0.0


def is_model_mismatch(request_model: str, response_model: str) -> bool:
    """True when the response model is neither the requested model nor a dated snapshot of it.

    ``gpt-4o`` -> ``gpt-4o-2024-08-06`` and ``claude-3-5-sonnet-latest`` ->
    ``claude-3-5-sonnet-20241022`` are not mismatches; ``gpt-4o`` -> ``gpt-4o-mini`` is.
    """
    if not response_model or response_model == request_model:
        return False
    base = request_model.removesuffix("-latest")
    if response_model.startswith(base):
        rest = response_model[len(base) :]
        if len(rest) >= 2 and rest[0] in "-@:" and rest[1].isdigit():
            return False
    return True


class Accounting:
    """The processor's self-metrics: where every received span went."""

    def __init__(self, queue_capacity: int) -> None:
        self.received = dict.fromkeys(M.RECEIVERS, 0)
        self.accepted = dict.fromkeys(M.ACCEPTED_KINDS, 0)
        self.rejected = dict.fromkeys(M.REJECT_REASONS, 0)
        self.refused_spans = {(r, reason): 0 for r in M.RECEIVERS for reason in M.REFUSE_REASONS}
        self.refused_requests = {(r, reason): 0 for r in M.RECEIVERS for reason in M.REFUSE_REASONS}
        self.queue_spans = 0
        self.queue_capacity = queue_capacity
        self.batch_seconds = Histogram(M.BATCH_SECONDS_BUCKETS)

    def refuse(self, receiver: str, reason: str, spans: int) -> None:
        """Record one request refused whole, holding ``spans`` spans (0 if never decoded)."""
        self.refused_requests[receiver, reason] += 1
        self.refused_spans[receiver, reason] += spans


class DerivedMetrics:
    """Aggregates records into metric series, with bounded label cardinality.

    Every free-form label is capped at ``max_label_values`` values and the LLM label sets at
    ``max_series``; what comes past a cap is folded into ``__other__``. Caps age: a series not
    counted for ``idle_seconds`` is dropped, and so is a label value none of whose uses was seen
    for that long, which frees its slot (counted per label in ``evictions``). Ageing runs at most
    every ``idle_seconds / 10`` (and at most every minute), from the observe calls, so a value
    leaves between ``idle_seconds`` and ``1.1 * idle_seconds`` after its last use. ``clock``
    (seconds, monotonic) is read once per observed record.
    """

    def __init__(
        self,
        max_label_values: int = 100,
        max_series: int = 2000,
        max_cache: int = 10_000,
        *,
        idle_seconds: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._caps = {
            name: LabelCap(name, max_label_values)
            for name in (
                *M.LLM_LABELS,
                M.ERROR_TYPE,
                M.RESPONSE_MODEL,
                M.STEP,
                M.KIND,
                M.PRICING_VERSION,
                *M.SCOPE_DIMENSIONS,
            )
        }
        self._max_cache = max_cache
        self._max_series = max_series
        self._idle = idle_seconds
        self._sweep_every = min(idle_seconds / 10, 60.0)
        self._clock = clock
        self._now = clock()
        self._next_sweep = self._now + self._sweep_every
        self.overflow: dict[str, int] = {}
        self.evictions: dict[str, int] = dict.fromkeys(self._caps, 0)  # exposed from the start
        self.llm: dict[LLMLabels, LLMSeries] = {}
        self.steps: dict[tuple[str, str, str, str], StepSeries] = {}
        self.feedback: dict[tuple[str, str, str, str, str], int] = {}
        self._feedback_seen: dict[tuple[str, str, str, str, str], float] = {}
        # raw label tuple -> (series, labels that overflowed); bounded by max_cache
        self._llm_cache: dict[LLMLabels, tuple[LLMSeries, tuple[str, ...]]] = {}
        self._mismatch_cache: dict[tuple[str, str], bool] = {}
        self._pricing_cap = self._caps[M.PRICING_VERSION]

    def feature_label(self, feature: str) -> str:
        """The ``feature`` label value for ``feature``: itself, cut to length, or ``__other__``
        once the label is at its cap (overflow is counted where the metrics fold it)."""
        return self._caps[M.FEATURE](feature, self._now)

    def service_label(self, service: str) -> str:
        """The ``service`` label value for ``service`` (capped like :meth:`feature_label`)."""
        return self._caps[M.SERVICE](service, self._now)

    def _tick(self) -> float:
        now = self._now = self._clock()
        if now >= self._next_sweep:
            self.expire_idle(now)
        return now

    def expire_idle(self, now: float) -> None:
        """Drop the series and label values unseen since ``now - idle_seconds`` (see the class)."""
        self._next_sweep = now + self._sweep_every
        cutoff = now - self._idle
        caps = self._caps
        # counted calls found through the cache skip the caps: their series know when they were seen
        llm_caps = [caps[name] for name in M.LLM_LABELS]
        for labels, series in self.llm.items():
            for cap, value in zip(llm_caps, labels, strict=True):
                cap.touch(value, series.seen)
        gone: dict[str, set[str]] = {}
        for name, cap in caps.items():
            expired = cap.expire(cutoff)
            expired.discard(M.OVERFLOW_VALUE)
            if expired:
                gone[name] = expired
                self.evictions[name] = self.evictions.get(name, 0) + len(expired)
        dropped = [labels for labels, series in self.llm.items() if series.seen < cutoff]
        for labels in dropped:
            del self.llm[labels]
        for series in self.llm.values():
            for name, table in (
                (M.ERROR_TYPE, series.errors),
                (M.RESPONSE_MODEL, series.mismatches),
                (M.PRICING_VERSION, series.cost),
            ):
                for value in gone.get(name, ()):
                    table.pop(value, None)
            for dimension in M.SCOPE_DIMENSIONS:
                for value in gone.get(dimension, ()):
                    series.scopes.pop((dimension, value), None)
        for step in [key for key, series in self.steps.items() if series.seen < cutoff]:
            del self.steps[step]
        for key in [key for key, seen in self._feedback_seen.items() if seen < cutoff]:
            del self.feedback[key], self._feedback_seen[key]
        if gone or dropped:
            # cached raw label tuples may point at dropped series or at __other__ for a value
            # that can now have a slot of its own
            self._llm_cache.clear()

    def _cap(self, label: str, value: str) -> str:
        capped = self._caps[label](value, self._now)
        if capped is M.OVERFLOW_VALUE and value != M.OVERFLOW_VALUE:
            self.overflow[label] = self.overflow.get(label, 0) + 1
        return capped

    def _llm_series(self, raw: LLMLabels) -> tuple[LLMSeries, tuple[str, ...]]:
        """The series of the raw label values ``raw`` and the labels that overflowed (cached)."""
        caps, now = self._caps, self._now
        labels = (
            caps[M.SERVICE](raw[0], now),
            caps[M.DEPLOYMENT_ENVIRONMENT](raw[1], now),
            caps[M.FEATURE](raw[2], now),
            caps[M.PROVIDER](raw[3], now),
            caps[M.MODEL](raw[4], now),
            caps[M.OPERATION](raw[5], now),
        )
        overflowed = tuple(
            name
            for name, value, capped in zip(M.LLM_LABELS, raw, labels, strict=True)
            if capped is M.OVERFLOW_VALUE and value != M.OVERFLOW_VALUE
        )
        series = self.llm.get(labels)
        if series is None and len(self.llm) >= self._max_series:
            # each label is under its cap but their combinations are not: fold the whole set
            other = M.OVERFLOW_VALUE
            labels = (other, other, other, other, other, other)  # one per M.LLM_LABELS
            overflowed = (M.OVERFLOW_SERIES,)
            series = self.llm.get(labels)
        if series is None:
            series = self.llm[labels] = LLMSeries(labels)
        hit = (series, overflowed)
        if len(self._llm_cache) < self._max_cache:
            self._llm_cache[raw] = hit
        return hit

    def _mismatch(self, request_model: str, response_model: str) -> bool:
        key = (request_model, response_model)
        known = self._mismatch_cache.get(key)
        if known is None:
            known = is_model_mismatch(request_model, response_model)
            if len(self._mismatch_cache) < self._max_cache:
                self._mismatch_cache[key] = known
        return known

    def observe_llm(self, call: LLMCall) -> tuple[str, str]:
        """Count one LLM call; returns the (capped) (service, feature) labels for the rolling windows."""
        # the hot path: _tick, the series cache, _cap and _mismatch inlined for their common case
        now = self._now = self._clock()
        if now >= self._next_sweep:
            self.expire_idle(now)
        raw = (call.service, call.environment, call.feature, call.provider, call.model, call.operation)
        hit = self._llm_cache.get(raw)
        series, overflowed = self._llm_series(raw) if hit is None else hit
        if overflowed:
            for name in overflowed:
                self.overflow[name] = self.overflow.get(name, 0) + 1
        series.seen = now
        series.duration.observe_traced(call.duration_s, call.trace_id, call.end_ns)
        if call.ttfc_s is not None:
            series.ttfc.observe_traced(call.ttfc_s, call.trace_id, call.end_ns)
        tokens = series.tokens
        if call.input_tokens is not None:
            series.tokens_in.observe(call.input_tokens)
            tokens[0] += call.input_tokens
        if call.output_tokens is not None:
            series.tokens_out.observe(call.output_tokens)
            tokens[1] += call.output_tokens
        if call.cache_read_tokens:
            tokens[2] += call.cache_read_tokens
        if call.cache_creation_tokens:
            tokens[3] += call.cache_creation_tokens
        if call.reasoning_tokens:
            tokens[4] += call.reasoning_tokens
        cost = call.cost_usd
        if cost is None:
            if call.outcome != M.OUTCOME_ERROR:  # a failed call costs nothing to know
                series.unpriced += 1
        else:
            costs = series.cost
            version = self._pricing_cap(call.pricing_version, now)
            if version is M.OVERFLOW_VALUE and call.pricing_version != M.OVERFLOW_VALUE:
                self.overflow[M.PRICING_VERSION] = self.overflow.get(M.PRICING_VERSION, 0) + 1
            costs[version] = costs.get(version, 0.0) + cost
        key = (call.finish_reason, call.outcome)
        series.requests[key] = series.requests.get(key, 0) + 1
        if call.outcome is M.OUTCOME_REFUSAL or call.finish_reason == "refusal":
            series.refusals += 1
        if call.error_type:
            error_type = self._cap(M.ERROR_TYPE, call.error_type)
            series.errors[error_type] = series.errors.get(error_type, 0) + 1
        response_model = call.response_model
        if response_model:
            mismatch = self._mismatch_cache.get((call.model, response_model))
            if mismatch is None:
                mismatch = self._mismatch(call.model, response_model)
            if mismatch:
                response_model = self._cap(M.RESPONSE_MODEL, response_model)
                series.mismatches[response_model] = series.mismatches.get(response_model, 0) + 1
        if call.prompt_version or call.app_version or call.query_category or call.rag_index_version:
            self._count_scopes(series, call)
        return series.key

    def _count_scopes(self, series: LLMSeries, call: LLMCall) -> None:
        scopes = series.scopes
        for dimension, value in (
            (M.SCOPE_PROMPT_VERSION, call.prompt_version),
            (M.SCOPE_APP_VERSION, call.app_version),
            (M.SCOPE_QUERY_CATEGORY, call.query_category),
            (M.SCOPE_RAG_INDEX_VERSION, call.rag_index_version),
        ):
            if value:
                key = (dimension, self._cap(dimension, value))
                scopes[key] = scopes.get(key, 0) + 1

    def observe_step(self, step: StepRun) -> None:
        """Count one pipeline step."""
        now = self._tick()
        labels = (
            self._cap(M.SERVICE, step.service),
            self._cap(M.DEPLOYMENT_ENVIRONMENT, step.environment),
            self._cap(M.FEATURE, step.feature),
            self._cap(M.STEP, step.step),
        )
        series = self.steps.get(labels)
        if series is None:
            series = self.steps[labels] = StepSeries(labels)
        series.seen = now
        series.duration.observe_traced(step.duration_s, step.trace_id, step.end_ns)
        if step.error:
            series.errors += 1

    def observe_feedback(self, feedback: Feedback) -> tuple[str, str]:
        """Count one feedback event; returns its (capped) (service, feature) labels."""
        now = self._tick()
        key = (
            self._cap(M.SERVICE, feedback.service),
            self._cap(M.DEPLOYMENT_ENVIRONMENT, feedback.environment),
            self._cap(M.FEATURE, feedback.feature),
            self._cap(M.KIND, feedback.kind),
            feedback.sentiment,
        )
        self.feedback[key] = self.feedback.get(key, 0) + 1
        self._feedback_seen[key] = now
        return key[0], key[2]
