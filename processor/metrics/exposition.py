"""Exposition: the processor's aggregates as Prometheus metric families, built on each scrape.

:class:`MetricsCollector` is a prometheus-client custom collector; :func:`build_registry` puts
it on a fresh ``CollectorRegistry`` of its own. Names, labels and help texts come from
:mod:`llmpulse.processor.metrics.names`. Being a custom collector, nothing here exposes
``_created`` series.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from llmpulse import __version__
from llmpulse.processor.metrics import names as M
from llmpulse.processor.metrics.derived import Accounting, DerivedMetrics

_SPECS = M.METRICS_BY_NAME


def _family(name: str, labels: tuple[str, ...] | None = None) -> Any:
    spec = _SPECS[name]
    names = list(spec.labels if labels is None else labels)
    if spec.type == "counter":
        return CounterMetricFamily(spec.family, spec.help, labels=names)
    if spec.type == "gauge":
        return GaugeMetricFamily(spec.family, spec.help, labels=names)
    return HistogramMetricFamily(spec.family, spec.help, labels=names)


class MetricsCollector(Collector):
    """Exposes :class:`DerivedMetrics` and :class:`Accounting` as Prometheus families."""

    def __init__(self, derived: DerivedMetrics, accounting: Accounting) -> None:
        self._derived = derived
        self._accounting = accounting

    def collect(self) -> Iterator[Any]:
        """Build every family from the current state (called on each scrape)."""
        yield from self._collect_llm()
        yield from self._collect_steps()
        yield from self._collect_self()

    def _collect_llm(self) -> Iterator[Any]:
        d = self._derived
        duration, ttfc, usage = (
            _family(M.OPERATION_DURATION),
            _family(M.TIME_TO_FIRST_CHUNK),
            _family(M.TOKEN_USAGE),
        )
        requests, errors, refusals = (
            _family(M.REQUESTS_TOTAL),
            _family(M.ERRORS_TOTAL),
            _family(M.REFUSALS_TOTAL),
        )
        tokens, cost, unpriced = (
            _family(M.TOKENS_TOTAL),
            _family(M.COST_USD_TOTAL),
            _family(M.UNPRICED_REQUESTS_TOTAL),
        )
        mismatch = _family(M.MODEL_MISMATCH_TOTAL)
        for labels, s in list(d.llm.items()):
            lv = list(labels)
            duration.add_metric(lv, s.duration.buckets(), s.duration.sum)
            if any(s.ttfc.counts):
                ttfc.add_metric(lv, s.ttfc.buckets(), s.ttfc.sum)
            for token_type, hist in ((M.TOKEN_INPUT, s.tokens_in), (M.TOKEN_OUTPUT, s.tokens_out)):
                if any(hist.counts):
                    usage.add_metric([*lv, token_type], hist.buckets(), hist.sum)
            for (finish, outcome), n in s.requests.items():
                requests.add_metric([*lv, finish, outcome], n)
            for error_type, n in s.errors.items():
                errors.add_metric([*lv, error_type], n)
            refusals.add_metric(lv, s.refusals)
            for token_type, n in zip(M.TOKEN_TYPES, s.tokens, strict=True):
                tokens.add_metric([*lv, token_type], n)
            cost.add_metric(lv, s.cost)
            unpriced.add_metric(lv, s.unpriced)
            for response_model, n in s.mismatches.items():
                mismatch.add_metric([*lv, response_model], n)
        yield from (duration, usage, ttfc, requests, errors, refusals, tokens, cost, unpriced, mismatch)
        overflow = _family(M.LABEL_OVERFLOW_TOTAL)
        for label, n in sorted(d.overflow.items()):
            overflow.add_metric([label], n)
        yield overflow

    def _collect_steps(self) -> Iterator[Any]:
        d = self._derived
        duration, errors = _family(M.STEP_DURATION), _family(M.STEP_ERRORS_TOTAL)
        for labels, s in list(d.steps.items()):
            duration.add_metric(list(labels), s.duration.buckets(), s.duration.sum)
            errors.add_metric(list(labels), s.errors)
        feedback = _family(M.FEEDBACK_TOTAL)
        for key, n in list(d.feedback.items()):
            feedback.add_metric(list(key), n)
        yield from (duration, errors, feedback)

    def _collect_self(self) -> Iterator[Any]:
        a = self._accounting
        received, accepted = _family(M.SPANS_RECEIVED_TOTAL), _family(M.SPANS_ACCEPTED_TOTAL)
        rejected = _family(M.SPANS_REJECTED_TOTAL)
        refused_spans, refused_requests = _family(M.SPANS_REFUSED_TOTAL), _family(M.REQUESTS_REFUSED_TOTAL)
        for receiver, n in a.received.items():
            received.add_metric([receiver], n)
        for kind, n in a.accepted.items():
            accepted.add_metric([kind], n)
        for reason, n in a.rejected.items():
            rejected.add_metric([reason], n)
        for (receiver, reason), n in a.refused_spans.items():
            refused_spans.add_metric([receiver, reason], n)
        for (receiver, reason), n in a.refused_requests.items():
            refused_requests.add_metric([receiver, reason], n)
        queue, capacity = _family(M.QUEUE_SPANS), _family(M.QUEUE_CAPACITY_SPANS)
        queue.add_metric([], a.queue_spans)
        capacity.add_metric([], a.queue_capacity)
        batch = _family(M.BATCH_PROCESSING_SECONDS)
        batch.add_metric([], a.batch_seconds.buckets(), a.batch_seconds.sum)
        info = _family(M.BUILD_INFO)
        info.add_metric([__version__], 1)
        yield from (
            received,
            accepted,
            rejected,
            refused_spans,
            refused_requests,
            queue,
            capacity,
            batch,
            info,
        )


def build_registry(derived: DerivedMetrics, accounting: Accounting) -> CollectorRegistry:
    """A fresh registry holding only the processor's metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(derived, accounting))
    return registry
