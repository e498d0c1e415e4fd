"""The drift listener takes one prompt per trace and feature: an agent run repeats its prompt."""

from __future__ import annotations

import json
from typing import Any

from llmpulse.contract import attributes as A
from llmpulse.processor.drift.listener import RECENT_TRACES, DriftListener
from llmpulse.processor.pipeline.normalize import normalize_span
from llmpulse.processor.pipeline.records import LLMCall
from llmpulse.testing.otlp import llm_attributes, make_span


class Recorder:
    def __init__(self) -> None:
        self.samples: list[Any] = []

    def observe(self, sample: Any) -> None:
        self.samples.append(sample)


def _call(trace: int, span: int) -> tuple[LLMCall, Any]:
    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Plan my trip"}]}])
    raw = make_span(
        llm_attributes(**{A.GEN_AI_INPUT_MESSAGES: messages}),
        trace_id=trace.to_bytes(16, "big"),
        span_id=span.to_bytes(8, "big"),
    )
    call = normalize_span(raw)
    assert isinstance(call, LLMCall)
    return call, raw


def test_one_sample_per_trace_even_when_runs_interleave() -> None:
    engine = Recorder()
    listener = DriftListener(engine)  # type: ignore[arg-type]
    for span, trace in enumerate((1, 1, 2, 1, 2, 3, 3)):  # three runs, interleaved
        listener.on_call(*_call(trace, span + 1))
    assert len(engine.samples) == 3


def test_the_memory_of_traces_is_bounded() -> None:
    engine = Recorder()
    listener = DriftListener(engine)  # type: ignore[arg-type]
    for trace in range(RECENT_TRACES + 10):
        listener.on_call(*_call(trace + 1, 1))
    assert len(engine.samples) == RECENT_TRACES + 10
    assert len(listener._recent["support"]) == RECENT_TRACES
