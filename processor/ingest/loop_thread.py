"""An event loop on a thread of its own, for a receiver whose intake must not wait on the worker.

The pipeline's worker shares the processor's loop with whatever else runs there and holds it
for slices of work; grpc.aio takes in one new call per one or two turns of the loop it runs on,
so on that loop calls waited seconds under overload before their handler even started (and so
before they could be refused). On a loop of its own the receiver's turns are bounded by the
interpreter's thread switch interval (5 ms) instead. ``start -> run(...) ... -> stop``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


TICK_SECONDS = 0.005
"""How often the loop notes how late it runs (see :attr:`LoopThread.lag`)."""


class LoopThread:
    """A daemon thread running an asyncio loop; coroutines are handed to it with :meth:`run`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._due = 0.0
        self._late = 0.0

    @property
    def lag(self) -> float:
        """Seconds the loop is behind: how late its last tick ran, or the tick now overdue.

        Large when the thread waits for the interpreter (another thread holds the GIL) or has
        more to do than it gets to; readable from any thread."""
        if self.loop is None:
            return 0.0
        return max(self._late, time.monotonic() - self._due)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        # ``loop``, not ``self.loop``: :meth:`stop` clears that before the loop runs its last turn.
        now = time.monotonic()
        self._late = max(0.0, now - self._due)
        self._due = now + TICK_SECONDS
        loop.call_at(loop.time() + TICK_SECONDS, self._tick, loop)

    def start(self) -> None:
        """Start the thread and its loop (returns once the loop runs)."""
        if self._thread is not None:
            return
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def main() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            self._due = time.monotonic()
            loop.call_soon(self._tick, loop)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self.loop = loop
        self._thread = threading.Thread(target=main, name=self.name, daemon=True)
        self._thread.start()
        ready.wait()

    async def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on this thread's loop and await its result from the caller's loop."""
        if self.loop is None:
            coroutine.close()
            raise RuntimeError(f"{self.name}: the loop thread is not running")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop once what it is running now has run, and join the thread."""
        loop, thread = self.loop, self._thread
        self.loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
