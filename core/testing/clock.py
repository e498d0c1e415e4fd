"""A clock that tests move by hand.

Code that reads time takes a ``clock`` (``Callable[[], float]``, seconds) and often a ``sleep``;
:class:`FakeClock` is both, so a test decides when time passes and by how much.
"""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """``now`` seconds until moved; ``await clock.sleep(s)`` records ``s`` and moves it.

    >>> clock = FakeClock(100.0)
    >>> clock.advance(2.5)
    102.5
    >>> clock()
    102.5
    """

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds``; returns the new time."""
        self.now += seconds
        return self.now

    async def sleep(self, delay: float) -> None:
        """Stands in for ``asyncio.sleep``: records ``delay`` and moves the clock, waits for nothing."""
        self.slept.append(delay)
        self.now += delay
