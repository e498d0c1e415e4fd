"""User signals per (service, feature) over a rolling window, and the survivorship-bias risk.

Rates are per response (LLM call) in the window, except the positive rate, which is per explicit
feedback event (``thumbs`` and ``rating``). Explicit feedback comes from the users who stayed
and bothered to click, so a happy positive rate means little when coverage is low and many users
abandon: the survivorship-bias risk is

    risk = min(1, abandonment / A) * min(1, positive / P) * min(1, (1 - coverage) / (1 - C))

with the thresholds ``A``, ``P`` and ``C`` from :class:`~llmpulse.processor.quality.settings.SignalSettings`;
it reaches 1 exactly when abandonment is at least ``A``, positive rate at least ``P`` and
coverage at most ``C`` (:attr:`SignalSnapshot.at_risk`).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from llmpulse.contract import attributes as A
from llmpulse.processor.quality.settings import SignalSettings
from llmpulse.processor.quality.types import FeedbackEvent

__all__ = ["SignalSnapshot", "UserSignals"]

_EXPLICIT = frozenset({A.FEEDBACK_THUMBS, A.FEEDBACK_RATING})
_FIELDS = ("responses", "explicit", "positive", "correction", "follow_up", "abandoned")


@dataclass(frozen=True, slots=True)
class SignalSnapshot:
    """Rates over the window; NaN where the denominator is zero."""

    responses: int
    explicit: int
    positive_rate: float
    coverage: float
    correction_rate: float
    follow_up_rate: float
    abandonment_rate: float
    survivorship_risk: float
    at_risk: bool


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


class UserSignals:
    """Counts per (service, feature) in time buckets; call from one thread."""

    def __init__(self, settings: SignalSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._clock = clock
        self._buckets: dict[tuple[str, str], deque[tuple[int, dict[str, int]]]] = {}

    def _bucket(self, key: tuple[str, str]) -> dict[str, int]:
        # Bucketed by arrival time: span timestamps come from many clocks and may lag.
        index = int(self._clock() // self.settings.bucket_s)
        buckets = self._buckets.setdefault(key, deque())
        if buckets and buckets[-1][0] >= index:
            return buckets[-1][1]
        counts = dict.fromkeys(_FIELDS, 0)
        buckets.append((index, counts))
        return counts

    def observe_response(self, key: tuple[str, str], n: int = 1) -> None:
        """Count ``n`` responses of (service, feature) ``key`` (the per-response rates' denominator)."""
        self._bucket(key)["responses"] += n

    def observe_feedback(self, event: FeedbackEvent) -> None:
        """Count one feedback event."""
        counts = self._bucket(event.key)
        if event.kind in _EXPLICIT:
            counts["explicit"] += 1
            counts["positive"] += event.sentiment == "positive"
        elif event.kind == A.FEEDBACK_CORRECTION:
            counts["correction"] += 1
        elif event.kind == A.FEEDBACK_FOLLOW_UP:
            counts["follow_up"] += 1
        elif event.kind == A.FEEDBACK_ABANDONED:
            counts["abandoned"] += 1

    def features(self) -> list[tuple[str, str]]:
        """(service, feature) keys with any count."""
        return list(self._buckets)

    def snapshot(self, key: tuple[str, str]) -> SignalSnapshot:
        """The rates of (service, feature) ``key`` over the last ``window_s`` seconds."""
        s = self.settings
        oldest = int((self._clock() - s.window_s) // s.bucket_s) + 1
        buckets = self._buckets.get(key, deque())
        while buckets and buckets[0][0] < oldest:
            buckets.popleft()
        total = dict.fromkeys(_FIELDS, 0)
        for _, counts in buckets:
            for name, value in counts.items():
                total[name] += value
        n = total["responses"]
        positive = _ratio(total["positive"], total["explicit"])
        coverage = _ratio(total["explicit"], n)
        abandonment = _ratio(total["abandoned"], n)
        if any(math.isnan(x) for x in (positive, coverage, abandonment)):  # not enough data
            risk = 0.0
        else:
            risk = (
                min(1.0, abandonment / s.risk_abandonment_rate)
                * min(1.0, positive / s.risk_positive_rate)
                * max(0.0, min(1.0, (1.0 - coverage) / (1.0 - s.risk_max_coverage)))
            )
        return SignalSnapshot(
            responses=n,
            explicit=total["explicit"],
            positive_rate=positive,
            coverage=coverage,
            correction_rate=_ratio(total["correction"], n),
            follow_up_rate=_ratio(total["follow_up"], n),
            abandonment_rate=abandonment,
            survivorship_risk=risk,
            at_risk=risk >= 1.0,
        )
