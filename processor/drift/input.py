"""Turn captured span content into a :class:`DriftSample`: the glue between spans and the drift engine.

Content arrives as the semconv JSON strings ``gen_ai.input.messages`` and
``gen_ai.output.messages`` (``[{"role": "user", "parts": [{"type": "text", "content": "..."}]}]``),
redacted and possibly truncated by the instrumentation, which can leave the JSON cut short. A
truncated document is not an error: the text found in it is used. The parsing is
:mod:`llmpulse.contract.content`'s (:meth:`~llmpulse.contract.content.Content.last_user_text`,
:meth:`~llmpulse.contract.content.Content.response_chars`); the processor parses a call's
content once (:attr:`LLMCall.content <llmpulse.processor.pipeline.records.LLMCall.content>`) and
:func:`sample_from_parsed` reads it.
"""

from __future__ import annotations

from llmpulse.contract.attributes import UNKNOWN_SERVICE
from llmpulse.contract.content import TRUNCATION_MARKER, Content, parse_content
from llmpulse.processor.drift.engine import DriftSample

__all__ = [
    "TRUNCATION_MARKER",
    "last_user_text",
    "response_chars",
    "sample_from_content",
    "sample_from_parsed",
]


def last_user_text(input_messages: str) -> str:
    """The text of the last user message in a ``gen_ai.input.messages`` document ("" if none)."""
    return parse_content(input_messages).last_user_text()


def response_chars(output_messages: str) -> int:
    """Characters of answer text in a ``gen_ai.output.messages`` document."""
    return parse_content(output_messages=output_messages).response_chars() or 0


def sample_from_parsed(
    feature: str,
    content: Content,
    finish_reason: str | None = None,
    timestamp: float = 0.0,
    service: str = UNKNOWN_SERVICE,
) -> DriftSample | None:
    """A drift sample from a call's parsed content; None when there is no user text."""
    text = content.last_user_text()
    if not text.strip():
        return None
    return DriftSample(feature, text, content.response_chars(), finish_reason, timestamp, service)


def sample_from_content(
    feature: str,
    input_messages: str | None,
    output_messages: str | None = None,
    finish_reason: str | None = None,
    timestamp: float = 0.0,
) -> DriftSample | None:
    """A drift sample from a span's content attributes; None when there is no user text."""
    if not input_messages:
        return None
    return sample_from_parsed(
        feature, parse_content(input_messages, output_messages), finish_reason, timestamp
    )
