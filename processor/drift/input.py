"""Turn captured span content into a :class:`DriftSample`: the glue between spans and the drift engine.

Content arrives as the semconv JSON strings ``gen_ai.input.messages`` and
``gen_ai.output.messages`` (``[{"role": "user", "parts": [{"type": "text", "content": "..."}]}]``),
redacted and possibly truncated by the instrumentation, which can leave the JSON cut short. A
truncated document is not an error: the text found in it is used.
"""

from __future__ import annotations

import json
import re
from typing import Any

from llmpulse.processor.drift.engine import DriftSample

__all__ = ["last_user_text", "response_chars", "sample_from_content"]

TRUNCATION_MARKER = "…[truncated]"  # appended by the instrumentation when it cuts content
_CONTENT = re.compile(r'"content"\s*:\s*"((?:[^"\\]|\\.)*)')
_ROLE_USER = re.compile(r'"role"\s*:\s*"user"')
_ROLE = re.compile(r'"role"\s*:')


def _text_of(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    parts = message.get("parts")
    if isinstance(parts, list):
        texts = [p.get("content") for p in parts if isinstance(p, dict) and p.get("type") == "text"]
        return "\n".join(t for t in texts if isinstance(t, str))
    content = message.get("content")  # the pre-"parts" shape some producers still write
    return content if isinstance(content, str) else ""


def _unescape(fragment: str) -> str:
    try:
        return str(json.loads(f'"{fragment}"'))
    except ValueError:
        return fragment


def last_user_text(input_messages: str) -> str:
    """The text of the last user message in a ``gen_ai.input.messages`` document ("" if none)."""
    try:
        messages = json.loads(input_messages)
    except ValueError:
        input_messages = input_messages.removesuffix(TRUNCATION_MARKER)
        # Truncated JSON: the text parts of the last user message that survived the cut, up to
        # the next message's role; none when the cut left no user message at all.
        start = -1
        for match in _ROLE_USER.finditer(input_messages):
            start = match.end()
        if start < 0:
            return ""
        following = _ROLE.search(input_messages, start)
        end = following.start() if following else len(input_messages)
        return "\n".join(_unescape(m) for m in _CONTENT.findall(input_messages, start, end))
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message)
    return ""


def response_chars(output_messages: str) -> int:
    """Characters of answer text in a ``gen_ai.output.messages`` document."""
    try:
        messages = json.loads(output_messages)
    except ValueError:
        output_messages = output_messages.removesuffix(TRUNCATION_MARKER)
        return sum(len(_unescape(m)) for m in _CONTENT.findall(output_messages))
    if not isinstance(messages, list):
        return 0
    return sum(len(_text_of(m)) for m in messages)


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
    text = last_user_text(input_messages)
    if not text.strip():
        return None
    length = response_chars(output_messages) if output_messages else None
    return DriftSample(feature, text, length, finish_reason, timestamp)
