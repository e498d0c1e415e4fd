"""The quality engine's Prometheus metrics, registered on a registry passed in.

Built from :data:`~llmpulse.processor.quality.metric_names.QUALITY_METRICS`, so the names and
labels come from one place. Never registers on prometheus-client's global registry. The
instruments live on a private registry that is exposed through one collector which drops the
``_created`` series (as the processor's own exposition does), without touching
prometheus-client's process-wide settings.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from llmpulse.processor.metrics.names import SAVE_REFUSED_REASONS, SAVE_REFUSED_STALE_OWNER, MetricSpec
from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.spc.ewma import ChartState

_log = logging.getLogger(__name__)

__all__ = ["QualityMetrics"]


def _make(spec: MetricSpec, registry: CollectorRegistry) -> Any:
    if spec.type == "counter":
        return Counter(spec.family, spec.help, spec.labels, registry=registry)
    if spec.type == "gauge":
        return Gauge(spec.name, spec.help, spec.labels, registry=registry)
    return Histogram(spec.name, spec.help, spec.labels, registry=registry, buckets=spec.buckets)


class _WithoutCreated(Collector):
    """Exposes a registry's families without their ``_created`` samples."""

    def __init__(self, inner: CollectorRegistry) -> None:
        self._inner = inner

    def collect(self) -> Iterator[Metric]:
        for family in self._inner.collect():
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family

    def describe(self) -> Iterator[Metric]:
        return self.collect()


class QualityMetrics:
    """Every quality metric, as attributes named after the constants in ``quality_metric_names``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        own = CollectorRegistry()
        m = {spec.name: _make(spec, own) for spec in Q.QUALITY_METRICS}
        registry.register(_WithoutCreated(own))
        self.checked = m[Q.CHECKED_TOTAL]
        self.check_failures = m[Q.CHECK_FAILURES_TOTAL]
        self.flagged = m[Q.FLAGGED_TOTAL]
        self.store_dropped = m[Q.FLAGGED_STORE_DROPPED_TOTAL]
        for reason in Q.STORE_DROP_REASONS:
            self.store_dropped.labels(reason)
        self.stored = m[Q.FLAGGED_STORED_TOTAL]
        self.recent_evicted = m[Q.RECENT_EVICTED_TOTAL]
        for reason in Q.RECENT_EVICT_REASONS:
            self.recent_evicted.labels(reason)
        self.recent_bytes = m[Q.RECENT_BYTES]
        self.judge_sampled = m[Q.JUDGE_SAMPLED_TOTAL]
        self.judge_dropped = m[Q.JUDGE_DROPPED_TOTAL]
        self.judge_verdicts = m[Q.JUDGE_VERDICTS_TOTAL]
        self.judge_errors = m[Q.JUDGE_ERRORS_TOTAL]
        self.judge_score = m[Q.JUDGE_SCORE]
        self.judge_tokens = m[Q.JUDGE_TOKENS_TOTAL]
        self.judge_cost = m[Q.JUDGE_COST_USD_TOTAL]
        self.judge_queue = m[Q.JUDGE_QUEUE_SAMPLES]
        self.judge_circuit_open = m[Q.JUDGE_CIRCUIT_OPEN]
        self.judge_info = m[Q.JUDGE_INFO]
        self.agreement = m[Q.JUDGE_AGREEMENT_RATIO]
        self.labelled = m[Q.JUDGE_LABELLED_SAMPLES]
        self._spc = {
            "value": m[Q.SPC_VALUE],
            "ewma": m[Q.SPC_EWMA],
            "centre": m[Q.SPC_CENTRE],
            "upper": m[Q.SPC_UPPER],
            "lower": m[Q.SPC_LOWER],
            "threshold": m[Q.SPC_ALERT_THRESHOLD],
        }
        # (key, statistic) -> the labelled children chart() sets: looked up once per chart
        self._chart_children: dict[tuple[tuple[str, str], str], tuple[Any, ...]] = {}
        self.spc_alarm = m[Q.SPC_ALARM]
        self.spc_warmup = m[Q.SPC_WARMUP]
        self.spc_saves_refused = m[Q.SPC_SAVES_REFUSED_TOTAL]
        for reason in SAVE_REFUSED_REASONS:
            self.spc_saves_refused.labels(reason)
        self.user = {
            "positive": m[Q.USER_POSITIVE_RATIO],
            "coverage": m[Q.USER_COVERAGE_RATIO],
            "correction": m[Q.USER_CORRECTION_RATIO],
            "follow_up": m[Q.USER_FOLLOW_UP_RATIO],
            "abandonment": m[Q.USER_ABANDONMENT_RATIO],
            "survivorship_risk": m[Q.USER_SURVIVORSHIP_RISK],
        }
        self.content_age = m[Q.CONTENT_AGE]
        self.content_state = m[Q.CONTENT_STATE]
        self.canary_pass = m[Q.CANARY_PASS]
        self.canary_runs = m[Q.CANARY_RUNS_TOTAL]
        self.canary_last_run = m[Q.CANARY_LAST_RUN]
        self.judge_tokens.labels("input")
        self.judge_tokens.labels("output")

    def charts_refused(self, refused: list[tuple[str, str, str]]) -> None:
        """Count (and log) chart snapshots the store refused: another replica owns their feature now."""
        if not refused:
            return
        self.spc_saves_refused.labels(SAVE_REFUSED_STALE_OWNER).inc(len(refused))
        _log.warning(
            "event=spc_charts_save_refused reason=%s charts=%d features=%s",
            SAVE_REFUSED_STALE_OWNER,
            len(refused),
            ",".join(sorted({f"{service}/{feature}" for service, feature, _ in refused})),
        )

    def set_judge(self, model: str, prompt_version: str) -> None:
        """Export the judge configuration in use (one series: the previous one is removed)."""
        self.judge_info.clear()
        self.judge_info.labels(model, prompt_version).set(1.0)

    def init_feature(self, key: tuple[str, str]) -> None:
        """Pre-create the counters of a (service, feature) so rates exist before the first event."""
        self.checked.labels(*key)
        self.judge_sampled.labels(*key)
        self.judge_verdicts.labels(*key)
        for source in Q.FLAG_SOURCES:
            self.flagged.labels(*key, source)
        for reason in Q.JUDGE_ERROR_REASONS:
            self.judge_errors.labels(*key, reason)
        for reason in Q.DROP_REASONS:
            self.judge_dropped.labels(*key, reason)

    def chart(self, key: tuple[str, str], statistic: str, state: ChartState) -> None:
        """Export the state of the chart of ``statistic`` of (service, feature) ``key``."""
        values = {
            "value": state.value,
            "ewma": state.ewma,
            "centre": state.centre,
            "upper": state.upper,
            "lower": state.lower,
            # the judge score alarms when it falls, the other statistics when they rise
            "threshold": state.alert_lower
            if statistic in (Q.STAT_JUDGE_SCORE, Q.STAT_SESSION_SCORE)
            else state.alert_upper,
        }
        children = self._chart_children.get((key, statistic))
        if children is None:
            labels = (*key, statistic)
            children = self._chart_children[(key, statistic)] = (
                *(gauge.labels(*labels) for gauge in self._spc.values()),
                self.spc_alarm.labels(*labels),
                self.spc_warmup.labels(*labels),
            )
        for child, name in zip(children, self._spc, strict=False):
            child.set(values[name])
        children[-2].set(1.0 if state.alarm else 0.0)
        children[-1].set(1.0 if state.in_warmup else 0.0)

    def remove_chart(self, key: tuple[str, str], statistic: str) -> None:
        """Drop a chart's series (after a reset) until it charts again."""
        self._chart_children.pop((key, statistic), None)
        for gauge in (*self._spc.values(), self.spc_alarm, self.spc_warmup):
            with contextlib.suppress(KeyError):
                gauge.remove(*key, statistic)
