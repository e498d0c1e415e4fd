"""Guards around the judge: a token-bucket rate limit, a daily spend budget, a circuit breaker.

All three take a clock (and the limiter a sleep function) so tests drive them without waiting.
The budget comes in two kinds with one interface (:meth:`admit` before a call, :meth:`settle`
after it): :class:`DailyBudget` in memory, and :class:`SharedBudget` on a store's ledger, which
every process on the same store shares.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Budget", "CircuitBreaker", "DailyBudget", "Ledger", "RateLimiter", "SharedBudget"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """Token bucket: ``rate`` calls per second on average, bursts of up to ``burst``."""

    def __init__(
        self, rate: float, burst: int = 1, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self.burst)
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self) -> float:
        """Wait for a token; returns the seconds waited (by the clock)."""
        async with self._lock:
            waited = 0.0
            self._refill()
            while self._tokens < 1.0:
                delay = (1.0 - self._tokens) / self.rate
                await self._sleep(delay)
                waited += delay
                self._refill()
            self._tokens -= 1.0
            return waited


@dataclass
class DailyBudget:
    """Tokens and USD spent per UTC day; :meth:`allows` is False once either limit is reached.

    A limit of 0 means no spending at all. The budget is checked before a call and charged after
    it, so the last call of a day may overshoot by one call's cost.
    """

    max_tokens: int
    max_usd: float
    clock: Clock = time.time
    tokens: int = 0
    usd: float = 0.0
    _day: int = -1

    def _roll(self) -> None:
        day = int(self.clock() // 86400)
        if day != self._day:
            self._day, self.tokens, self.usd = day, 0, 0.0

    def allows(self) -> bool:
        """Whether another call fits in today's budget."""
        self._roll()
        return self.tokens < self.max_tokens and self.usd < self.max_usd

    def charge(self, tokens: int, usd: float) -> None:
        """Record a call's spend."""
        self._roll()
        self.tokens += tokens
        self.usd += usd

    async def admit(self) -> object | None:
        """A ticket for one call when today's budget allows it, else None."""
        return True if self.allows() else None

    async def settle(self, ticket: object, tokens: int, usd: float) -> None:
        """Record what the call let through by ``ticket`` cost."""
        self.charge(tokens, usd)

    async def refresh(self) -> None:
        """Nothing to read: the spend is this object's."""


class Ledger(Protocol):
    """What :class:`SharedBudget` needs of a store's budget ledger
    (:class:`~llmpulse.processor.store.protocols.BudgetLedger`)."""

    def admit(self, day: int, max_tokens: int, max_usd: float) -> Any: ...
    def settle(self, admission: Any, tokens: int, usd: float) -> None: ...
    def spent(self, day: int) -> tuple[int, float]: ...


class SharedBudget:
    """The daily budget on a store's ledger: the check and the reservation are one atomic step
    in the database, so every process on the store spends one budget (see
    :class:`~llmpulse.processor.store.protocols.BudgetLedger`). Ledger calls block, so they run
    in a thread; ``tokens`` and ``usd`` are the spend last read, for status pages.
    """

    def __init__(self, ledger: Ledger, max_tokens: int, max_usd: float, *, clock: Clock = time.time) -> None:
        self.ledger = ledger
        self.max_tokens = max_tokens
        self.max_usd = max_usd
        self.clock = clock
        self.tokens = 0
        self.usd = 0.0
        self._day = -1

    def _today(self) -> int:
        day = int(self.clock() // 86400)
        if day != self._day:
            self._day, self.tokens, self.usd = day, 0, 0.0
        return day

    def allows(self) -> bool:
        """Whether another call fitted in today's budget when it was last read."""
        self._today()
        return self.tokens < self.max_tokens and self.usd < self.max_usd

    async def admit(self) -> object | None:
        """An admission for one call when today's shared budget allows it, else None."""
        admission = await asyncio.to_thread(self.ledger.admit, self._today(), self.max_tokens, self.max_usd)
        if admission is None:
            await self.refresh()  # spent by others: show it
        return admission

    async def settle(self, ticket: object, tokens: int, usd: float) -> None:
        """Record what the admitted call cost and read back the day's spend."""
        await asyncio.to_thread(self.ledger.settle, ticket, tokens, usd)
        await self.refresh()

    async def refresh(self) -> None:
        """Read the day's spend (by every process on the store) into ``tokens`` and ``usd``."""
        day = self._today()
        spent = await asyncio.to_thread(self.ledger.spent, day)
        if day == self._day:
            self.tokens, self.usd = spent


Budget = DailyBudget | SharedBudget
"""Either budget: both have ``admit``/``settle``, ``allows`` and the spend fields."""


class CircuitBreaker:
    """Opens after ``failures`` consecutive failures; after ``cooldown_s`` lets one trial call
    through (half-open): success closes it, failure opens it for another cooldown."""

    def __init__(self, failures: int, cooldown_s: float, *, clock: Clock = time.monotonic) -> None:
        self.threshold = max(1, failures)
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def is_open(self) -> bool:
        """True while calls are refused (open and cooling down)."""
        return self._opened_at is not None and self._clock() - self._opened_at < self.cooldown_s

    def allow(self) -> bool:
        """Whether a call may go out now; in half-open state only one trial at a time."""
        if self._opened_at is None:
            return True
        if self.is_open or self._trial:
            return False
        self._trial = True
        return True

    def record(self, ok: bool) -> None:
        """Report a call's outcome."""
        self._trial = False
        if ok:
            self._failures = 0
            self._opened_at = None
            return
        self._failures += 1
        if self._opened_at is not None or self._failures >= self.threshold:
            self._opened_at = self._clock()
