"""Feeds the drift engine from the processor's pipeline.

:class:`DriftListener` is a :class:`~llmpulse.processor.pipeline.queue.RecordListener`: for every
counted LLM call whose span carried sampled content (``gen_ai.input.messages``), it takes the
call's parsed content (:attr:`LLMCall.content`, parsed once per call and shared with the quality
engine) and hands a :class:`DriftSample` to the engine (a queue append). Calls without content
cost one flag test.
:func:`~llmpulse.processor.drift.extension.drift_extension` plugs it into the processor.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from llmpulse.processor.drift.engine import DriftEngine
from llmpulse.processor.drift.input import sample_from_parsed
from llmpulse.processor.pipeline.records import Feedback, LLMCall

__all__ = ["DriftListener"]

logger = logging.getLogger(__name__)

RECENT_TRACES = 256  # traces remembered per feature: more than the runs in flight at once


class DriftListener:
    """Feeds the drift engine from the processor's pipeline (event loop; returns at once).

    One sample per trace and feature: an agent run's LLM calls carry the same user message
    again and again, and content is sampled per trace, so taking each call would feed the
    two-sample tests runs of identical prompts (not independent samples) and make them reject
    by chance far more often than their alpha.
    """

    def __init__(self, engine: DriftEngine) -> None:
        self._engine = engine
        # feature (a capped label) -> the traces sampled last, oldest first (runs interleave)
        self._recent: dict[str, OrderedDict[bytes, None]] = {}

    def on_call(self, call: LLMCall, span: Any | None) -> None:
        """Queue the call's prompt for drift monitoring when its span carries content."""
        if span is None or call.secondary or not call.has_content:
            return
        recent = self._recent.get(call.feature)
        if recent is None:
            recent = self._recent[call.feature] = OrderedDict()
        if call.trace_id in recent:
            return
        recent[call.trace_id] = None
        if len(recent) > RECENT_TRACES:
            recent.popitem(last=False)
        content = call.content  # parsed once per call, shared with the quality engine
        if content is None or content.input is None:
            return
        sample = sample_from_parsed(
            call.feature, content, call.finish_reason, call.end_ns / 1e9, call.service
        )
        if sample is not None:
            self._engine.observe(sample)

    def on_feedback(self, feedback: Feedback, span: Any | None) -> None:
        """Feedback does not feed drift."""
