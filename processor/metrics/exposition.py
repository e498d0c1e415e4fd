"""Exposition: the processor's aggregates as Prometheus metric families, built on each scrape.

:class:`MetricsCollector` is a prometheus-client custom collector; :func:`build_registry` puts
it on a fresh ``CollectorRegistry`` of its own. Names, labels and help texts come from
:mod:`llmpulse.processor.metrics.names`. Being a custom collector, nothing here exposes
``_created`` series.

New series are visible from their first event: with ``announce_new_series`` (the registry behind
the ``/metrics`` endpoint Prometheus scrapes), a counter or histogram series whose label set has
not been exposed before is exposed at zero on that scrape and with its real value from the next
scrape on. Prometheus so has a 0 sample before the first non-zero one, and ``rate()`` and
``increase()`` count the first events of a new feature, model or error type instead of starting
from them. The price is one scrape interval of delay for a new series' first counts. In-process
readers (``llmpulse status``, tests) use a registry without it and see the counts at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from llmpulse import __version__
from llmpulse.processor.metrics import names as M
from llmpulse.processor.metrics.derived import Accounting, DerivedMetrics, Histogram

_SPECS = M.METRICS_BY_NAME


def _family(name: str, labels: tuple[str, ...] | None = None) -> Any:
    spec = _SPECS[name]
    names = list(spec.labels if labels is None else labels)
    if spec.type == "counter":
        return CounterMetricFamily(spec.family, spec.help, labels=names)
    if spec.type == "gauge":
        return GaugeMetricFamily(spec.family, spec.help, labels=names)
    return HistogramMetricFamily(spec.family, spec.help, labels=names)


class _Announcer:
    """Remembers which series the last scrape exposed; a series it did not is shown at zero.

    Only the last scrape's series are remembered, so the memory follows the live series (series
    dropped by the caps' ageing are forgotten, and announced again should they come back).
    """

    __slots__ = ("previous", "seen")

    def __init__(self) -> None:
        self.previous: set[tuple[str, tuple[str, ...]]] = set()
        self.seen: set[tuple[str, tuple[str, ...]]] = set()

    def begin(self) -> None:
        """Start a scrape."""
        self.previous, self.seen = self.seen, set()

    def counter(self, family: Any, labels: list[str], value: float) -> None:
        key = (family.name, tuple(labels))
        self.seen.add(key)
        if key not in self.previous:
            value = 0
        family.add_metric(labels, value)

    def histogram(self, family: Any, labels: list[str], hist: Histogram) -> None:
        key = (family.name, tuple(labels))
        self.seen.add(key)
        if key not in self.previous:
            zero = [(le, 0) for le, *_ in hist.buckets()]
            family.add_metric(labels, zero, 0.0)
        else:
            family.add_metric(labels, hist.buckets(), hist.sum)


class _Direct:
    """Every series with its current value."""

    __slots__ = ()

    def begin(self) -> None:
        """Start a scrape (nothing to remember)."""

    def counter(self, family: Any, labels: list[str], value: float) -> None:
        family.add_metric(labels, value)

    def histogram(self, family: Any, labels: list[str], hist: Histogram) -> None:
        family.add_metric(labels, hist.buckets(), hist.sum)


class MetricsCollector(Collector):
    """Exposes :class:`DerivedMetrics` and :class:`Accounting` as Prometheus families.

    ``announce_new_series`` exposes each new series at zero on its first collection (see the
    module docstring).
    """

    def __init__(
        self, derived: DerivedMetrics, accounting: Accounting, *, announce_new_series: bool = False
    ) -> None:
        self._derived = derived
        self._accounting = accounting
        self._out: _Announcer | _Direct = _Announcer() if announce_new_series else _Direct()

    def collect(self) -> Iterator[Any]:
        """Build every family from the current state (called on each scrape)."""
        self._out.begin()
        yield from self._collect_llm()
        yield from self._collect_steps()
        yield from self._collect_self()

    def _collect_llm(self) -> Iterator[Any]:
        d, out = self._derived, self._out
        counter, histogram = out.counter, out.histogram
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
            histogram(duration, lv, s.duration)
            if any(s.ttfc.counts):
                histogram(ttfc, lv, s.ttfc)
            for token_type, hist in ((M.TOKEN_INPUT, s.tokens_in), (M.TOKEN_OUTPUT, s.tokens_out)):
                if any(hist.counts):
                    histogram(usage, [*lv, token_type], hist)
            for (finish, outcome), n in list(s.requests.items()):
                counter(requests, [*lv, finish, outcome], n)
            for error_type, n in list(s.errors.items()):
                counter(errors, [*lv, error_type], n)
            counter(refusals, lv, s.refusals)
            for token_type, n in zip(M.TOKEN_TYPES, s.tokens, strict=True):
                counter(tokens, [*lv, token_type], n)
            for version, usd in list(s.cost.items()):
                counter(cost, [*lv, version], usd)
            counter(unpriced, lv, s.unpriced)
            for response_model, n in list(s.mismatches.items()):
                counter(mismatch, [*lv, response_model], n)
        yield from (duration, usage, ttfc, requests, errors, refusals, tokens, cost, unpriced, mismatch)
        overflow = _family(M.LABEL_OVERFLOW_TOTAL)
        for label, n in sorted(d.overflow.items()):
            counter(overflow, [label], n)
        evictions = _family(M.LABEL_EVICTIONS_TOTAL)
        for label, n in sorted(d.evictions.items()):
            counter(evictions, [label], n)
        yield from (overflow, evictions)

    def _collect_steps(self) -> Iterator[Any]:
        d, out = self._derived, self._out
        duration, errors = _family(M.STEP_DURATION), _family(M.STEP_ERRORS_TOTAL)
        for labels, s in list(d.steps.items()):
            out.histogram(duration, list(labels), s.duration)
            out.counter(errors, list(labels), s.errors)
        feedback = _family(M.FEEDBACK_TOTAL)
        for key, n in list(d.feedback.items()):
            out.counter(feedback, list(key), n)
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


def build_registry(
    derived: DerivedMetrics, accounting: Accounting, *, announce_new_series: bool = False
) -> CollectorRegistry:
    """A fresh registry holding only the processor's metrics (``announce_new_series``: see
    :class:`MetricsCollector`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(derived, accounting, announce_new_series=announce_new_series))
    return registry
