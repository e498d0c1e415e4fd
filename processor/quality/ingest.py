"""Glue from the processor's normalised records and OTLP spans to the quality engine's inputs.

The processor's per-span path reads only the attributes its metrics need; content
(``gen_ai.input.messages`` and friends) is read here, once, for the calls handed to the quality
engine. The pipeline calls::

    engine.observe(sample_from_call(call, span))          # for every LLMCall (not secondary)
    engine.observe_feedback(feedback_from_record(fb, span))  # for every Feedback record

``span`` is the ``opentelemetry.proto.trace.v1.trace_pb2.Span`` the record came from.
"""

from __future__ import annotations

from typing import Any

from llmpulse.contract import attributes as A
from llmpulse.processor.pipeline.records import Feedback, LLMCall
from llmpulse.processor.quality.types import FeedbackEvent, QualitySample, messages_from_json, output_text

__all__ = ["feedback_from_record", "sample_from_call", "span_strings"]

_CONTENT_KEYS = frozenset(
    {
        A.GEN_AI_INPUT_MESSAGES,
        A.GEN_AI_OUTPUT_MESSAGES,
        A.GEN_AI_SYSTEM_INSTRUCTIONS,
        A.GEN_AI_OUTPUT_TYPE,
        A.REFUSAL,
        A.GEN_AI_RESPONSE_ID,
        A.FEEDBACK_COMMENT,
    }
)


def span_strings(span: Any, keys: frozenset[str] = _CONTENT_KEYS) -> dict[str, Any]:
    """The string and boolean values of ``keys`` among an OTLP span's attributes."""
    found: dict[str, Any] = {}
    for kv in span.attributes:
        if kv.key in keys:
            which = kv.value.WhichOneof("value")
            if which == "string_value":
                found[kv.key] = kv.value.string_value
            elif which == "bool_value":
                found[kv.key] = kv.value.bool_value
    return found


def _system_text(value: str | None) -> str | None:
    """``gen_ai.system_instructions`` is a JSON list of parts; fall back to the raw string."""
    if value is None:
        return None
    parts = messages_from_json(value)
    if parts is None:
        return value
    return "\n".join(str(p.get("content", "")) for p in parts if p.get("type") == "text") or value


def sample_from_call(call: LLMCall, span: Any | None = None) -> QualitySample:
    """A :class:`QualitySample` from a normalised call and (optionally) the span, for its content."""
    if span is None:  # the common case: no content on the span, only the call's numbers
        return QualitySample(
            call.trace_id,
            call.feature,
            call.model,
            call.span_id,
            call.provider,
            call.response_id or None,
            finish_reason=call.finish_reason,
            refusal=call.outcome == "refusal",
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            error_type=call.error_type or None,
            duration_s=call.duration_s,
            cost_usd=call.cost_usd,
            timestamp=call.end_ns / 1e9,
        )
    attrs = span_strings(span)
    output_messages = messages_from_json(attrs.get(A.GEN_AI_OUTPUT_MESSAGES))
    return QualitySample(
        trace_id=call.trace_id,
        span_id=call.span_id,
        feature=call.feature,
        model=call.model,
        provider=call.provider,
        response_id=call.response_id or None,
        input_messages=messages_from_json(attrs.get(A.GEN_AI_INPUT_MESSAGES)),
        output_text=output_text(output_messages),
        system_instructions=_system_text(attrs.get(A.GEN_AI_SYSTEM_INSTRUCTIONS)),
        output_type=attrs.get(A.GEN_AI_OUTPUT_TYPE),
        finish_reason=call.finish_reason,
        refusal=bool(attrs.get(A.REFUSAL)) or call.outcome == "refusal",
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        error_type=call.error_type or None,
        duration_s=call.duration_s,
        cost_usd=call.cost_usd,
        timestamp=call.end_ns / 1e9,
    )


def feedback_from_record(record: Feedback, span: Any | None = None) -> FeedbackEvent:
    """A :class:`FeedbackEvent` from a normalised feedback record and its span (response id, comment)."""
    attrs = span_strings(span) if span is not None else {}
    comment = attrs.get(A.FEEDBACK_COMMENT)
    return FeedbackEvent(
        feature=record.feature,
        kind=record.kind,
        sentiment=record.sentiment,
        response_id=attrs.get(A.GEN_AI_RESPONSE_ID) or None,
        trace_id=bytes(span.trace_id) if span is not None else b"",
        comment=comment if isinstance(comment, str) else None,
        timestamp=span.end_time_unix_nano / 1e9 if span is not None else 0.0,
    )
