"""What a call's model asked of tools, and whether its request answered a tool: compact attributes.

A hand-rolled tool-call loop (``while finish_reason == "tool_calls": run the tools; call again``)
makes no agent or tool spans, only LLM calls. These attributes let the processor group such calls
into a run and find repeated identical requests without content capture: the count, the names
and a digest of name and arguments per requested call (``llmpulse.tool_calls.*``), and how many
tool results the request carried (``llmpulse.tool_results.count``). The arguments themselves never
leave the process here (they are ``gen_ai.output.messages`` content, opt-in).

``llmpulse.tool_loop.id`` names the loop: a digest of the provider's id of the loop's first
requested tool call. The call that opens the loop reads it from its response; every call that
continues it finds the same id in its request, as the earliest tool call or result after the
last user message (the history only grows during a loop). So the calls of one loop carry one id
even when each is the root of a trace of its own (a script with no span around its loop),
with no state kept in the app.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from llmpulse.contract import attributes as A

__all__ = [
    "ToolCallParts",
    "loop_id",
    "tool_call_attributes",
    "tool_call_digest",
    "tool_results_attributes",
]

# request message / item / block shapes that carry a tool's result back to the model
_RESULT_ROLES = frozenset({"tool", "function"})  # OpenAI chat (function: the legacy role)
_RESULT_TYPES = frozenset({"function_call_output", "custom_tool_call_output", "tool_result"})
# Responses input items of a loop's tool calls and results (their ids in ``call_id``)
_CALL_ITEM_TYPES = frozenset(
    {"function_call", "custom_tool_call", "function_call_output", "custom_tool_call_output"}
)


def _field(item: Any, key: str) -> Any:
    """``item[key]`` of a dict, ``item.key`` of an SDK object (a message appended as returned)."""
    if isinstance(item, Mapping):
        return item.get(key)
    return getattr(item, key, None)


def loop_id(raw: Any) -> str | None:
    """The ``llmpulse.tool_loop.id`` of a loop whose first tool call has the provider id ``raw``."""
    if not isinstance(raw, str) or not raw:
        return None
    return hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()[:16]


def _earliest_call_id(items: list[Any] | tuple[Any, ...]) -> str | None:
    """The provider id of the earliest tool call (or result) after the last user message."""
    earliest = None
    for item in reversed(items):
        role = _field(item, "role")
        if role in _RESULT_ROLES:  # OpenAI chat: a tool's result
            earliest = _field(item, "tool_call_id") or earliest
            continue
        if _field(item, "type") in _CALL_ITEM_TYPES:  # Responses
            earliest = _field(item, "call_id") or earliest
            continue
        content = _field(item, "content")
        blocks = content if isinstance(content, list | tuple) else ()
        if role == "assistant":
            calls = _field(item, "tool_calls")  # OpenAI chat
            if calls:
                earliest = _field(calls[0], "id") or earliest
            else:  # Anthropic: tool_use blocks
                used = [_field(b, "id") for b in blocks if _field(b, "type") == "tool_use"]
                earliest = (used[0] if used else None) or earliest
            continue
        if role == "user" and blocks and all(_field(b, "type") == "tool_result" for b in blocks):
            earliest = _field(blocks[0], "tool_use_id") or earliest  # Anthropic: results
            continue
        if _field(item, "type") == "reasoning":
            continue
        break  # the user's message (or the system prompt): the loop starts after it
    return earliest if isinstance(earliest, str) else None


def tool_call_digest(name: str, arguments: Any) -> str:
    """16 hex digits of the SHA-256 of a requested call's name and arguments, keys sorted, so
    the same request hashes alike whether the SDK gives its arguments as JSON text (OpenAI) or
    as an object (Anthropic)."""
    value = arguments
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments)
        except ValueError:
            value = arguments
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(f"{name}\0{text}".encode("utf-8", "replace")).hexdigest()[:16]


def tool_call_attributes(
    calls: Iterable[tuple[str, Any]],
    attrs: dict[str, AttributeValue],
    first_id: Any = None,
    in_loop: bool = False,
) -> None:
    """Set the ``llmpulse.tool_calls.*`` attributes from ``(name, arguments)`` pairs; nothing when
    there are none (most calls: the processor reads no tool calls from the finish reason). A
    call not yet in a loop (``in_loop``: its request continued none) opens one: the provider id
    of its first requested call (``first_id``) names it."""
    names: list[str] = []
    digests: list[str] = []
    for name, arguments in calls:
        names.append(name)
        digests.append(tool_call_digest(name, arguments))
    if names:
        attrs[A.TOOL_CALLS_COUNT] = len(names)
        attrs[A.TOOL_CALLS_NAMES] = names
        attrs[A.TOOL_CALLS_HASHES] = digests
        if not in_loop:
            opened = loop_id(first_id)
            if opened is not None:
                attrs[A.TOOL_LOOP_ID] = opened


def tool_results_attributes(items: Any, attrs: dict[str, AttributeValue]) -> bool:
    """Set ``llmpulse.tool_results.count`` when the request ends with tool results: the trailing
    OpenAI ``role: tool`` messages or Responses ``function_call_output`` items, or the
    ``tool_result`` blocks of a last Anthropic user message. Read from the end, so a long
    history costs nothing and the results of earlier loops in it are not counted. Such a
    request continues a loop: ``llmpulse.tool_loop.id`` too (read back to the last user
    message), and True."""
    if not isinstance(items, list | tuple):
        return False
    results = 0
    for item in reversed(items):
        if type(item) is dict:  # the usual request: plain dicts, read without the ABC checks
            role, kind, content = item.get("role"), item.get("type"), item.get("content")
        else:
            role, kind, content = _field(item, "role"), _field(item, "type"), _field(item, "content")
        if role in _RESULT_ROLES or kind in _RESULT_TYPES:
            results += 1
            continue
        if not results and isinstance(content, list | tuple):
            results = sum(1 for block in content if _field(block, "type") in _RESULT_TYPES)
        break
    if not results:
        return False
    attrs[A.TOOL_RESULTS_COUNT] = results
    continued = loop_id(_earliest_call_id(items))
    if continued is not None:
        attrs[A.TOOL_LOOP_ID] = continued
    return True


class ToolCallParts:
    """A streamed response's tool calls, accumulated from their pieces by index."""

    __slots__ = ("arguments", "ids", "names")

    def __init__(self) -> None:
        self.names: dict[int, str] = {}
        self.arguments: dict[int, list[str]] = {}
        self.ids: dict[int, str] = {}

    def add(self, index: int, name: str | None, arguments: str | None, call_id: Any = None) -> None:
        """One piece: a call's name and provider id (its first piece) and/or a fragment of its
        JSON arguments."""
        if isinstance(call_id, str) and call_id:
            self.ids[index] = call_id
        if name:
            self.names[index] = name
        if arguments:
            self.arguments.setdefault(index, []).append(arguments)

    def calls(self) -> list[tuple[str, str]]:
        """``(name, arguments JSON)`` per call, in index order."""
        return [(self.names[i], "".join(self.arguments.get(i, ()))) for i in sorted(self.names)]

    def first_id(self) -> str | None:
        """The provider id of the first call (lowest index)."""
        return self.ids[min(self.ids)] if self.ids else None
