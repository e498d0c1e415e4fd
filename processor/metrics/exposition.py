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

With the Kafka source the scrape endpoint's collector is ``withholding`` instead: it remembers
what each scrape showed, so that a zombie replica can take back what it counted and never
committed (:mod:`llmpulse.processor.metrics.shown`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from llmpulse import __version__
from llmpulse.processor.metrics import names as M
from llmpulse.processor.metrics.derived import Accounting, DerivedMetrics, Histogram
from llmpulse.processor.metrics.writers import (
    Announcer,
    Capture,
    Direct,
    Withholding,
    Writer,
    le_strings,
)

_SPECS = M.METRICS_BY_NAME
_MEMO_LIMIT = 200_000  # label sets; at the default caps a scrape writes about 40,000


def _family(name: str, labels: tuple[str, ...] | None = None) -> Any:
    """A prometheus-client family for metric ``name``."""
    spec = _SPECS[name]
    names = list(spec.labels if labels is None else labels)
    if spec.type == "counter":
        return CounterMetricFamily(spec.family, spec.help, labels=names)
    if spec.type == "gauge":
        return GaugeMetricFamily(spec.family, spec.help, labels=names)
    return HistogramMetricFamily(spec.family, spec.help, labels=names)


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def _number(value: float) -> str:
    return str(value) if type(value) is int else floatToGoString(value)


class _TextFamily:
    """A family written straight to exposition text (the ``/metrics`` fast path).

    It takes the same ``add_metric`` calls as prometheus-client's families and writes the same
    samples, without building sample objects or escaping each label on each scrape: label
    sets are written once and remembered across scrapes in ``memo`` (label set -> text, one
    memo per family; the collector clears them when they grow past a limit).
    """

    __slots__ = ("_labels", "_memo", "lines", "name", "openmetrics", "sample", "spec")

    def __init__(
        self,
        name: str,
        labels: tuple[str, ...] | None,
        openmetrics: bool,
        memo: dict[tuple[str, ...], str],
    ) -> None:
        spec = self.spec = _SPECS[name]
        self.name = spec.family  # what the announcer keys on, as for prometheus-client's families
        self.openmetrics = openmetrics
        self._labels = spec.labels if labels is None else labels
        self._memo = memo
        self.sample = spec.name if spec.type != "histogram" else spec.family
        header = spec.family if openmetrics or spec.type != "counter" else spec.name
        help_text = spec.help.replace("\\", "\\\\").replace("\n", "\\n")
        if openmetrics:
            help_text = help_text.replace('"', '\\"')
        self.lines = [f"# HELP {header} {help_text}\n# TYPE {header} {spec.type}\n"]

    def _label_text(self, values: list[str]) -> str:
        key = tuple(values)
        text = self._memo.get(key)
        if text is None:
            pairs = zip(self._labels, values, strict=True)
            text = self._memo[key] = ",".join(f'{name}="{_escape(value)}"' for name, value in pairs)
        return text

    def add_metric(self, labels: list[str], value: Any, sum_value: float | None = None) -> None:
        """A counter or gauge sample (``value``), or a histogram (``value`` are its buckets)."""
        text = self._label_text(labels)
        lines = self.lines
        if sum_value is None:
            lines.append(
                f"{self.sample}{{{text}}} {_number(value)}\n" if text else f"{self.sample} {_number(value)}\n"
            )
            return
        prefix = f"{self.sample}_bucket{{{text},le=" if text else f"{self.sample}_bucket{{le="
        total = 0
        for bucket in value:
            le, total = bucket[0], bucket[1]
            if len(bucket) > 2 and self.openmetrics:
                ex = bucket[2]
                trace = ex.labels["trace_id"]
                lines.append(
                    f'{prefix}"{le}"}} {total} # {{trace_id="{trace}"}} {_number(ex.value)} {ex.timestamp}\n'
                )
            else:
                lines.append(f'{prefix}"{le}"}} {total}\n')
        suffix = f"{{{text}}}" if text else ""
        lines.append(f"{self.sample}_count{suffix} {total}\n{self.sample}_sum{suffix} {_number(sum_value)}\n")

    def add_histogram(self, labels: list[str], hist: Histogram) -> None:
        """The samples of ``hist``, written from its arrays (no bucket or exemplar objects)."""
        text = self._label_text(labels)
        sample, lines = self.sample, self.lines
        prefix = f"{sample}_bucket{{{text},le=" if text else f"{sample}_bucket{{le="
        les = le_strings(hist.bounds)
        traces = hist.ex_trace if self.openmetrics else ()
        total = 0
        for i, count in enumerate(hist.counts):
            total += count
            trace = traces[i] if traces else None
            if trace:
                value, when = _number(hist.ex_value[i]), hist.ex_time[i] / 1e9
                lines.append(f'{prefix}"{les[i]}"}} {total} # {{trace_id="{trace.hex()}"}} {value} {when}\n')
            else:
                lines.append(f'{prefix}"{les[i]}"}} {total}\n')
        suffix = f"{{{text}}}" if text else ""
        lines.append(f"{sample}_count{suffix} {total}\n{sample}_sum{suffix} {_number(hist.sum)}\n")

    def text(self) -> str:
        """The family's exposition text (header lines even with no samples, as prometheus-client)."""
        return "".join(self.lines)


class MetricsCollector(Collector):
    """Exposes :class:`DerivedMetrics` and :class:`Accounting` as Prometheus families.

    ``announce_new_series`` exposes each new series at zero on its first collection (see the
    module docstring). ``withholding`` (the Kafka source's scrape endpoint, instead) remembers
    what each collection showed, for :meth:`withhold_unshown`.
    """

    def __init__(
        self,
        derived: DerivedMetrics,
        accounting: Accounting,
        *,
        announce_new_series: bool = False,
        withholding: bool = False,
    ) -> None:
        if announce_new_series and withholding:
            raise ValueError("announce_new_series and withholding exclude each other")
        self._derived = derived
        self._accounting = accounting
        self._out: Writer = Announcer() if announce_new_series else Withholding() if withholding else Direct()
        self._new: Callable[..., Any] = _family
        # family name -> label values -> label text, for render()
        self._memo: dict[str, dict[tuple[str, ...], str]] = {}

    def render(self, *, openmetrics: bool) -> str:
        """The same families as :meth:`collect`, as exposition text (OpenMetrics without the
        ``# EOF`` line, or the Prometheus text format), written directly: at the series cap this
        is several times cheaper than prometheus-client's encoders."""
        memo = self._memo
        if sum(map(len, memo.values())) > _MEMO_LIMIT:
            memo.clear()  # label sets that aged out (metrics.derived) must not stay here for good

        def new(name: str, labels: tuple[str, ...] | None = None) -> _TextFamily:
            return _TextFamily(name, labels, openmetrics, memo.setdefault(name, {}))

        self._new = new
        try:
            families = list(self.collect())
        finally:
            self._new = _family
        return "".join(family.text() for family in families)

    def withhold_unshown(self) -> int:
        """Withhold from every later collection the counts added since the last one (see
        :mod:`llmpulse.processor.metrics.shown`); returns the number of series concerned.
        Only with ``withholding``."""
        shown = self._out
        if not isinstance(shown, Withholding):
            raise TypeError("withhold_unshown needs a MetricsCollector built with withholding=True")
        capture = self._out = Capture()
        try:
            for _family_built in self.collect():
                pass
        finally:
            self._out = shown
        return shown.shown.withhold(capture.counters, capture.histograms)

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
            self._new(M.OPERATION_DURATION),
            self._new(M.TIME_TO_FIRST_CHUNK),
            self._new(M.TOKEN_USAGE),
        )
        requests, errors, refusals = (
            self._new(M.REQUESTS_TOTAL),
            self._new(M.ERRORS_TOTAL),
            self._new(M.REFUSALS_TOTAL),
        )
        tokens, cost, unpriced = (
            self._new(M.TOKENS_TOTAL),
            self._new(M.COST_USD_TOTAL),
            self._new(M.UNPRICED_REQUESTS_TOTAL),
        )
        mismatch, scope = self._new(M.MODEL_MISMATCH_TOTAL), self._new(M.SCOPE_REQUESTS_TOTAL)
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
            for (dimension, value), n in list(s.scopes.items()):
                counter(scope, [*lv, dimension, value], n)
        yield from (
            duration,
            usage,
            ttfc,
            requests,
            errors,
            refusals,
            tokens,
            cost,
            unpriced,
            mismatch,
            scope,
        )
        overflow = self._new(M.LABEL_OVERFLOW_TOTAL)
        for label, n in sorted(d.overflow.items()):
            counter(overflow, [label], n)
        evictions = self._new(M.LABEL_EVICTIONS_TOTAL)
        for label, n in sorted(d.evictions.items()):
            counter(evictions, [label], n)
        yield from (overflow, evictions)

    def _collect_steps(self) -> Iterator[Any]:
        d, out = self._derived, self._out
        duration, errors = self._new(M.STEP_DURATION), self._new(M.STEP_ERRORS_TOTAL)
        for labels, s in list(d.steps.items()):
            out.histogram(duration, list(labels), s.duration)
            out.counter(errors, list(labels), s.errors)
        feedback = self._new(M.FEEDBACK_TOTAL)
        for key, n in list(d.feedback.items()):
            out.counter(feedback, list(key), n)
        yield from (duration, errors, feedback)

    def _collect_self(self) -> Iterator[Any]:
        a = self._accounting
        received, accepted = self._new(M.SPANS_RECEIVED_TOTAL), self._new(M.SPANS_ACCEPTED_TOTAL)
        rejected = self._new(M.SPANS_REJECTED_TOTAL)
        refused_spans, refused_requests = (
            self._new(M.SPANS_REFUSED_TOTAL),
            self._new(M.REQUESTS_REFUSED_TOTAL),
        )
        fixed = self._out.fixed
        for receiver, n in a.received.items():
            fixed(received, [receiver], n)
        for kind, n in a.accepted.items():
            fixed(accepted, [kind], n)
        for reason, n in a.rejected.items():
            fixed(rejected, [reason], n)
        for (receiver, reason), n in a.refused_spans.items():
            fixed(refused_spans, [receiver, reason], n)
        for (receiver, reason), n in a.refused_requests.items():
            fixed(refused_requests, [receiver, reason], n)
        queue, capacity = self._new(M.QUEUE_SPANS), self._new(M.QUEUE_CAPACITY_SPANS)
        queue.add_metric([], a.queue_spans)
        capacity.add_metric([], a.queue_capacity)
        batch = self._new(M.BATCH_PROCESSING_SECONDS)
        self._out.fixed_histogram(batch, [], a.batch_seconds)
        info = self._new(M.BUILD_INFO)
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


class ScrapeEndpoint:
    """What ``/metrics`` answers: the processor's families written by
    :meth:`MetricsCollector.render`, then the engines' collectors through prometheus-client.

    ``collector`` should announce new series (see the module docstring); ``engines`` holds the
    engines' collectors on a registry of their own.
    """

    def __init__(self, collector: MetricsCollector, engines: CollectorRegistry) -> None:
        self._collector = collector
        self._engines = engines

    def __call__(self, accept: str) -> tuple[bytes, str]:
        """The body and content type for a scrape sending ``Accept: accept``."""
        encoder, content_type = choose_encoder(accept)
        openmetrics = content_type.startswith("application/openmetrics-text")
        own = self._collector.render(openmetrics=openmetrics).encode()
        engines = encoder(self._engines)
        return own + engines, content_type

    def withhold_unshown(self) -> int:
        """See :meth:`MetricsCollector.withhold_unshown` (the engines' series are not withheld)."""
        return self._collector.withhold_unshown()
