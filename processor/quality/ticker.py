"""The quality engine's periodic work: apply ``llmpulse spc reset`` requests, persist the charts
that changed, enforce the flagged store's retention, and refresh the gauges that are read from
state (human-label agreement, user-signal rates, judge queue and circuit).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from llmpulse.processor.quality.charts import QualityCharts
from llmpulse.processor.quality.judging import JudgeScheduler
from llmpulse.processor.quality.metrics import QualityMetrics
from llmpulse.processor.quality.user_signals import UserSignals
from llmpulse.processor.store.protocols import ChartSnapshots, FlaggedSamples

__all__ = ["Ticker"]

_log = logging.getLogger(__name__)

# Retention runs this often: ~40 ms on a 100k-row store, and with the check-flag quota a busy
# processor can store thousands of samples a minute.
_PRUNE_EVERY_S = 600.0
_BASELINE_SAVE_S = 1.0  # a newly fixed SPC baseline is on disk within this (see Ticker.run)


class Ticker:
    """Runs :meth:`tick` every ``tick_s`` seconds from :meth:`run` (SQLite work in a thread).

    Args:
        flush_counts: applies the ingest path's deferred counts (first thing in a tick).
    """

    def __init__(
        self,
        *,
        metrics: QualityMetrics,
        charts: QualityCharts,
        chart_store: ChartSnapshots,
        store: FlaggedSamples,
        signals: UserSignals,
        judging: JudgeScheduler,
        flush_counts: Callable[[], None],
        clock: Callable[[], float] = time.time,
        tick_s: float = 15.0,
    ) -> None:
        self._metrics = metrics
        self._charts = charts
        self._chart_store = chart_store
        self._store = store
        self._signals = signals
        self._judging = judging
        self._flush_counts = flush_counts
        self._clock = clock
        self._tick_s = tick_s
        self._last_prune = 0.0

    async def run(self) -> None:
        """Tick forever (until cancelled); a failed tick is logged and the next one runs.

        Between ticks, a chart that has just fixed its baseline is saved within
        :data:`_BASELINE_SAVE_S`, so a kill right after the warm-up does not lose the baseline
        (a restart would otherwise learn a new one from later, possibly shifted, traffic).
        """
        step = min(self._tick_s, _BASELINE_SAVE_S)
        next_tick = time.monotonic() + self._tick_s
        while True:
            await asyncio.sleep(step)
            try:
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self._tick_s
                    await self.tick()
                elif self._charts.new_baseline:
                    await self.save_charts()
            except Exception:
                _log.exception("quality tick failed")

    async def save_charts(self) -> None:
        """Persist the charts changed since the last save."""
        dirty = self._charts.take_dirty()
        if dirty:
            self._metrics.charts_refused(await asyncio.to_thread(self._chart_store.save_charts, dirty))

    async def tick(self) -> None:
        """Apply reset requests, persist changed charts, enforce retention, refresh gauges."""
        self._flush_counts()
        for service, feature, statistic in await asyncio.to_thread(self._chart_store.take_resets):
            reset = self._charts.reset(feature, statistic, service=service)
            _log.info(
                "event=spc_reset service=%s feature=%s charts=%s",
                service or "*",
                feature,
                ",".join(reset) or "none yet",
            )
        await self.save_charts()
        now = self._clock()
        if now - self._last_prune >= _PRUNE_EVERY_S:
            self._last_prune = now
            await asyncio.to_thread(self._store.prune, now=now)
        for key, (labelled, agreed) in (await asyncio.to_thread(self._store.agreement)).items():
            self._metrics.labelled.labels(*key).set(labelled)
            self._metrics.agreement.labels(*key).set(agreed / labelled)
        for key in self._signals.features():
            snap = self._signals.snapshot(key)
            values = {
                "positive": snap.positive_rate,
                "coverage": snap.coverage,
                "correction": snap.correction_rate,
                "follow_up": snap.follow_up_rate,
                "abandonment": snap.abandonment_rate,
                "survivorship_risk": snap.survivorship_risk,
            }
            for name, value in values.items():
                self._metrics.user[name].labels(*key).set(value)
        self._judging.refresh_gauges()
        await self._judging.budget.refresh()  # a shared budget is also spent by other replicas
