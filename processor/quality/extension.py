"""Plugs the quality engine (and its canary runner) into the processor as one extension.

:class:`QualityListener` hands the pipeline's records to the engine; :func:`quality_extension`
puts the listener, the engine's registry, the ``quality`` status section and the lifecycle of
the engine and the canary runner into one :class:`~llmpulse.processor.extension.Extension`::

    registry = CollectorRegistry(auto_describe=False)
    engine = QualityEngine(settings, registry=registry)
    service = ProcessorService(settings, extensions=[quality_extension(engine, registry=registry)])
"""

from __future__ import annotations

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


class QualityListener:
    """Hands every counted LLM call and feedback event to the quality engine."""

    def __init__(self, engine: QualityEngine) -> None:
        self._engine = engine
        self._content = ContentBatch(engine.content)

    def on_call(self, call: LLMCall, span: Any | None) -> None:
        """Check the call (counts deferred to :meth:`on_batch_end`)."""
        if not call.has_content:  # most calls: their numbers only, no sample object
            is_error = self._engine.observe_numbers(call)
            self._content.add((call.service, call.feature), None, is_error, False, span)
            return
        sample = sample_from_call(call, span)
        self._engine.observe(sample, defer_counts=True)
        self._content.add(sample.key, sample.output_text, sample.is_error, True, span)

    def on_batch_end(self) -> None:
        """Apply the counts of the batch's calls."""
        self._engine.flush_counts()
        self._content.flush()

    def on_feedback(self, feedback: Feedback, span: Any | None) -> None:
        """Count the feedback event."""
        self._engine.observe_feedback(feedback_from_record(feedback, span))


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
