"""Prometheus metrics derived from normalised records.

Hot-path updates are plain integer and float arithmetic on per-series objects found by one
dict lookup; the Prometheus families are built only when ``/metrics`` is scraped (see
:mod:`llmpulse.processor.metrics.exposition`). Everything runs on the processor's event loop, so no
locks are needed.

Histograms keep, per bucket, the trace id of the latest observation as an exemplar; they show
in the OpenMetrics exposition only (prometheus-client drops exemplars from the text format).
"""

from __future__ import annotations

from bisect import bisect_left
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
    """Caps the number of distinct values of one label; later values become ``__other__``."""

    __slots__ = ("cap", "name", "values")

    def __init__(self, name: str, cap: int) -> None:
        self.name = name
        self.cap = cap
        self.values: set[str] = set()

    def __call__(self, value: str) -> str:
        """Return ``value`` if it is (or can become) one of the allowed values, else the overflow value.

        Values longer than :data:`MAX_LABEL_LENGTH` are cut to that length.
        """
        if value in self.values:
            return value
        value = value[:MAX_LABEL_LENGTH]
        if value in self.values:
            return value
        if len(self.values) < self.cap:
            self.values.add(value)
            return value
        return M.OVERFLOW_VALUE


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


class StepSeries:
    """Duration and errors of one step of one feature of one service."""

    __slots__ = ("duration", "errors", "labels")

    def __init__(self, labels: tuple[str, str, str, str]) -> None:
        self.labels = labels
        self.duration = Histogram(M.STEP_DURATION_BUCKETS)
        self.errors = 0


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
    """Aggregates records into metric series, with bounded label cardinality."""

    def __init__(self, max_label_values: int = 100, max_series: int = 2000, max_cache: int = 10_000) -> None:
        self._caps = {
            name: LabelCap(name, max_label_values)
            for name in (*M.LLM_LABELS, M.ERROR_TYPE, M.RESPONSE_MODEL, M.STEP, M.KIND, M.PRICING_VERSION)
        }
        self._max_cache = max_cache
        self._max_series = max_series
        self.overflow: dict[str, int] = {}
        self.llm: dict[LLMLabels, LLMSeries] = {}
        self.steps: dict[tuple[str, str, str, str], StepSeries] = {}
        self.feedback: dict[tuple[str, str, str, str, str], int] = {}
        # raw label tuple -> (series, labels that overflowed); bounded by max_cache
        self._llm_cache: dict[LLMLabels, tuple[LLMSeries, tuple[str, ...]]] = {}
        self._mismatch_cache: dict[tuple[str, str], bool] = {}

    def feature_label(self, feature: str) -> str:
        """The ``feature`` label value for ``feature``: itself, cut to length, or ``__other__``
        once the label is at its cap (overflow is counted where the metrics fold it)."""
        return self._caps[M.FEATURE](feature)

    def service_label(self, service: str) -> str:
        """The ``service`` label value for ``service`` (capped like :meth:`feature_label`)."""
        return self._caps[M.SERVICE](service)

    def _cap(self, label: str, value: str) -> str:
        capped = self._caps[label](value)
        if capped is M.OVERFLOW_VALUE and value != M.OVERFLOW_VALUE:
            self.overflow[label] = self.overflow.get(label, 0) + 1
        return capped

    def _llm_series(self, call: LLMCall) -> LLMSeries:
        raw = (call.service, call.environment, call.feature, call.provider, call.model, call.operation)
        hit = self._llm_cache.get(raw)
        if hit is None:
            caps = self._caps
            labels = (
                caps[M.SERVICE](raw[0]),
                caps[M.DEPLOYMENT_ENVIRONMENT](raw[1]),
                caps[M.FEATURE](raw[2]),
                caps[M.PROVIDER](raw[3]),
                caps[M.MODEL](raw[4]),
                caps[M.OPERATION](raw[5]),
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
        series, overflowed = hit
        for name in overflowed:
            self.overflow[name] = self.overflow.get(name, 0) + 1
        return series

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
        series = self._llm_series(call)
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
            version = call.pricing_version
            costs = series.cost
            if version in costs:
                costs[version] += cost
            else:
                capped = self._cap(M.PRICING_VERSION, version)
                costs[capped] = costs.get(capped, 0.0) + cost
        key = (call.finish_reason, call.outcome)
        series.requests[key] = series.requests.get(key, 0) + 1
        if call.outcome is M.OUTCOME_REFUSAL or call.finish_reason == "refusal":
            series.refusals += 1
        if call.error_type:
            error_type = self._cap(M.ERROR_TYPE, call.error_type)
            series.errors[error_type] = series.errors.get(error_type, 0) + 1
        if call.response_model and self._mismatch(call.model, call.response_model):
            response_model = self._cap(M.RESPONSE_MODEL, call.response_model)
            series.mismatches[response_model] = series.mismatches.get(response_model, 0) + 1
        return series.key

    def observe_step(self, step: StepRun) -> None:
        """Count one pipeline step."""
        labels = (
            self._cap(M.SERVICE, step.service),
            self._cap(M.DEPLOYMENT_ENVIRONMENT, step.environment),
            self._cap(M.FEATURE, step.feature),
            self._cap(M.STEP, step.step),
        )
        series = self.steps.get(labels)
        if series is None:
            series = self.steps[labels] = StepSeries(labels)
        series.duration.observe_traced(step.duration_s, step.trace_id, step.end_ns)
        if step.error:
            series.errors += 1

    def observe_feedback(self, feedback: Feedback) -> tuple[str, str]:
        """Count one feedback event; returns its (capped) (service, feature) labels."""
        key = (
            self._cap(M.SERVICE, feedback.service),
            self._cap(M.DEPLOYMENT_ENVIRONMENT, feedback.environment),
            self._cap(M.FEATURE, feedback.feature),
            self._cap(M.KIND, feedback.kind),
            feedback.sentiment,
        )
        self.feedback[key] = self.feedback.get(key, 0) + 1
        return key[0], key[2]
