"""Message content capture: whether a span gets content, and how the text is encoded.

Content is opt-in. In ``sampled`` mode the decision is the deterministic sampler's verdict on
the span's trace id, so the processor's judge sees content on exactly the traces it samples.
Everything captured is redacted and truncated before it is set on a span; nothing here runs
when content is off.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.trace import Span

from llmpulse.contract import attributes as A
from llmpulse.contract.content import TRUNCATION_MARKER
from llmpulse.contract.redaction import Redactor, redact_truncated
from llmpulse.contract.sampling import is_sampled
from llmpulse.instrumentation.config import Settings

_log = logging.getLogger(__name__)

_TEXT_BLOCKS = frozenset({"text", "input_text", "output_text"})


class ContentPolicy:
    """Decides per span whether to capture content, and encodes it."""

    def __init__(self, settings: Settings) -> None:
        self.mode = settings.content
        self.rate = settings.sample_rate
        self.max_chars = settings.content_max_chars
        self._redact = Redactor(settings.redact)

    @property
    def enabled(self) -> bool:
        """Whether any span can get content."""
        return self.mode == "on" or (self.mode == "sampled" and self.rate > 0.0)

    def decide(self, span: Span) -> bool:
        """Whether ``span`` gets content; marks sampled spans."""
        if self.mode == "on":
            return True
        if self.mode != "sampled":
            return False
        sampled = is_sampled(span.get_span_context().trace_id, self.rate)
        if sampled:
            span.set_attributes({A.SAMPLED: True, A.SAMPLE_RATE: self.rate})
        return sampled

    def text(self, text: str) -> str:
        """Redact and truncate one text (a huge text is cut before it is redacted)."""
        return redact_truncated(self._redact, text, self.max_chars, TRUNCATION_MARKER)

    def encode(self, value: Any) -> str:
        """JSON-encode ``value`` (messages in the semconv shape), then redact and truncate."""
        return self.text(json.dumps(value, ensure_ascii=False, default=str))


def parts(content: Any) -> list[dict[str, Any]]:
    """Semconv message parts from an OpenAI/Anthropic ``content`` (string or block list)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    out: list[dict[str, Any]] = []
    if isinstance(content, Iterable) and not isinstance(content, Mapping):
        for block in content:
            kind = _get(block, "type")
            if kind in _TEXT_BLOCKS:
                out.append({"type": "text", "content": _get(block, "text")})
            elif kind == "refusal":
                out.append({"type": "refusal", "content": _get(block, "refusal")})
            elif kind is not None:
                out.append({"type": str(kind)})  # images, tool blocks: type only, never payloads
    return out


def chat_messages(messages: Any) -> list[dict[str, Any]]:
    """Semconv input messages from a list of ``{"role", "content"}`` messages."""
    result: list[dict[str, Any]] = []
    if not isinstance(messages, Iterable) or isinstance(messages, (str, bytes, Mapping)):
        return [{"role": "user", "parts": parts(messages)}] if isinstance(messages, str) else result
    for message in messages:
        result.append(
            {"role": str(_get(message, "role") or "user"), "parts": parts(_get(message, "content"))}
        )
    return result


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)
