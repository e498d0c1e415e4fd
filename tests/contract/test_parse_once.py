"""A call's content is parsed once, on first use, and both engines read that one value."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmpulse.contract import attributes as A
from llmpulse.contract import content as content_module
from llmpulse.processor.drift.engine import DriftSample
from llmpulse.processor.drift.listener import DriftListener
from llmpulse.processor.pipeline import records
from llmpulse.processor.pipeline.normalize import normalize_span
from llmpulse.processor.pipeline.records import LLMCall
from llmpulse.processor.quality.ingest import sample_from_call
from llmpulse.testing.otlp import make_span

MESSAGES = [{"role": "user", "parts": [{"type": "text", "content": "where is my order"}]}]
OUTPUT = [{"role": "assistant", "parts": [{"type": "text", "content": "In transit."}]}]


class _Engine:
    def __init__(self) -> None:
        self.samples: list[DriftSample] = []

    def observe(self, sample: DriftSample) -> None:
        self.samples.append(sample)


def _call(attributes: dict[str, Any]) -> tuple[LLMCall, Any]:
    base = {A.GEN_AI_OPERATION_NAME: "chat", A.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", A.FEATURE: "support"}
    span = make_span({**base, **attributes}, trace_id=bytes(range(16)), span_id=b"\x01" * 8, name="chat")
    call = normalize_span(span)
    assert isinstance(call, LLMCall)
    return call, span


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    seen: list[tuple[Any, ...]] = []

    def counting(*args: Any) -> content_module.Content:
        seen.append(args)
        return content_module.parse_content(*args)

    monkeypatch.setattr(records, "parse_content", counting)
    return seen


def test_quality_and_drift_share_one_parse(parses: list[tuple[Any, ...]]) -> None:
    call, span = _call(
        {A.GEN_AI_INPUT_MESSAGES: json.dumps(MESSAGES), A.GEN_AI_OUTPUT_MESSAGES: json.dumps(OUTPUT)}
    )
    assert parses == []  # the normaliser keeps the text; nothing is parsed before an engine asks
    engine = _Engine()
    DriftListener(engine).on_call(call, span)  # type: ignore[arg-type]
    sample = sample_from_call(call, span)
    assert len(parses) == 1
    assert engine.samples[0].text == "where is my order"
    assert engine.samples[0].response_length == len("In transit.")
    assert sample.input_messages == MESSAGES and sample.output_text == "In transit."
    assert call.content is call.content


def test_a_call_without_content_is_never_parsed(parses: list[tuple[Any, ...]]) -> None:
    call, span = _call({})
    engine = _Engine()
    DriftListener(engine).on_call(call, span)  # type: ignore[arg-type]
    sample = sample_from_call(call, span)
    assert parses == [] and call.content is None and engine.samples == []
    assert not sample.has_content
