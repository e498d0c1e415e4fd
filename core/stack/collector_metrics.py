"""The OpenTelemetry Collector's own metrics that llmpulse's rules read.

The collector exposes them on its telemetry port (``service.telemetry`` in
``otel-collector.yaml``), scraped as the ``otel-collector`` job. Collector v0.165 names its
counters without a ``_total`` suffix. ``tests/stack/test_collector_alerts.py`` checks the
names against a running collector, and the rule tests check that rules read nothing else.
"""

from __future__ import annotations

from typing import Final

__all__ = ["COLLECTOR_LABELS", "COLLECTOR_SERIES", "JOB"]

JOB: Final = "otel-collector"
"""The scrape job of the collector's own metrics (alerting/prometheus.yml, ``llmpulse up``)."""

EXPORTER_SEND_FAILED_SPANS: Final = "otelcol_exporter_send_failed_spans"
"""Spans an exporter gave up on after its retries."""
EXPORTER_ENQUEUE_FAILED_SPANS: Final = "otelcol_exporter_enqueue_failed_spans"
"""Spans an exporter could not put in its sending queue (full)."""
EXPORTER_QUEUE_SIZE: Final = "otelcol_exporter_queue_size"
EXPORTER_QUEUE_CAPACITY: Final = "otelcol_exporter_queue_capacity"
RECEIVER_REFUSED_SPANS: Final = "otelcol_receiver_refused_spans"
"""Spans a receiver answered with an error (memory limiter, a refusing pipeline)."""

COLLECTOR_SERIES: Final = frozenset(
    {
        EXPORTER_SEND_FAILED_SPANS,
        EXPORTER_ENQUEUE_FAILED_SPANS,
        EXPORTER_QUEUE_SIZE,
        EXPORTER_QUEUE_CAPACITY,
        RECEIVER_REFUSED_SPANS,
    }
)
COLLECTOR_LABELS: Final = frozenset({"exporter", "receiver", "transport", "data_type"})
