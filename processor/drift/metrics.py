"""Prometheus instruments for the drift engine, built from :data:`DRIFT_METRICS` on a given registry."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from llmpulse.processor.drift import metric_names as names
from llmpulse.processor.metrics.names import SAVE_REFUSED_REASONS

__all__ = ["DriftMetrics"]


class DriftMetrics:
    """The drift engine's instruments on ``registry`` (never the global default registry).

    Label values are created when a feature is first seen (:meth:`init_feature`), so every
    series of a feature exists before its first test.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._m: dict[str, Any] = {}
        for spec in names.DRIFT_METRICS:
            if spec.type == "counter":
                self._m[spec.name] = Counter(spec.family, spec.help, spec.labels, registry=registry)
            elif spec.type == "gauge":
                self._m[spec.name] = Gauge(spec.name, spec.help, spec.labels, registry=registry)
            else:
                self._m[spec.name] = Histogram(
                    spec.name, spec.help, spec.labels, buckets=spec.buckets, registry=registry
                )
        self.similarity: Histogram = self._m[names.DRIFT_SIMILARITY]
        self.similarity_mean: Gauge = self._m[names.DRIFT_SIMILARITY_MEAN]
        self.similarity_ewma: Gauge = self._m[names.DRIFT_SIMILARITY_EWMA]
        self.similarity_centre: Gauge = self._m[names.DRIFT_SIMILARITY_CENTRE]
        self.similarity_lower: Gauge = self._m[names.DRIFT_SIMILARITY_LOWER_LIMIT]
        self.similarity_alarm: Gauge = self._m[names.DRIFT_SIMILARITY_ALARM]
        self.score: Gauge = self._m[names.DRIFT_SCORE]
        self.p_value: Gauge = self._m[names.DRIFT_P_VALUE]
        self.drifted: Gauge = self._m[names.DRIFT_DRIFTED]
        self.tests: Counter = self._m[names.DRIFT_TESTS_TOTAL]
        self.samples: Counter = self._m[names.DRIFT_SAMPLES_TOTAL]
        self.dropped: Counter = self._m[names.DRIFT_SAMPLES_DROPPED_TOTAL]
        self.reference_samples: Gauge = self._m[names.DRIFT_REFERENCE_SAMPLES]
        self.window_samples: Gauge = self._m[names.DRIFT_WINDOW_SAMPLES]
        self.reference_frozen: Gauge = self._m[names.DRIFT_REFERENCE_FROZEN_TIMESTAMP]
        self.queue: Gauge = self._m[names.DRIFT_QUEUE_SAMPLES]
        self.embed_seconds: Histogram = self._m[names.DRIFT_EMBED_SECONDS]
        for reason in names.DROP_REASONS:
            self.dropped.labels(reason)
        self.saves_refused: Counter = self._m[names.DRIFT_SAVES_REFUSED_TOTAL]
        for reason in SAVE_REFUSED_REASONS:
            self.saves_refused.labels(reason)

    def init_feature(self, key: tuple[str, str]) -> None:
        """Create every series of (service, feature) ``key`` (NaN for values not computed yet)."""
        nan = float("nan")
        self.similarity.labels(*key)
        self.samples.labels(*key)
        for gauge in (
            self.similarity_mean,
            self.similarity_ewma,
            self.similarity_centre,
            self.similarity_lower,
        ):
            gauge.labels(*key).set(nan)
        self.similarity_alarm.labels(*key).set(0)
        self.reference_samples.labels(*key).set(0)
        self.window_samples.labels(*key).set(0)
        self.reference_frozen.labels(*key).set(0)
        for signal in names.SIGNALS:
            self.score.labels(*key, signal).set(nan)
            self.p_value.labels(*key, signal).set(nan)
            self.drifted.labels(*key, signal).set(0)
            self.tests.labels(*key, signal)
