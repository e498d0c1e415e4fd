"""Wait for a condition another thread, process or task brings about.

One bounded poll for every test that waits on something real (a scrape, a notification, a queue
filling up). The bound is a deadline, not a timing assertion: a slow machine waits longer, it
does not fail sooner. On timeout the test fails with ``message``; a poll that returns ``None``
instead would let a caller forget to check.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["Message", "wait_until", "wait_until_async"]

T = TypeVar("T")


Message = str | Callable[[], str] | None
"""What a timeout says; a callable is called only then (e.g. to attach a log tail)."""


def _failure(predicate: Callable[[], object], timeout: float, message: Message) -> AssertionError:
    what = message() if callable(message) else message
    what = what or f"{getattr(predicate, '__qualname__', predicate)!s} never became true"
    return AssertionError(f"{what} (waited {timeout:g} s)")


def wait_until(
    predicate: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.05, message: Message = None
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy; return that.

    Raises ``AssertionError`` (``message``, or the predicate's name) after ``timeout`` seconds;
    ``message`` may be a callable, called only on timeout.
    Blocks the thread: in a coroutine use :func:`wait_until_async`.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _failure(predicate, timeout, message)
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = 30.0,
    interval: float = 0.002,
    message: Message = None,
) -> T:
    """:func:`wait_until` for coroutines: yields to the event loop between calls.

    ``predicate`` may be a coroutine function (e.g. one that queries an HTTP API).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _failure(predicate, timeout, message)
        await asyncio.sleep(interval)
