"""Benchmark: size and time of one ``/metrics`` scrape at the series cap, and label ageing.

The processor's state is filled through the real pipeline to ``--series`` LLM label sets (the
default cap, 2000), each with the families a busy feature has: duration and time-to-first-chunk
histograms with exemplars, token histograms, requests, an error type, tokens and cost. Then, in
the same process and on the same state:

* **before**: prometheus-client's encoders on a registry holding the processor's collector
  (what ``/metrics`` ran until the fast path);
* **after**: :meth:`MetricsCollector.render`, what ``/metrics`` runs now;
* **kafka**: the same render by a ``withholding`` collector (the Kafka source's ``/metrics``:
  it remembers every value it shows, for a zombie's withholding), against **direct**, the render
  the Kafka source's ``/metrics`` ran before (no announcing, nothing remembered); and one
  ``withhold_unshown`` on that state (what a zombie's loss costs, once).

Each is timed ``--repeat`` times (the median is printed) for OpenMetrics (what Prometheus asks
for) and the text format. Last, the ageing: a flood of ``--junk`` feature names fills the cap,
an hour passes with one real feature sending, and the rows say whether the real feature has its
own series and how long the ageing sweep took.

Usage: ``python benchmarks/bench_scrape.py [--series 2000] [--repeat 3] [--junk 100000]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import CollectorRegistry

from llmpulse.contract import attributes as A
from llmpulse.processor.metrics.derived import Accounting, DerivedMetrics
from llmpulse.processor.metrics.exposition import MetricsCollector
from llmpulse.processor.metrics.windows import RollingWindows
from llmpulse.processor.pipeline.queue import Pipeline
from llmpulse.testing.clock import FakeClock
from llmpulse.testing.otlp import llm_attributes, make_request, make_span


def _fill(pipeline: Pipeline, series: int) -> None:
    spans = []
    for i in range(series):
        attrs = {A.FEATURE: f"feature-{i % 100}", A.GEN_AI_REQUEST_MODEL: f"model-{i // 100}"}
        trace = (i + 1).to_bytes(16, "big")
        spans.append(
            make_span(llm_attributes(**attrs, **{A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 0.2}), trace_id=trace)
        )
        spans.append(make_span(llm_attributes(**attrs, **{A.ERROR_TYPE: "Timeout"}), trace_id=trace))
    for start in range(0, len(spans), 500):
        pipeline.process(make_request(spans[start : start + 500]))


def _median_seconds(run: Callable[[], object], repeat: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - started)
        size = len(out)  # type: ignore[arg-type]
    return statistics.median(times), size


def bench_scrape(series: int, repeat: int) -> None:
    derived, accounting = DerivedMetrics(max_series=series), Accounting(1000)
    pipeline = Pipeline(capacity=100_000, derived=derived, accounting=accounting, windows=RollingWindows())
    _fill(pipeline, series)
    collector = MetricsCollector(derived, accounting, announce_new_series=True)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    generate_latest(registry)  # past the first scrape: every series shows its real values
    direct, kafka = (
        MetricsCollector(derived, accounting),
        MetricsCollector(derived, accounting, withholding=True),
    )
    print(f"/metrics at {len(derived.llm)} LLM series (median of {repeat})")
    print(f"{'format':<12} {'encoder':<28} {'bytes':>12} {'seconds':>9}")
    for name, slow, openmetrics in (
        ("openmetrics", generate_openmetrics, True),
        ("text", generate_latest, False),
    ):
        before, before_size = _median_seconds(lambda slow=slow: slow(registry), repeat)
        after, after_size = _median_seconds(
            lambda om=openmetrics: collector.render(openmetrics=om).encode(), repeat
        )
        print(f"{name:<12} {'before: prometheus-client':<28} {before_size:>12,} {before:>9.3f}")
        print(f"{name:<12} {'after: render()':<28} {after_size:>12,} {after:>9.3f}  ({before / after:.1f}x)")
        plain, plain_size = _median_seconds(
            lambda om=openmetrics: direct.render(openmetrics=om).encode(), repeat
        )
        remembered, remembered_size = _median_seconds(
            lambda om=openmetrics: kafka.render(openmetrics=om).encode(), repeat
        )
        print(f"{name:<12} {'direct: render()':<28} {plain_size:>12,} {plain:>9.3f}")
        print(
            f"{name:<12} {'kafka: render(), remembered':<28} {remembered_size:>12,} {remembered:>9.3f}"
            f"  ({remembered / plain:.2f}x direct)"
        )
    pipeline.process(make_request([make_span(llm_attributes())]))  # counted after the last scrape
    started = time.perf_counter()
    withheld = kafka.withhold_unshown()
    print(f"withhold_unshown: {withheld} series withheld, {time.perf_counter() - started:.3f} s")


def bench_ageing(junk: int) -> None:
    clock = FakeClock(0.0)
    derived, accounting = DerivedMetrics(idle_seconds=3600, clock=clock), Accounting(1000)
    pipeline = Pipeline(
        capacity=100_000, derived=derived, accounting=accounting, windows=RollingWindows(clock=clock)
    )
    for start in range(0, junk, 1000):
        spans = [make_span(llm_attributes(**{A.FEATURE: f"junk-{i}"})) for i in range(start, start + 1000)]
        pipeline.process(make_request(spans))
    real = make_request([make_span(llm_attributes(**{A.FEATURE: "checkout"}))])
    pipeline.process(real)
    before = any(labels[2] == "checkout" for labels in derived.llm)
    clock.advance(3601)
    started = time.perf_counter()
    derived.expire_idle(clock())
    sweep = time.perf_counter() - started
    pipeline.process(real)
    after = any(labels[2] == "checkout" for labels in derived.llm)
    print(f"\nageing after {junk:,} junk feature names (cap 100, idle 1 h)")
    print(f"  'checkout' has its own series: before the hour {before}, after {after}")
    evicted = {label: n for label, n in derived.evictions.items() if n}
    print(f"  evictions by label: {evicted}; one sweep took {sweep * 1000:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--junk", type=int, default=100_000)
    args = parser.parse_args()
    bench_scrape(args.series, args.repeat)
    bench_ageing(args.junk)


if __name__ == "__main__":
    main()
