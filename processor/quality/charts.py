"""Per-feature EWMA charts of windowed statistics, exported as gauges and persisted.

Charts are kept per (service, feature): two apps with a feature called ``chat`` have a chart
each. Each feature has five charts (names in :data:`~llmpulse.processor.quality.metric_names.STATISTICS`):

* ``error_rate``, ``refusal_rate``, ``latency_p95_seconds``, ``cost_per_request_usd``: one point
  per ``requests_per_window`` calls (count windows, so a quiet hour does not make a noisy point;
  a quiet feature can set its own, smaller, ``requests_per_window``);
* ``judge_score``: the mean overall judge score per ``scores_per_window`` verdicts;
* ``session_judge_score``: the same for the verdicts on whole conversations (session judging,
  :mod:`llmpulse.processor.agents.sessions`), a chart of its own.

The judge score alarms only when it falls, the others only when they rise. Every chart estimates
its baseline from its first ``warmup_windows`` points, with limits widened for that estimate
(``spc.design_limits``); the two rates use the binomial sigma of their window size. A flat
warm-up (no errors at all) would give sigma 0, so each statistic has a floor: one event per window
for rates, 1 ms for latency, a hundredth of a cent per request for cost, 0.05 for the score.
No chart alarms on an effect smaller than its :data:`MIN_EFFECT` (absolute and relative to the
baseline mean, both must be exceeded): a p95 of 8 ms against 2.6 ms is out of control, and no
one would page for it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.chart_store import LEGACY_SERVICE, ChartKey
from llmpulse.processor.quality.metrics import QualityMetrics
from llmpulse.processor.quality.settings import SpcSettings
from llmpulse.processor.quality.types import QualitySample
from llmpulse.processor.spc.design import designed_L
from llmpulse.processor.spc.ewma import ChartState, EwmaChart

__all__ = ["MIN_EFFECT", "QualityCharts"]

MIN_EFFECT: dict[str, tuple[float, float]] = {
    Q.STAT_ERROR_RATE: (0.02, 0.5),  # 2 percentage points and half the baseline rate
    Q.STAT_REFUSAL_RATE: (0.02, 0.5),
    Q.STAT_LATENCY_P95: (0.050, 0.2),  # 50 ms and 20%
    Q.STAT_COST: (0.0, 0.2),  # 20% per request
    Q.STAT_JUDGE_SCORE: (0.25, 0.05),  # a quarter point on 1-5 and 5%
    Q.STAT_SESSION_SCORE: (0.25, 0.05),  # the same scale, for whole conversations
}
"""(absolute, relative) smallest change of each statistic's EWMA that may alarm."""

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class _CallWindow:
    count: int = 0
    errors: int = 0
    refusals: int = 0
    latencies: list[float] = field(default_factory=list)
    cost: float = 0.0
    priced: int = 0


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]  # nearest-rank


class QualityCharts:
    """Charts for every feature seen; call from one thread (the processor's event loop)."""

    def __init__(
        self,
        settings: SpcSettings,
        metrics: QualityMetrics | None = None,
        window_sizes: Mapping[str, int] | None = None,
    ) -> None:
        """``window_sizes``: calls per window for features that override ``requests_per_window``."""
        self.settings = settings
        if settings.design_limits:  # solve the designed limits now, not when a chart's warm-up ends
            for sigma_estimated in (True, False):
                designed_L(
                    settings.lambda_, settings.L, settings.warmup_windows, sigma_estimated=sigma_estimated
                )
        self._metrics = metrics
        self._sizes = dict(window_sizes or {})
        self._charts: dict[ChartKey, EwmaChart] = {}
        self._calls: dict[tuple[str, str], _CallWindow] = {}
        self._scores: dict[ChartKey, list[float]] = {}
        self._dirty: set[ChartKey] = set()
        self.new_baseline = False  # a chart fixed its baseline since the last take_dirty()
        # (feature, statistic) -> a chart saved before charts were kept per service, taken over
        # by the first service that charts that feature and statistic
        self._legacy: dict[tuple[str, str], EwmaChart] = {}
        # keys given up to another replica (release): a verdict judged here afterwards is not charted
        self._released: set[tuple[str, str]] = set()

    def window_size(self, feature: str) -> int:
        """Calls per window of ``feature``."""
        return self._sizes.get(feature, self.settings.requests_per_window)

    def _floor(self, feature: str, statistic: str) -> float:
        if statistic in (Q.STAT_ERROR_RATE, Q.STAT_REFUSAL_RATE):
            return 1.0 / self.window_size(feature)
        return {
            Q.STAT_LATENCY_P95: 0.001,
            Q.STAT_COST: 1e-4,
            Q.STAT_JUDGE_SCORE: 0.05,
            Q.STAT_SESSION_SCORE: 0.05,
        }[statistic]

    def _new_chart(self, feature: str, statistic: str) -> EwmaChart:
        s = self.settings
        rate = statistic in (Q.STAT_ERROR_RATE, Q.STAT_REFUSAL_RATE)
        return EwmaChart(
            lambda_=s.lambda_,
            L=s.L,
            warmup=s.warmup_windows,
            sigma_floor=self._floor(feature, statistic),
            one_sided="lower" if statistic in (Q.STAT_JUDGE_SCORE, Q.STAT_SESSION_SCORE) else "upper",
            design_limits=s.design_limits,
            binomial_n=self.window_size(feature) if rate else None,
            min_effect=MIN_EFFECT[statistic],
        )

    def chart(self, service: str, feature: str, statistic: str) -> EwmaChart:
        """The chart of (service, feature, statistic), created on first use."""
        key = (service, feature, statistic)
        chart = self._charts.get(key)
        if chart is None:
            chart = self._legacy.pop((feature, statistic), None)
            if chart is None:
                chart = self._new_chart(feature, statistic)
            else:
                _log.info(
                    "event=spc_chart_adopted service=%s feature=%s statistic=%s", service, feature, statistic
                )
                self._dirty.add(key)
            self._charts[key] = chart
        return chart

    def load(self, snapshots: dict[ChartKey, dict[str, Any]]) -> None:
        """Restore charts saved by :meth:`take_dirty`; a bad snapshot is logged and skipped."""
        for key, snapshot in snapshots.items():
            service, feature, statistic = key
            try:
                chart = EwmaChart.from_dict(snapshot)
            except ValueError as exc:
                _log.warning("ignoring saved SPC chart %s/%s/%s: %s", service, feature, statistic, exc)
                continue
            wanted = self._new_chart(feature, statistic)
            saved = (
                chart.lambda_,
                chart.L,
                chart.warmup,
                chart.sigma_floor,
                chart.design_limits,
                chart.binomial_n,
            )
            now = (
                wanted.lambda_,
                wanted.L,
                wanted.warmup,
                wanted.sigma_floor,
                wanted.design_limits,
                wanted.binomial_n,
            )
            if saved != now:  # the floor and binomial n follow the window size
                _log.warning(
                    "SPC settings changed for %s/%s/%s (lambda, L, warm-up, sigma floor, designed limits,"
                    " binomial n %s -> %s):"
                    " learning a new baseline",
                    service,
                    feature,
                    statistic,
                    saved,
                    now,
                )
                if service != LEGACY_SERVICE:
                    self._dirty.add(key)
                continue
            chart.min_effect = wanted.min_effect
            if service == LEGACY_SERVICE:
                self._legacy[(feature, statistic)] = chart
            else:
                self._charts[key] = chart

    def resume(self, keys: Collection[tuple[str, str]], snapshots: dict[ChartKey, dict[str, Any]]) -> int:
        """Take over the charts of (service, feature) ``keys`` from ``snapshots`` (the shared
        store's, saved by their previous owner), replacing what this process held for them;
        returns how many charts were restored. A key without a snapshot starts fresh."""
        wanted = set(keys)
        self._released -= wanted
        self._drop(wanted)
        mine = {key: snap for key, snap in snapshots.items() if key[:2] in wanted}
        self.load(mine)
        return sum(1 for key in mine if key in self._charts)

    def release(self, keys: Collection[tuple[str, str]] | None) -> dict[ChartKey, dict[str, Any]]:
        """Forget the charts and open windows of ``keys`` (None: of every key) and remove their
        gauges; returns the snapshots of those changed since the last save, to persist."""
        wanted = {key[:2] for key in self._charts} | set(self._calls) | {key[:2] for key in self._scores}
        if keys is not None:
            wanted &= set(keys)
        dirty = {key: self._charts[key].to_dict() for key in self._dirty if key[:2] in wanted}
        self._released |= wanted
        self._drop(wanted)
        return dirty

    def _drop(self, keys: set[tuple[str, str]]) -> None:
        for key in [k for k in self._charts if k[:2] in keys]:
            del self._charts[key]
            self._dirty.discard(key)
            if self._metrics is not None:
                self._metrics.remove_chart(key[:2], key[2])
        for feature_key in keys:
            self._calls.pop(feature_key, None)
        for window in [k for k in self._scores if k[:2] in keys]:
            del self._scores[window]

    def _point(self, key: tuple[str, str], statistic: str, value: float) -> ChartState:
        service, feature = key
        chart = self.chart(service, feature, statistic)
        warming = chart.in_warmup
        state = chart.update(value)
        self._dirty.add((service, feature, statistic))
        if warming and not chart.in_warmup:
            self.new_baseline = True
        if self._metrics is not None:
            self._metrics.chart(key, statistic, state)
        if state.alarm:
            _log.info(
                "SPC alarm: service=%s feature=%s statistic=%s value=%.4g ewma=%.4g",
                service,
                feature,
                statistic,
                value,
                state.ewma,
            )
        return state

    def observe_call(self, sample: QualitySample, refused: bool) -> None:
        """Count one call into its feature's window; charts a point when the window is full."""
        self.observe_numbers(
            (sample.service, sample.feature), sample.is_error, refused, sample.duration_s, sample.cost_usd
        )

    def observe_numbers(
        self,
        key: tuple[str, str],
        is_error: bool,
        refused: bool,
        duration_s: float | None,
        cost_usd: float | None,
    ) -> None:
        """:meth:`observe_call` for (service, feature) ``key`` from the call's numbers alone."""
        window = self._calls.get(key)
        if window is None:
            window = self._calls[key] = _CallWindow()
        window.count += 1
        window.errors += is_error
        window.refusals += refused
        if duration_s is not None:
            window.latencies.append(duration_s)
        if cost_usd is not None:
            window.cost += cost_usd
            window.priced += 1
        if window.count < self._sizes.get(key[1], self.settings.requests_per_window):
            return
        del self._calls[key]
        f = key
        self._point(f, Q.STAT_ERROR_RATE, window.errors / window.count)
        self._point(f, Q.STAT_REFUSAL_RATE, window.refusals / window.count)
        if window.latencies:
            self._point(f, Q.STAT_LATENCY_P95, _p95(window.latencies))
        if window.priced:
            self._point(f, Q.STAT_COST, window.cost / window.priced)

    def observe_score(
        self, key: tuple[str, str], overall: float, statistic: str = Q.STAT_JUDGE_SCORE
    ) -> None:
        """Count one verdict's overall score for (service, feature) ``key`` on the chart of
        ``statistic`` (``judge_score`` or ``session_judge_score``); charts the window mean when
        the window is full."""
        if key in self._released:
            return
        window = (*key, statistic)
        scores = self._scores.setdefault(window, [])
        scores.append(overall)
        if len(scores) >= self.settings.scores_per_window:
            del self._scores[window]
            self._point(key, statistic, sum(scores) / len(scores))

    def reset(self, feature: str, statistic: str | None = None, *, service: str | None = None) -> list[str]:
        """Forget the baseline(s) of ``feature`` (of one service, or of every service); returns
        the charts reset as ``service/statistic``."""
        reset = []
        for key, chart in self._charts.items():
            if (
                key[1] == feature
                and (statistic is None or key[2] == statistic)
                and (service is None or key[0] == service)
            ):
                chart.reset()
                self._dirty.add(key)
                reset.append(f"{key[0]}/{key[2]}")
                if self._metrics is not None:
                    self._metrics.remove_chart((key[0], key[1]), key[2])
        for legacy in [k for k in self._legacy if k[0] == feature and statistic in (None, k[1])]:
            del self._legacy[legacy]
        return reset

    def take_dirty(self) -> dict[ChartKey, dict[str, Any]]:
        """Snapshots of the charts changed since the last call, for persisting."""
        dirty = {key: self._charts[key].to_dict() for key in self._dirty if key in self._charts}
        self._dirty.clear()
        self.new_baseline = False
        return dirty

    def states(self) -> dict[ChartKey, ChartState | None]:
        """The last state of every chart (None before its first point)."""
        return {key: chart.last for key, chart in self._charts.items()}
