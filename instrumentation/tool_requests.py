"""What a call's model asked of tools, and whether its request answered a tool: compact attributes.

A hand-rolled tool-call loop (``while finish_reason == "tool_calls": run the tools; call again``)
makes no agent or tool spans, only LLM calls. These attributes let the processor group such calls
into a run and find repeated identical requests without content capture: the count, the names
and a digest of name and arguments per requested call (``llmpulse.tool_calls.*``), and how many
tool results the request carried (``llmpulse.tool_results.count``). The arguments themselves never
leave the process here (they are ``gen_ai.output.messages`` content, opt-in).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from llmpulse.contract import attributes as A

__all__ = ["ToolCallParts", "tool_call_attributes", "tool_call_digest", "tool_results_attributes"]

# request message / item / block shapes that carry a tool's result back to the model
_RESULT_ROLES = frozenset({"tool", "function"})  # OpenAI chat (function: the legacy role)
_RESULT_TYPES = frozenset({"function_call_output", "custom_tool_call_output", "tool_result"})


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


def tool_call_attributes(calls: Iterable[tuple[str, Any]], attrs: dict[str, AttributeValue]) -> None:
    """Set the ``llmpulse.tool_calls.*`` attributes from ``(name, arguments)`` pairs; nothing when
    there are none (most calls: the processor reads no tool calls from the finish reason)."""
    names: list[str] = []
    digests: list[str] = []
    for name, arguments in calls:
        names.append(name)
        digests.append(tool_call_digest(name, arguments))
    if names:
        attrs[A.TOOL_CALLS_COUNT] = len(names)
        attrs[A.TOOL_CALLS_NAMES] = names
        attrs[A.TOOL_CALLS_HASHES] = digests


def tool_results_attributes(items: Any, attrs: dict[str, AttributeValue]) -> None:
    """Set ``llmpulse.tool_results.count`` when the request ends with tool results: the trailing
    OpenAI ``role: tool`` messages or Responses ``function_call_output`` items, or the
    ``tool_result`` blocks of a last Anthropic user message. Read from the end, so a long
    history costs nothing and the results of earlier loops in it are not counted."""
    if not isinstance(items, list | tuple):
        return
    results = 0
    for item in reversed(items):
        if not isinstance(item, Mapping):
            break
        if item.get("role") in _RESULT_ROLES or item.get("type") in _RESULT_TYPES:
            results += 1
            continue
        content = item.get("content")
        if not results and isinstance(content, list | tuple):
            results = sum(
                1 for block in content if isinstance(block, Mapping) and block.get("type") in _RESULT_TYPES
            )
        break
    if results:
        attrs[A.TOOL_RESULTS_COUNT] = results


class ToolCallParts:
    """A streamed response's tool calls, accumulated from their pieces by index."""

    __slots__ = ("arguments", "names")

    def __init__(self) -> None:
        self.names: dict[int, str] = {}
        self.arguments: dict[int, list[str]] = {}

    def add(self, index: int, name: str | None, arguments: str | None) -> None:
        """One piece: a call's name (its first piece) and/or a fragment of its JSON arguments."""
        if name:
            self.names[index] = name
        if arguments:
            self.arguments.setdefault(index, []).append(arguments)

    def calls(self) -> list[tuple[str, str]]:
        """``(name, arguments JSON)`` per call, in index order."""
        return [(self.names[i], "".join(self.arguments.get(i, ()))) for i in sorted(self.names)]
