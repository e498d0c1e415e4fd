"""The Anthropic SDK adapter: messages, sync and async, streamed or not.

``messages.create(stream=True)`` and the ``messages.stream()`` helper both end in the
same ``request()`` call, so both are covered by the hook. The ``anthropic`` package emits
its own call span (scope ``com.anthropic.sdk.python``) whenever a tracer provider is set;
with the default ``anthropic_sdk_spans="suppress"`` the adapter switches that span off for
the clients it sees, so every call is counted once (see docs/instrumentation.md).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from llmpulse.contract import attributes as A
from llmpulse.contract.finish_reasons import normalize_finish_reason
from llmpulse.instrumentation.calls import CallRecorder, Runtime
from llmpulse.instrumentation.content import chat_messages, parts
from llmpulse.instrumentation.hook import Adapter
from llmpulse.instrumentation.payload import copy_params, start_attributes
from llmpulse.instrumentation.tool_requests import (
    ToolCallParts,
    tool_call_attributes,
    tool_results_attributes,
)

_log = logging.getLogger(__name__)

_PARAMS: Mapping[str, str] = {
    "max_tokens": A.GEN_AI_REQUEST_MAX_TOKENS,
    "temperature": A.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": A.GEN_AI_REQUEST_TOP_P,
    "stop_sequences": A.GEN_AI_REQUEST_STOP_SEQUENCES,
}

_PATHS = frozenset({"/v1/messages", "/messages"})
_SDK_TRACER = "_lazy_tracer"  # where anthropic>=2.12 caches the tracer of its own call spans


class AnthropicAdapter(Adapter):
    """Adapter for the ``anthropic`` package."""

    def __init__(self, suppress_sdk_spans: bool) -> None:
        from anthropic._response import BaseAPIResponse
        from anthropic._streaming import AsyncStream, Stream

        self.sync_stream_types = (Stream,)
        self.async_stream_types = (AsyncStream,)
        self.raw_types = (BaseAPIResponse,)
        self._suppress = suppress_sdk_spans
        self.prepares_client = suppress_sdk_spans
        self.suppressed: weakref.WeakSet[Any] = weakref.WeakSet()

    def start(self, runtime: Runtime, client: Any, options: Any, stream: bool) -> CallRecorder | None:
        path = options.url
        if options.method != "post" or path not in _PATHS:
            return None
        body = options.json_data
        if type(body) is not dict and not isinstance(body, Mapping):
            return None
        model = body.get("model")
        model = model if isinstance(model, str) else None
        attrs = start_attributes(client, _provider, A.OP_CHAT, model, stream)
        copy_params(body, _PARAMS, attrs)
        in_loop = tool_results_attributes(body.get("messages"), attrs)
        call = CallRecorder(runtime, A.OP_CHAT, model, attrs, stream=stream)
        call.in_tool_loop = in_loop
        if call.capture:
            call.span.set_attributes(_input_content(runtime, body))
        return call

    def before_send(self, client: Any) -> None:
        if not self._suppress:
            return
        state = client.__dict__
        if _SDK_TRACER in state and state[_SDK_TRACER] is not None:
            state[_SDK_TRACER] = None
            self.suppressed.add(client)

    def restore(self) -> None:
        """Give the suppressed clients their own spans back (on ``uninstrument()``)."""
        try:
            from anthropic._types import not_given
        except ImportError:  # pragma: no cover - older SDKs have no own spans
            return
        for client in list(self.suppressed):
            client.__dict__[_SDK_TRACER] = not_given
        self.suppressed.clear()

    def response_attributes(self, call: CallRecorder, result: Any) -> dict[str, AttributeValue]:
        attrs: dict[str, AttributeValue] = {}
        _message_start(attrs, result)
        _usage(attrs, getattr(result, "usage", None))
        _stop(attrs, getattr(result, "stop_reason", None))
        used = [
            block
            for block in getattr(result, "content", None) or ()
            if getattr(block, "type", None) == "tool_use"
        ]
        tool_call_attributes(
            ((getattr(block, "name", ""), getattr(block, "input", None)) for block in used),
            attrs,
            getattr(used[0], "id", None) if used else None,
            call.in_tool_loop,
        )
        if call.capture:
            outputs = [{"role": "assistant", "parts": parts(getattr(result, "content", None))}]
            attrs[A.GEN_AI_OUTPUT_MESSAGES] = call.runtime.content.encode(outputs)
        return attrs

    def accumulator(self, call: CallRecorder) -> MessageStreamAccumulator:
        return MessageStreamAccumulator(call)


def _provider(client: Any, base_url: Any) -> str:
    name = type(client).__name__.lower()
    if "bedrock" in name:
        return "aws.bedrock"
    if "vertex" in name:
        return "gcp.vertex_ai"
    return "anthropic"


def _message_start(attrs: dict[str, AttributeValue], message: Any) -> None:
    message_id = getattr(message, "id", None)
    if isinstance(message_id, str):
        attrs[A.GEN_AI_RESPONSE_ID] = message_id
    model = getattr(message, "model", None)
    if isinstance(model, str):
        attrs[A.GEN_AI_RESPONSE_MODEL] = model


def _usage(attrs: dict[str, AttributeValue], usage: Any) -> None:
    """Anthropic counts cached tokens apart from ``input_tokens``; semconv's input includes them."""
    if usage is None:
        return
    fresh = getattr(usage, "input_tokens", None)
    read = getattr(usage, "cache_read_input_tokens", None) or 0
    write = getattr(usage, "cache_creation_input_tokens", None) or 0
    if isinstance(fresh, int):
        attrs[A.GEN_AI_USAGE_INPUT_TOKENS] = fresh + read + write
    if read:
        attrs[A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = read
    if write:
        attrs[A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = write
        # usage.cache_creation splits the writes by TTL; the 1-hour ones cost more
        long_writes = getattr(getattr(usage, "cache_creation", None), "ephemeral_1h_input_tokens", None)
        if isinstance(long_writes, int) and long_writes > 0:
            attrs[A.CACHE_CREATION_1H_INPUT_TOKENS] = long_writes
    output = getattr(usage, "output_tokens", None)
    if isinstance(output, int):
        attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] = output


def _stop(attrs: dict[str, AttributeValue], stop_reason: Any) -> None:
    if not isinstance(stop_reason, str):
        return
    attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] = [stop_reason]
    normalized = normalize_finish_reason(stop_reason, A.FINISH_STOP)
    attrs[A.FINISH_REASON] = normalized
    if normalized == A.FINISH_REFUSAL:
        attrs[A.REFUSAL] = True


def _input_content(runtime: Runtime, body: Mapping[str, Any]) -> dict[str, AttributeValue]:
    encode = runtime.content.encode
    attrs: dict[str, AttributeValue] = {A.GEN_AI_INPUT_MESSAGES: encode(chat_messages(body.get("messages")))}
    system = body.get("system")
    if system:
        attrs[A.GEN_AI_SYSTEM_INSTRUCTIONS] = encode(parts(system))
    return attrs


class MessageStreamAccumulator:
    """Accumulates the events of a streamed message."""

    __slots__ = ("call", "message", "stop_reason", "texts", "tools", "usage")

    def __init__(self, call: CallRecorder) -> None:
        self.call = call
        self.tools: ToolCallParts | None = None
        self.message: Any = None
        self.stop_reason: str | None = None
        self.usage: dict[str, int] = {}
        self.texts: list[str] | None = [] if call.capture else None

    def on_chunk(self, event: Any) -> bool:
        kind = event.type
        if kind == "content_block_delta":
            delta = event.delta
            if self.texts is not None:
                text = getattr(delta, "text", None)
                if text:
                    self.texts.append(text)
            if self.tools is not None and getattr(delta, "type", None) == "input_json_delta":
                self.tools.add(event.index, None, delta.partial_json)
        elif kind == "content_block_start":
            block = event.content_block
            if getattr(block, "type", None) == "tool_use":
                if self.tools is None:
                    self.tools = ToolCallParts()
                self.tools.add(event.index, block.name, None, getattr(block, "id", None))
        elif kind == "message_start":
            self.message = event.message
            self._take_usage(event.message.usage)
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason
            self._take_usage(event.usage)
        return True

    def _take_usage(self, usage: Any) -> None:
        # message_delta usage is cumulative; a field it leaves None keeps the message_start value.
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ):
            value = getattr(usage, name, None)
            if isinstance(value, int):
                self.usage[name] = value

    def attributes(self) -> dict[str, AttributeValue]:
        attrs: dict[str, AttributeValue] = {}
        if self.message is not None:
            _message_start(attrs, self.message)
        if self.usage:
            _usage(attrs, _Usage(self.usage))
        _stop(attrs, self.stop_reason)
        if self.tools is not None:
            # a tool_use block streamed with no input deltas has the arguments {}
            tool_call_attributes(
                ((n, a or "{}") for n, a in self.tools.calls()),
                attrs,
                self.tools.first_id(),
                self.call.in_tool_loop,
            )
        if self.texts is not None:
            outputs = [{"role": "assistant", "parts": parts("".join(self.texts))}]
            attrs[A.GEN_AI_OUTPUT_MESSAGES] = self.call.runtime.content.encode(outputs)
        return attrs


class _Usage:
    __slots__ = ("cache_creation_input_tokens", "cache_read_input_tokens", "input_tokens", "output_tokens")

    def __init__(self, values: dict[str, int]) -> None:
        self.input_tokens = values.get("input_tokens")
        self.output_tokens = values.get("output_tokens")
        self.cache_read_input_tokens = values.get("cache_read_input_tokens")
        self.cache_creation_input_tokens = values.get("cache_creation_input_tokens")
