"""The one parser of captured message content (standard library only).

The instrumentation writes content as JSON strings in the GenAI semconv message shape::

    gen_ai.input.messages       [{"role": "user", "parts": [{"type": "text", "content": "..."}]}, ...]
    gen_ai.output.messages      [{"role": "assistant", "parts": [...], "finish_reason": "stop"}]
    gen_ai.system_instructions  [{"type": "text", "content": "..."}]

redacted, then cut to ``content_max_chars``: a cut document ends with :data:`TRUNCATION_MARKER`
and is no longer valid JSON. Some producers still write the pre-``parts`` shape
(``{"role": ..., "content": "..."}``); both are read.

:func:`parse_content` decodes each document once (``json`` from the standard library) into an
immutable :class:`Content`; the processor parses a call's content once and hands the same value
to every engine. The engines read it with different rules, kept as separate accessors:

* the quality engine uses complete documents only: a truncated or malformed one counts as
  absent (:meth:`Content.input_messages`, :meth:`Content.output_text`,
  :meth:`Content.system_text`; a message's text parts are joined with no separator);
* the drift engine salvages what survived a cut: the text parts of the last user message that
  survived, up to the next message's role, and the answer text found in a truncated output
  (:meth:`Content.last_user_text`, :meth:`Content.response_chars`; text parts joined by
  newlines).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "TRUNCATION_MARKER",
    "Content",
    "Document",
    "joined_output_text",
    "joined_user_text",
    "message_text",
    "parse_content",
]

TRUNCATION_MARKER: Final = "…[truncated]"
"""Appended by the instrumentation to content it cut at ``content_max_chars``."""

_CONTENT = re.compile(r'"content"\s*:\s*"((?:[^"\\]|\\.)*)')
_ROLE_USER = re.compile(r'"role"\s*:\s*"user"')
_ROLE = re.compile(r'"role"\s*:')
_UNDECODABLE: Final = object()


@dataclass(frozen=True, slots=True)
class Document:
    """One content attribute: its text and, when that is valid JSON, the decoded value."""

    raw: str
    value: Any
    """The decoded JSON; meaningful only when :attr:`decoded`."""
    decoded: bool

    @classmethod
    def parse(cls, raw: str) -> Document:
        """Decode ``raw`` once; a cut or malformed document keeps only its text."""
        try:
            return cls(raw, json.loads(raw), True)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python recurses
            return cls(raw, None, False)

    @property
    def truncated(self) -> bool:
        """The instrumentation cut this document (it ends with :data:`TRUNCATION_MARKER`)."""
        return self.raw.endswith(TRUNCATION_MARKER)

    def messages(self) -> list[dict[str, Any]] | None:
        """The decoded list of message objects; ``None`` when empty, cut, malformed or not that shape."""
        value = self.value
        if not self.decoded or not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
            return None
        return value


@dataclass(frozen=True, slots=True)
class Content:
    """The parsed content attributes of one LLM span; ``None`` where the span had none."""

    input: Document | None = None
    output: Document | None = None
    system: Document | None = None

    # --- complete documents only (the quality engine) -------------------------------------

    def input_messages(self) -> list[dict[str, Any]] | None:
        """The input messages; ``None`` when absent, cut or malformed."""
        return None if self.input is None or not self.input.raw else self.input.messages()

    def output_messages(self) -> list[dict[str, Any]] | None:
        """The output messages; ``None`` when absent, cut or malformed."""
        return None if self.output is None or not self.output.raw else self.output.messages()

    def output_text(self) -> str | None:
        """The answer's text (one line per output message); ``None`` without usable output."""
        return joined_output_text(self.output_messages())

    def system_text(self) -> str | None:
        """The system instructions' text parts; the raw string when it is not a parts list."""
        if self.system is None:
            return None
        parts = None if not self.system.raw else self.system.messages()
        if parts is None:
            return self.system.raw
        text = "\n".join(str(p.get("content", "")) for p in parts if p.get("type") == "text")
        return text or self.system.raw

    # --- what survived a cut too (the drift engine) ---------------------------------------

    def last_user_text(self) -> str:
        """The text of the last user message (``""`` if none); salvaged from a cut document."""
        if self.input is None or not self.input.raw:
            return ""
        return _last_user_text(self.input)

    def response_chars(self) -> int | None:
        """Characters of answer text, found in a cut document too; ``None`` without output."""
        if self.output is None or not self.output.raw:
            return None
        return _response_chars(self.output)


def parse_content(
    input_messages: str | None = None,
    output_messages: str | None = None,
    system_instructions: str | None = None,
) -> Content:
    """Parse a span's content attributes (each the JSON string as captured, or ``None``)."""
    return Content(
        None if input_messages is None else Document.parse(input_messages),
        None if output_messages is None else Document.parse(output_messages),
        None if system_instructions is None else Document.parse(system_instructions),
    )


def message_text(message: dict[str, Any]) -> str:
    """A message's text parts joined with no separator (or its pre-``parts`` ``content`` string)."""
    parts = message.get("parts")
    if isinstance(parts, list):
        return "".join(
            str(p.get("content") or "") for p in parts if isinstance(p, dict) and p.get("type") == "text"
        )
    content = message.get("content")
    return content if isinstance(content, str) else ""


def joined_output_text(messages: list[dict[str, Any]] | None) -> str | None:
    """The text of output messages, one line each; ``None`` when there are none."""
    if messages is None:
        return None
    return "\n".join(message_text(m) for m in messages)


def joined_user_text(messages: list[dict[str, Any]] | None) -> str:
    """The text of the ``user`` messages, one line each (``""`` when there is none)."""
    if not messages:
        return ""
    return "\n".join(message_text(m) for m in messages if m.get("role") == "user")


def _text_lines(message: Any) -> str:
    """A message's string text parts joined by newlines (or its pre-``parts`` ``content``)."""
    if not isinstance(message, dict):
        return ""
    parts = message.get("parts")
    if isinstance(parts, list):
        texts = [p.get("content") for p in parts if isinstance(p, dict) and p.get("type") == "text"]
        return "\n".join(t for t in texts if isinstance(t, str))
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _unescape(fragment: str) -> str:
    try:
        return str(json.loads(f'"{fragment}"'))
    except ValueError:
        return fragment


def _last_user_text(document: Document) -> str:
    if document.decoded:
        messages = document.value
        if not isinstance(messages, list):
            return ""
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return _text_lines(message)
        return ""
    text = document.raw.removesuffix(TRUNCATION_MARKER)
    # The text parts of the last user message that survived the cut, up to the next message's
    # role; none when the cut left no user message at all.
    start = -1
    for match in _ROLE_USER.finditer(text):
        start = match.end()
    if start < 0:
        return ""
    following = _ROLE.search(text, start)
    end = following.start() if following else len(text)
    return "\n".join(_unescape(m) for m in _CONTENT.findall(text, start, end))


def _response_chars(document: Document) -> int:
    if document.decoded:
        messages = document.value
        if not isinstance(messages, list):
            return 0
        return sum(len(_text_lines(m)) for m in messages)
    text = document.raw.removesuffix(TRUNCATION_MARKER)
    return sum(len(_unescape(m)) for m in _CONTENT.findall(text))
