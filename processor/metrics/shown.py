"""What the last scrape showed, and the counts withheld from every scrape after it.

With the Kafka source a scrape shows exactly the counts of the offsets it committed
(processor.kafka.source). A replica paused past its session timeout (a zombie) breaks that: it
counted records after its last scrape, could not commit them, and Kafka gave their partitions to
another replica, which counts them again from the last commit. Its counters hold those counts
and would show them on its next scrape: counted twice. So the scrape endpoint remembers the
value of every counter and histogram series it showed (:meth:`ShownCounts.counter`,
:meth:`ShownCounts.histogram`), and when the source reports such a loss, :meth:`ShownCounts.withhold`
takes the difference between the current values and the last shown ones off every later scrape:
each series goes on from the value Prometheus already has, exactly the committed counts.

A loss covers the whole assignment (the group fenced the member), so every count since the last
scrape belongs to a partition that moved or was never committed; counts of the OTLP receivers in
that gap are withheld with them (a bound docs/kafka.md states).
"""

from __future__ import annotations

from llmpulse.processor.metrics.derived import Histogram

__all__ = ["SeriesKey", "ShownCounts"]

SeriesKey = tuple[str, tuple[str, ...]]
"""(family name, label values) of one series."""

_HistValue = tuple[tuple[int, ...], float]  # bucket counts (not cumulative), sum


class ShownCounts:
    """The last shown value of each counter and histogram series, and what is withheld from each."""

    __slots__ = ("_counters", "_histograms", "_withheld_counters", "_withheld_histograms")

    def __init__(self) -> None:
        self._counters: dict[SeriesKey, float] = {}
        self._histograms: dict[SeriesKey, _HistValue] = {}
        self._withheld_counters: dict[SeriesKey, float] = {}
        self._withheld_histograms: dict[SeriesKey, _HistValue] = {}

    def counter(self, key: SeriesKey, value: float) -> float:
        """The value to show for counter series ``key`` now worth ``value``; remembered as shown."""
        withheld = self._withheld_counters.get(key)
        if withheld is not None:
            if value < withheld:  # the series aged out and came back from zero
                del self._withheld_counters[key]
            else:
                value -= withheld
        self._counters[key] = value
        return value

    def histogram(self, key: SeriesKey, hist: Histogram) -> Histogram:
        """The histogram to show for series ``key`` now ``hist`` (``hist`` itself when nothing is
        withheld from it); remembered as shown."""
        withheld = self._withheld_histograms.get(key)
        if withheld is not None:
            counts, total = withheld
            if any(have < held for have, held in zip(hist.counts, counts, strict=True)):
                del self._withheld_histograms[key]  # aged out and came back from zero
            else:
                shown = Histogram(hist.bounds)
                shown.counts = [have - held for have, held in zip(hist.counts, counts, strict=True)]
                shown.sum = hist.sum - total
                shown.ex_trace, shown.ex_value, shown.ex_time = hist.ex_trace, hist.ex_value, hist.ex_time
                hist = shown
        self._histograms[key] = (tuple(hist.counts), hist.sum)
        return hist

    def withhold(self, counters: dict[SeriesKey, float], histograms: dict[SeriesKey, Histogram]) -> int:
        """Withhold, from now on, what the series' current values (``counters``, ``histograms``,
        as the collector has them before anything is withheld) hold beyond what was last shown.
        Returns the number of series that had unshown counts."""
        changed = 0
        for key, value in counters.items():
            unshown = value - self._counters.get(key, 0.0)
            if unshown != self._withheld_counters.get(key, 0.0):
                self._withheld_counters[key] = unshown
                changed += 1
        for key, hist in histograms.items():
            counts, total = self._histograms.get(key, ((0,) * len(hist.counts), 0.0))
            held = (
                tuple(have - shown for have, shown in zip(hist.counts, counts, strict=True)),
                hist.sum - total,
            )
            if held != self._withheld_histograms.get(key, ((0,) * len(hist.counts), 0.0)):
                self._withheld_histograms[key] = held
                changed += 1
        return changed
