"""From OTLP spans, through the processor's normaliser, to the quality engine's inputs."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmpulse.contract import attributes as A
from llmpulse.processor.pipeline.normalize import normalize_span
from llmpulse.processor.pipeline.records import Feedback, LLMCall
from llmpulse.processor.quality.ingest import feedback_from_record, sample_from_call
from llmpulse.testing.otlp import make_span

TRACE = bytes(range(16))


def _span(attributes: dict[str, Any]) -> Span:
    return make_span(
        attributes,
        trace_id=TRACE,
        span_id=b"\x01" * 8,
        name="chat gpt-4o-mini",
        start_ns=1_764_000_000_000_000_000,
        duration_s=1.5,
        status_code=None,
    )


def test_a_sampled_span_with_content_becomes_a_full_sample() -> None:
    messages = [{"role": "user", "parts": [{"type": "text", "content": "List three colours as JSON"}]}]
    output = [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": '["red", "green"'}],
            "finish_reason": "length",
        }
    ]
    span = _span(
        {
            A.GEN_AI_OPERATION_NAME: "chat",
            A.GEN_AI_PROVIDER_NAME: "openai",
            A.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            A.GEN_AI_RESPONSE_ID: "chatcmpl-42",
            A.GEN_AI_RESPONSE_FINISH_REASONS: ["length"],
            A.GEN_AI_USAGE_INPUT_TOKENS: 12,
            A.GEN_AI_USAGE_OUTPUT_TOKENS: 5,
            A.GEN_AI_OUTPUT_TYPE: "json",
            A.GEN_AI_INPUT_MESSAGES: json.dumps(messages),
            A.GEN_AI_OUTPUT_MESSAGES: json.dumps(output),
            A.GEN_AI_SYSTEM_INSTRUCTIONS: json.dumps([{"type": "text", "content": "Answer in JSON."}]),
            A.FEATURE: "colours",
            A.COST_USD: 0.00002,
            A.SAMPLED: True,
        }
    )
    call = normalize_span(span)
    assert isinstance(call, LLMCall)
    sample = sample_from_call(call, span)
    assert sample.trace_id == TRACE and sample.feature == "colours" and sample.model == "gpt-4o-mini"
    assert sample.response_id == "chatcmpl-42"
    assert sample.input_messages == messages
    assert sample.output_text == '["red", "green"'
    assert sample.system_instructions == "Answer in JSON."
    assert sample.output_type == "json" and sample.finish_reason == "length"
    assert sample.input_tokens == 12 and sample.duration_s == 1.5 and sample.cost_usd == 0.00002
    assert not sample.is_error and not sample.refusal and sample.has_content


def test_a_span_without_content_still_gives_the_numbers() -> None:
    span = _span(
        {A.GEN_AI_OPERATION_NAME: "chat", A.GEN_AI_REQUEST_MODEL: "gpt-4o", A.ERROR_TYPE: "RateLimitError"}
    )
    call = normalize_span(span)
    assert isinstance(call, LLMCall)
    sample = sample_from_call(call, span)
    assert not sample.has_content and sample.input_messages is None
    assert sample.is_error and sample.error_type == "RateLimitError"


def test_feedback_spans_carry_the_response_they_are_about() -> None:
    span = _span(
        {
            A.SPAN_KIND: A.SPAN_KIND_FEEDBACK,
            A.FEATURE: "colours",
            A.FEEDBACK_KIND: "thumbs",
            A.FEEDBACK_VALUE: False,
            A.FEEDBACK_COMMENT: "wrong colours",
            A.GEN_AI_RESPONSE_ID: "chatcmpl-42",
        }
    )
    record = normalize_span(span)
    assert isinstance(record, Feedback)
    event = feedback_from_record(record, span)
    assert (event.feature, event.kind, event.response_id, event.comment) == (
        "colours",
        "thumbs",
        "chatcmpl-42",
        "wrong colours",
    )
    assert event.sentiment == "negative" and event.trace_id == TRACE
