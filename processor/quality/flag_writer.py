"""The path of flagged samples to the store: a bounded queue the event loop fills without
waiting, and a writer task that stores what is queued in batches (one thread hop and one
SQLite transaction per batch).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.metrics import QualityMetrics
from llmpulse.processor.quality.store import FlaggedRecord
from llmpulse.processor.quality.types import QualitySample, Verdict
from llmpulse.processor.store.protocols import FlaggedSamples

__all__ = ["FlagWriter"]

_log = logging.getLogger(__name__)

_STORE_BATCH = 256  # flagged records written per transaction
_QUEUE_SIZE = 1000


class FlagWriter:
    """Queues flagged records for ``store`` and writes them from :meth:`run`."""

    def __init__(
        self, store: FlaggedSamples, metrics: QualityMetrics, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self._clock = clock
        self._queue: asyncio.Queue[FlaggedRecord] = asyncio.Queue(_QUEUE_SIZE)
        self._full = metrics.store_dropped.labels(Q.STORE_DROP_QUEUE_FULL)
        self._stored = metrics.stored  # counted after the commit: what a kill cannot take back
        self.on_flagged: Callable[[QualitySample], None] | None = None

    def flagged(self, sample: QualitySample) -> None:
        """Tell :attr:`on_flagged` (the agents engine: the session keeps its turns from here)
        about a flagged call of a conversation that carried content."""
        hook = self.on_flagged
        if hook is not None and sample.conversation_id and sample.has_content:
            try:
                hook(sample)
            except Exception:
                _log.exception("event=flag_listener_failed")

    def record(
        self,
        sample: QualitySample,
        sources: tuple[str, ...],
        reasons: tuple[str, ...],
        verdict: Verdict | None = None,
        judge_verdict: str | None = None,
    ) -> FlaggedRecord:
        """The record of ``sample`` (stamped now when the sample has no timestamp)."""
        return FlaggedRecord.from_sample(
            sample, sources, reasons, self._clock(), verdict=verdict, judge_verdict=judge_verdict
        )

    def save(self, record: FlaggedRecord) -> None:
        """Queue ``record`` for the writer; a full queue drops it (counted)."""
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self._full.inc()

    async def run(self) -> None:
        """The writer task: store queued records in batches until cancelled."""
        queue = self._queue
        while True:
            batch = [await queue.get()]  # then whatever else is waiting: one thread hop, one commit
            while len(batch) < _STORE_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await asyncio.to_thread(self.store.add_many, batch)
                self._stored.inc(len(batch))
            except Exception:
                _log.exception("could not store %d flagged sample(s)", len(batch))
            finally:
                for _ in batch:
                    queue.task_done()

    async def join(self) -> None:
        """Wait until every queued record is stored (needs :meth:`run` running)."""
        await self._queue.join()

    async def store_remaining(self) -> None:
        """Store, one by one, what is still queued once the writer has stopped (or never ran)."""
        while not self._queue.empty():
            record = self._queue.get_nowait()
            try:
                await asyncio.to_thread(self.store.add, record)
                self._stored.inc()
            except Exception:
                _log.exception("could not store a flagged sample of feature %s", record.feature)
