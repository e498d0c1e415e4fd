"""What the fake provider answers: the scripted reply and the recorded request.

``FakeReply`` is provider-neutral; the OpenAI and Anthropic renderers map its
fields onto each API's own vocabulary. The helpers here derive the numbers a
reply leaves unset (token counts, chunk boundaries) deterministically, so a
test can predict them.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FakeReply", "JsonResponse", "RecordedRequest", "Rendered", "Stream"]

# Provider-neutral finish reasons, and the API-specific spellings we also accept.
FINISH_REASONS = ("stop", "length", "content_filter", "tool_calls", "refusal")
_FINISH_ALIASES = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls"}

# Added to the word count of the request text: real prompts carry role and framing tokens.
PROMPT_OVERHEAD_TOKENS = 3

_TEXT_KEYS = frozenset({"content", "text", "input", "prompt", "system", "instructions"})


@dataclass(frozen=True)
class FakeReply:
    """One scripted answer. Unset numbers are derived deterministically from the request and reply.

    ``finish_reason`` is provider-neutral (stop | length | content_filter | tool_calls | refusal;
    the Anthropic spellings end_turn, max_tokens and tool_use are accepted too). A non-200
    ``status`` makes the provider answer with that API's JSON error body instead, carrying
    ``error_message``; ``error_body`` replaces that body verbatim.
    """

    text: str = "Hello from the fake provider."
    finish_reason: str = "stop"
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_tokens: int = 0
    model: str | None = None
    response_id: str | None = None
    status: int = 200
    latency: float = 0.0
    time_to_first_token: float = 0.0
    chunk_delay: float = 0.0
    chunks: int | None = None
    refusal: str | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()
    malformed_json: bool = False
    embedding_dimensions: int = 8
    error_message: str | None = None
    error_body: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        reason = _FINISH_ALIASES.get(self.finish_reason, self.finish_reason)
        if reason not in FINISH_REASONS:
            raise ValueError(
                f"FakeReply.finish_reason {self.finish_reason!r} is not one of {', '.join(FINISH_REASONS)}"
            )
        if self.status != 200 and not 100 <= self.status <= 599:
            raise ValueError(f"FakeReply.status must be an HTTP status (100-599), got {self.status}")
        if self.chunks is not None and self.chunks < 1:
            raise ValueError("FakeReply.chunks must be at least 1 (or None for one chunk per word)")


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the fake provider received it.

    ``path`` is as sent, query string included; header names are lower-case; ``body`` is the parsed
    JSON, or None when the body is empty or not JSON.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class JsonResponse:
    """A complete (non-streaming) HTTP answer."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stream:
    """A server-sent-events answer: ``(delay_before, payload)`` frames, written and flushed one by one."""

    frames: list[tuple[float, bytes]]
    headers: dict[str, str] = field(default_factory=dict)


Rendered = JsonResponse | Stream


class Resolved:
    """A reply with its derived values filled in, for one request."""

    def __init__(self, reply: FakeReply, request_body: Any, request_model: str) -> None:
        self.reply = reply
        self.finish = _FINISH_ALIASES.get(reply.finish_reason, reply.finish_reason)
        if reply.tool_calls and self.finish == "stop":
            self.finish = "tool_calls"
        self.refusal = reply.refusal
        if self.refusal is None and self.finish == "refusal":
            self.refusal = reply.text
        if self.refusal is not None:
            self.finish = "refusal"
        self.text = _broken_json(reply.text) if reply.malformed_json else reply.text
        self.model = reply.model or request_model
        self.input_tokens = (
            reply.input_tokens if reply.input_tokens is not None else count_request_tokens(request_body)
        )
        generated = self.refusal if self.refusal is not None else self.text
        tool_words = sum(len(tool_arguments(call).split()) + 1 for call in reply.tool_calls)
        self.output_tokens = (
            reply.output_tokens
            if reply.output_tokens is not None
            else len(generated.split()) + tool_words + reply.reasoning_tokens
        )

    def content_chunks(self, text: str) -> list[str]:
        """Split ``text`` into the streamed pieces: one per word, or ``reply.chunks`` near-equal parts."""
        return split_chunks(text, self.reply.chunks)

    def content_delays(self) -> Iterator[float]:
        """Delays before each content frame: time to first token, then the chunk delay."""
        yield self.reply.time_to_first_token
        yield from itertools.repeat(self.reply.chunk_delay)


def tool_arguments(call: dict[str, Any]) -> str:
    """The JSON string of a tool call's arguments (a dict is serialised, a string kept)."""
    arguments = call.get("arguments", {})
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def tool_input(call: dict[str, Any]) -> dict[str, Any]:
    """A tool call's arguments as an object (Anthropic ``tool_use.input``)."""
    arguments = call.get("arguments", {})
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return dict(arguments)


def split_chunks(text: str, chunks: int | None) -> list[str]:
    """Split text for streaming; the pieces always join back to ``text``."""
    if not text:
        return [""]
    if chunks is None:
        words = re.findall(r"\s*\S+", text)
        if not words:
            return [text]
        words[-1] += text[len("".join(words)) :]
        return words
    size, extra = divmod(len(text), chunks)
    pieces, start = [], 0
    for index in range(chunks):
        end = start + size + (1 if index < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def count_request_tokens(body: Any) -> int:
    """Whitespace words in the request's text fields, plus a small constant overhead."""
    return sum(len(text.split()) for text in _request_texts(body)) + PROMPT_OVERHEAD_TOKENS


def _request_texts(value: Any, key: str | None = None) -> Iterator[str]:
    if isinstance(value, str):
        if key in _TEXT_KEYS:
            yield value
    elif isinstance(value, dict):
        for child_key, child in value.items():
            yield from _request_texts(child, child_key)
    elif isinstance(value, list):
        for child in value:
            yield from _request_texts(child, key)


def _broken_json(text: str) -> str:
    # An object that is cut off before its closing quote and brace, as a truncated model output is.
    return '{"answer": ' + json.dumps(text)[:-1]


class IdFactory:
    """Unique, prefixed ids (``chatcmpl-fake-000001``), safe to use from many threads."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def new(self, prefix: str) -> str:
        with self._lock:
            number = next(self._counter)
        return f"{prefix}fake{number:06d}"


def sse(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    """One server-sent event."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()
