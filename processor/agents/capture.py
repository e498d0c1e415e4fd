"""Captured sessions to the store: a bounded queue the event loop fills without waiting, and a
writer task that stores what is queued in batches (one thread hop per batch).

Two kinds of work go through the one queue, in order: a closed session's record
(:meth:`SessionCapture.save`, from the agents engine) and the session judge's verdict on it
(:meth:`SessionCapture.verdict`, from the quality engine's judge). The engine queues a session
before it offers the session to the judge, so its verdict never reaches the store first. After
a batch the store is pruned to ``max_bytes`` of content (and its retention age), at most once
every ``prune_every_s`` seconds and once more at stop (a prune sums every session's size, so
the bound may be overshot by the sessions of those seconds; benchmarks/bench_sessions_store.py).
What that drops, and what a full queue refuses, is counted
(``llmpulse_agent_tracking_evictions_total`` with reason ``session_store`` and ``session_queue``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from llmpulse.processor.agents.sessions import Session
from llmpulse.processor.store.protocols import SessionTranscripts
from llmpulse.processor.store.sessions import SessionRecord, SessionVerdict, TurnRecord

__all__ = ["SessionCapture", "record_of"]

_log = logging.getLogger(__name__)

_QUEUE_SIZE = 1000
_BATCH = 64


class SessionCapture:
    """Queues captured sessions and verdicts for ``store``; :meth:`run` writes them."""

    def __init__(
        self,
        store: SessionTranscripts,
        *,
        max_bytes: int,
        close: Callable[[], None] | None = None,
        prune_every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self._close = close
        self._prune_every_s = prune_every_s
        self._clock = clock
        self._pruned_at: float | None = None
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(_QUEUE_SIZE)
        self.stored = 0
        self.refused = 0  # the queue was full
        self.evicted = 0  # pruned from the store
        self.verdicts = 0  # verdicts that found their session

    def save(self, record: SessionRecord) -> None:
        """Queue a closed session's record; a full queue refuses it (counted)."""
        self._put(("session", record))

    def verdict(self, service: str, last_trace_id: bytes, verdict: SessionVerdict) -> None:
        """Queue the judge's verdict on the session of ``service`` whose last turn is ``last_trace_id``."""
        self._put(("verdict", (service, last_trace_id, verdict)))

    def _put(self, item: tuple[str, Any]) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.refused += 1

    def _write(self, batch: list[tuple[str, Any]], *, prune: bool = False) -> None:
        """Store one batch, then prune if it is time or ``prune`` (in a worker thread)."""
        for kind, item in batch:
            try:
                if kind == "session":
                    self.store.add_session(item)
                    self.stored += 1
                elif self.store.set_verdict(*item):
                    self.verdicts += 1
            except Exception:
                _log.exception("event=session_store_failed kind=%s", kind)
        now = self._clock()
        if prune or self._pruned_at is None or now - self._pruned_at >= self._prune_every_s:
            self._pruned_at = now
            try:
                self.evicted += self.store.prune_sessions(max_bytes=self.max_bytes)
            except Exception:
                _log.exception("event=session_prune_failed")

    def _take(self, first: tuple[str, Any]) -> list[tuple[str, Any]]:
        batch = [first]
        while len(batch) < _BATCH and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def run(self) -> None:
        """The writer task: store queued work in batches until cancelled."""
        while True:
            batch = self._take(await self._queue.get())
            try:
                await asyncio.to_thread(self._write, batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def join(self) -> None:
        """Wait until everything queued is written (needs :meth:`run` running)."""
        await self._queue.join()

    async def stop(self) -> None:
        """Store what is still queued (the writer was cancelled), then close the store."""
        while not self._queue.empty():
            batch = self._take(self._queue.get_nowait())
            await asyncio.to_thread(self._write, batch)
            for _ in batch:
                self._queue.task_done()
        await asyncio.to_thread(self._write, [], prune=True)
        if self._close is not None:
            await asyncio.to_thread(self._close)


def record_of(session: Session, service: str, feature: str) -> SessionRecord:
    """The store's record of a closed session with a transcript."""
    transcript = session.transcript or {}
    return SessionRecord(
        service=service,
        environment=session.environment,
        feature=feature,
        conversation_id=session.conversation_id,
        started=session.first_ns / 1e9,
        ended=session.last_ns / 1e9,
        turns=session.turns,
        turns_clipped=session.turns_clipped,
        last_trace_id=next(reversed(transcript)),
        cost_usd=session.cost_usd,
        abandoned=session.abandoned,
        corrections=session.corrections,
        follow_ups=session.follow_ups,
        explicit_feedback=session.explicit,
        positive_feedback=session.positive,
        transcript=tuple(
            TurnRecord(
                trace_id=trace,
                user=t.user,
                answer=t.answer,
                started=t.start_ns / 1e9,
                duration_s=max(0, t.end_ns - t.start_ns) / 1e9,
                model=t.model,
                llm_calls=t.calls,
                input_tokens=t.input_tokens,
                output_tokens=t.output_tokens,
                cost_usd=t.cost_usd,
                error=t.error,
                number=t.number,
            )
            for trace, t in transcript.items()
        ),
    )
