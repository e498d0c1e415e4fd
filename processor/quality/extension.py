"""Plugs the quality engine (and its canary runner) into the processor as one extension.

:class:`QualityListener` hands the pipeline's records to the engine; :func:`quality_extension`
puts the listener, the engine's registry, the ``quality`` status section and the lifecycle of
the engine and the canary runner into one :class:`~llmpulse.processor.extension.Extension`::

    registry = CollectorRegistry(auto_describe=False)
    engine = QualityEngine(settings, registry=registry)
    service = ProcessorService(settings, extensions=[quality_extension(engine, registry=registry)])
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client.registry import CollectorRegistry

from llmpulse.processor.extension import Extension
from llmpulse.processor.pipeline.records import Feedback, LLMCall
from llmpulse.processor.quality.canary import CanaryRunner
from llmpulse.processor.quality.content_watch import ContentBatch
from llmpulse.processor.quality.engine import QualityEngine
from llmpulse.processor.quality.ingest import feedback_from_record, sample_from_call
from llmpulse.processor.quality.status import quality_status

__all__ = ["QualityListener", "quality_extension"]

_log = logging.getLogger(__name__)


class QualityListener:
    """Hands every counted LLM call and feedback event to the quality engine.

    Records are queued as they come and handed over in their order at the batch end, in one
    loop (the pipeline's per-call cost stays an append); the engine's counts and charts are
    therefore current once a batch is done, as its deferred counts always were.
    """

    def __init__(self, engine: QualityEngine) -> None:
        self._engine = engine
        self._content = ContentBatch(engine.content)
        self._queued: list[tuple[LLMCall | Feedback, Any]] = []

    def on_call(self, call: LLMCall, span: Any | None) -> None:
        """Queue the call for :meth:`on_batch_end`."""
        self._queued.append((call, span))

    def on_feedback(self, feedback: Feedback, span: Any | None) -> None:
        """Queue the feedback event for :meth:`on_batch_end`."""
        self._queued.append((feedback, span))

    def on_batch_end(self) -> None:
        """Check the batch's calls, count its feedback, and apply the counts."""
        queued, self._queued = self._queued, []
        engine, content = self._engine, self._content
        observe_numbers, add_content = engine.observe_numbers, content.add
        for record, span in queued:
            try:
                if not isinstance(record, LLMCall):
                    engine.observe_feedback(feedback_from_record(record, span))
                elif not record.has_content:  # most calls: their numbers only, no sample object
                    is_error = observe_numbers(record)
                    add_content((record.service, record.feature), None, is_error, False, span)
                else:
                    sample = sample_from_call(record, span)
                    engine.observe(sample, defer_counts=True)
                    add_content(sample.key, sample.output_text, sample.is_error, True, span)
            except Exception:  # one bad record never costs the others their checks
                _log.exception("event=quality_record_failed record=%s", type(record).__name__)
        engine.flush_counts()
        content.flush()


def quality_extension(
    engine: QualityEngine,
    *,
    registry: CollectorRegistry,
    canary: CanaryRunner | None = None,
    stop_timeout: float = 5.0,
) -> Extension:
    """The ``quality`` extension: ``engine`` (metrics on ``registry``) and, optionally, ``canary``.

    The canary runner starts after the engine and stops before it; the engine gets
    ``stop_timeout`` seconds to drain its judge queue.
    """

    async def start() -> None:
        await engine.start()
        if canary is not None:
            canary.start()

    async def stop() -> None:
        if canary is not None:
            await canary.stop()
        await engine.stop(timeout=stop_timeout)

    return Extension(
        "quality",
        listeners=[QualityListener(engine)],
        collectors=[registry],
        status=lambda: quality_status(engine),
        start=start,
        stop=stop,
        owner=engine,
    )
