"""Withholding what no scrape showed: the Kafka source's zombie case at the exposition level (the
end-to-end run is tests/kafka/test_zombie.py). After :meth:`MetricsCollector.withhold_unshown`,
every series goes on from the value the last render showed."""

from __future__ import annotations

import itertools

import pytest

from llmpulse.contract import attributes as A
from llmpulse.processor.metrics import names as M
from llmpulse.processor.metrics.derived import Accounting, DerivedMetrics
from llmpulse.processor.metrics.exposition import MetricsCollector
from llmpulse.processor.metrics.windows import RollingWindows
from llmpulse.processor.pipeline.queue import Pipeline
from llmpulse.testing.otlp import llm_attributes, make_request, make_span
from tests.processor.test_metrics import _parsed

_ids = itertools.count(1)


def _calls(pipeline: Pipeline, feature: str, n: int, *, duration_s: float = 0.5) -> None:
    spans = [
        make_span(
            llm_attributes(**{A.FEATURE: feature}),
            span_id=next(_ids).to_bytes(8, "big"),
            duration_s=duration_s,
        )
        for _ in range(n)
    ]
    pipeline.process(make_request(spans))


def _samples(collector: MetricsCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (name, labels): value
        for _f, name, labels, value, _ex in _parsed(collector.render(openmetrics=False), openmetrics=False)
    }


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, have), v in samples.items() if n == name and labels.items() <= dict(have).items())


def _setup() -> tuple[Pipeline, MetricsCollector]:
    derived, accounting = DerivedMetrics(), Accounting(1000)
    pipeline = Pipeline(capacity=1000, derived=derived, accounting=accounting, windows=RollingWindows())
    return pipeline, MetricsCollector(derived, accounting, withholding=True)


def test_after_a_withhold_every_series_goes_on_from_what_was_shown() -> None:
    pipeline, collector = _setup()
    _calls(pipeline, "support", 2)
    shown = _samples(collector)
    _calls(pipeline, "support", 3, duration_s=9.0)  # counted, never shown: the zombie's records
    _calls(pipeline, "search", 4)  # a series born after the last scrape
    assert collector.withhold_unshown() > 0
    again = _samples(collector)
    for key, value in shown.items():
        assert again[key] == value, key
    duration = f"{M.OPERATION_DURATION}_count"
    assert _value(again, duration, feature="search") == 0
    assert _value(again, M.REQUESTS_TOTAL, feature="search") == 0
    assert _value(again, M.SPANS_ACCEPTED_TOTAL) == 2

    _calls(pipeline, "support", 1)  # counted after the loss: shown as usual
    _calls(pipeline, "search", 1, duration_s=9.0)
    after = _samples(collector)
    assert _value(after, M.REQUESTS_TOTAL, feature="support") == 3
    assert _value(after, M.REQUESTS_TOTAL, feature="search") == 1
    assert _value(after, M.SPANS_ACCEPTED_TOTAL) == 4
    assert _value(after, f"{M.OPERATION_DURATION}_bucket", feature="search", le="+Inf") == 1
    assert _value(after, f"{M.OPERATION_DURATION}_bucket", feature="support", le="0.64") == 3
    assert _value(after, f"{M.OPERATION_DURATION}_sum", feature="search") == pytest.approx(9.0)


def test_without_a_withhold_the_unshown_counts_are_shown() -> None:
    pipeline, collector = _setup()
    _calls(pipeline, "support", 2)
    _samples(collector)
    _calls(pipeline, "support", 3)
    assert _value(_samples(collector), M.REQUESTS_TOTAL, feature="support") == 5
    assert collector.withhold_unshown() == 0  # everything counted was shown


def test_withholding_is_its_own_mode() -> None:
    derived, accounting = DerivedMetrics(), Accounting(10)
    with pytest.raises(ValueError, match="exclude each other"):
        MetricsCollector(derived, accounting, announce_new_series=True, withholding=True)
    with pytest.raises(TypeError, match="withholding=True"):
        MetricsCollector(derived, accounting).withhold_unshown()
