"""Glue from the processor's normalised records and OTLP spans to the quality engine's inputs.

The processor's per-span path reads only the attributes its metrics need and keeps a call's
content (``gen_ai.input.messages`` and friends) as text; it is parsed once, on first use, by
:attr:`LLMCall.content <llmpulse.processor.pipeline.records.LLMCall.content>` and shared with the
drift engine. The pipeline calls::

    engine.observe(sample_from_call(call, span))          # for every LLMCall (not secondary)
    engine.observe_feedback(feedback_from_record(fb, span))  # for every Feedback record

``span`` is the ``opentelemetry.proto.trace.v1.trace_pb2.Span`` the record came from.
"""

from __future__ import annotations

from typing import Any

from llmpulse.contract import attributes as A
from llmpulse.processor.pipeline.records import Feedback, LLMCall
from llmpulse.processor.quality.types import FeedbackEvent, QualitySample

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


def sample_from_call(call: LLMCall, span: Any | None = None) -> QualitySample:
    """A :class:`QualitySample` from a normalised call; with ``span``, its content too.

    The content is the call's own (:attr:`LLMCall.content`, parsed once and shared with the
    drift engine); ``span`` only says it is wanted, so the span's attributes are not read again.
    """
    content = None if span is None else call.content
    if content is None:  # the common case: no content on the span, only the call's numbers
        return QualitySample(
            call.trace_id,
            call.feature,
            call.model,
            call.span_id,
            call.provider,
            call.response_id or None,
            output_type=None if span is None else call.output_type,
            finish_reason=call.finish_reason,
            refusal=(span is not None and call.refusal_flag) or call.outcome == "refusal",
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            error_type=call.error_type or None,
            duration_s=call.duration_s,
            cost_usd=call.cost_usd,
            timestamp=call.end_ns / 1e9,
            service=call.service,
            response_model=call.response_model or None,
            prompt_version=call.prompt_version or None,
            app_version=call.app_version or None,
            query_category=call.query_category or None,
            rag_index_version=call.rag_index_version or None,
        )
    return QualitySample(
        trace_id=call.trace_id,
        span_id=call.span_id,
        feature=call.feature,
        model=call.model,
        provider=call.provider,
        response_id=call.response_id or None,
        input_messages=content.input_messages(),
        output_text=content.output_text(),
        system_instructions=content.system_text(),
        output_type=call.output_type,
        finish_reason=call.finish_reason,
        refusal=call.refusal_flag or call.outcome == "refusal",
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        error_type=call.error_type or None,
        duration_s=call.duration_s,
        cost_usd=call.cost_usd,
        timestamp=call.end_ns / 1e9,
        content_bytes=sum(len(text) for text in call.content_source or () if text),
        service=call.service,
        response_model=call.response_model or None,
        prompt_version=call.prompt_version or None,
        app_version=call.app_version or None,
        query_category=call.query_category or None,
        rag_index_version=call.rag_index_version or None,
        conversation_id=call.conversation_id,
        environment=call.environment,
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
        service=record.service,
    )
