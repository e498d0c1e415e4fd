"""How a collection writes each counter and histogram series of the processor's families.

:class:`Direct` writes the current values; :class:`Announcer` writes a series new since the last
scrape at zero first (see :mod:`llmpulse.processor.metrics.exposition`); :class:`Withholding`
writes each value less what :class:`~llmpulse.processor.metrics.shown.ShownCounts` withholds and
remembers it as shown; :class:`Capture` writes nothing and takes the current values. ``fixed``
and ``fixed_histogram`` write the series that exist from the start (the processor's own), which
are never announced.
"""

from __future__ import annotations

import functools
from typing import Any

from llmpulse.processor.metrics.derived import Histogram
from llmpulse.processor.metrics.shown import SeriesKey, ShownCounts

__all__ = ["Announcer", "Capture", "Direct", "Withholding", "Writer", "add_histogram", "le_strings"]


@functools.cache
def le_strings(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """The ``le`` values of a histogram's buckets, as :meth:`Histogram.buckets` writes them."""
    return (*map(repr, bounds), "+Inf")


def add_histogram(family: Any, labels: list[str], hist: Histogram) -> None:
    """``hist`` into ``family``: straight from its arrays into exposition text, or as buckets
    into a prometheus-client family."""
    if hasattr(family, "add_histogram"):
        family.add_histogram(labels, hist)
    else:
        family.add_metric(labels, hist.buckets(), hist.sum)


class Announcer:
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
            zero = [(le, 0) for le in le_strings(hist.bounds)]
            family.add_metric(labels, zero, 0.0)
        else:
            add_histogram(family, labels, hist)

    @staticmethod
    def fixed(family: Any, labels: list[str], value: float) -> None:
        """A counter exposed from the start (never announced)."""
        family.add_metric(labels, value)

    @staticmethod
    def fixed_histogram(family: Any, labels: list[str], hist: Histogram) -> None:
        add_histogram(family, labels, hist)


class Direct:
    """Every series with its current value."""

    __slots__ = ()

    def begin(self) -> None:
        """Start a scrape (nothing to remember)."""

    def counter(self, family: Any, labels: list[str], value: float) -> None:
        family.add_metric(labels, value)

    def histogram(self, family: Any, labels: list[str], hist: Histogram) -> None:
        add_histogram(family, labels, hist)

    fixed, fixed_histogram = counter, histogram


class Withholding:
    """Every series less what :class:`ShownCounts` withholds from it; remembers what it showed."""

    __slots__ = ("shown",)

    def __init__(self) -> None:
        self.shown = ShownCounts()

    def begin(self) -> None:
        """Start a scrape (what it shows is remembered series by series)."""

    def counter(self, family: Any, labels: list[str], value: float) -> None:
        family.add_metric(labels, self.shown.counter((family.name, tuple(labels)), value))

    def histogram(self, family: Any, labels: list[str], hist: Histogram) -> None:
        add_histogram(family, labels, self.shown.histogram((family.name, tuple(labels)), hist))

    fixed, fixed_histogram = counter, histogram


class Capture:
    """Takes every counter and histogram series' current value, exposes nothing."""

    __slots__ = ("counters", "histograms")

    def __init__(self) -> None:
        self.counters: dict[SeriesKey, float] = {}
        self.histograms: dict[SeriesKey, Histogram] = {}

    def begin(self) -> None:
        """Start a capture."""

    def counter(self, family: Any, labels: list[str], value: float) -> None:
        self.counters[(family.name, tuple(labels))] = value

    def histogram(self, family: Any, labels: list[str], hist: Histogram) -> None:
        self.histograms[(family.name, tuple(labels))] = hist

    fixed, fixed_histogram = counter, histogram


Writer = Announcer | Direct | Withholding | Capture
