"""The OpenAI SDK adapter: chat completions, responses, completions and embeddings.

Works for any OpenAI-compatible base URL (vLLM, Ollama, LiteLLM, Azure OpenAI). Requests
are told apart by their path, which the SDK hands to ``request()`` before any
deployment rewriting, so Azure-style URLs need nothing special.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from llmpulse.contract import attributes as A
from llmpulse.contract.finish_reasons import normalize_finish_reason
from llmpulse.instrumentation.calls import CallRecorder, Runtime
from llmpulse.instrumentation.content import chat_messages, parts
from llmpulse.instrumentation.hook import Adapter
from llmpulse.instrumentation.payload import copy_params, start_attributes, usage_attributes
from llmpulse.instrumentation.tool_requests import (
    ToolCallParts,
    tool_call_attributes,
    tool_results_attributes,
)

_OPERATIONS: Mapping[str, str] = {
    "/chat/completions": A.OP_CHAT,
    "/responses": A.OP_CHAT,
    "/completions": A.OP_TEXT_COMPLETION,
    "/embeddings": A.OP_EMBEDDINGS,
}
_USAGE_IN_STREAM = frozenset({"/chat/completions", "/completions"})

# Request body field -> span attribute (the SDK sends plain JSON-able values).
_PARAMS: Mapping[str, str] = {
    "max_tokens": A.GEN_AI_REQUEST_MAX_TOKENS,
    "max_completion_tokens": A.GEN_AI_REQUEST_MAX_TOKENS,
    "max_output_tokens": A.GEN_AI_REQUEST_MAX_TOKENS,
    "temperature": A.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": A.GEN_AI_REQUEST_TOP_P,
    "seed": A.GEN_AI_REQUEST_SEED,
    "frequency_penalty": A.GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": A.GEN_AI_REQUEST_PRESENCE_PENALTY,
    "stop": A.GEN_AI_REQUEST_STOP_SEQUENCES,
}

# OpenAI usage field names -> semconv keys.
_CHAT_USAGE = ("prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details")
_RESPONSES_USAGE = ("input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details")


class OpenAIAdapter(Adapter):
    """Adapter for the ``openai`` package."""

    def __init__(self) -> None:
        from openai import AsyncAzureOpenAI, AzureOpenAI
        from openai._legacy_response import LegacyAPIResponse
        from openai._response import BaseAPIResponse
        from openai._streaming import AsyncStream, Stream

        self.sync_stream_types = (Stream,)
        self.async_stream_types = (AsyncStream,)
        self.raw_types = (LegacyAPIResponse, BaseAPIResponse)
        self._azure_types = (AzureOpenAI, AsyncAzureOpenAI)

    def start(self, runtime: Runtime, client: Any, options: Any, stream: bool) -> CallRecorder | None:
        path = options.url
        op = _OPERATIONS.get(path)
        if op is None or options.method != "post":
            return None
        body = options.json_data
        if type(body) is not dict and not isinstance(body, Mapping):
            return None
        model = body.get("model")
        model = model if isinstance(model, str) else None
        attrs = start_attributes(client, self._provider, op, model, stream)
        if len(body) > 2:  # more than model and the input
            copy_params(body, _PARAMS, attrs)
        in_loop = False
        if path == "/chat/completions":
            in_loop = tool_results_attributes(body.get("messages"), attrs)
        elif path == "/responses":
            in_loop = tool_results_attributes(body.get("input"), attrs)
        call = CallRecorder(runtime, op, model, attrs, stream=stream)
        call.in_tool_loop = in_loop
        if stream and path in _USAGE_IN_STREAM and runtime.settings.request_stream_usage:
            stream_options = body.get("stream_options")
            if not (isinstance(stream_options, Mapping) and stream_options.get("include_usage") is True):
                extra = stream_options if isinstance(stream_options, Mapping) else {}
                options.json_data = {**body, "stream_options": {**extra, "include_usage": True}}
                call.hide_usage = True
        if call.capture:
            call.span.set_attributes(_input_content(runtime, path, body))
        call.endpoint = path
        return call

    def _provider(self, client: Any, base_url: Any) -> str:
        if isinstance(client, self._azure_types):
            return "azure.ai.openai"
        host = base_url.host or ""
        if host.endswith(".azure.com") or "/openai/deployments/" in base_url.path:
            return "azure.ai.openai"
        return "openai"

    def response_attributes(self, call: CallRecorder, result: Any) -> dict[str, AttributeValue]:
        path = call.endpoint
        if path == "/responses":
            return _responses_attributes(call, result)
        attrs: dict[str, AttributeValue] = {}
        if path == "/embeddings":
            _model(attrs, result)
            usage_attributes(getattr(result, "usage", None), ("prompt_tokens", None, None, None), attrs)
            return attrs
        _ids(attrs, result)
        usage_attributes(getattr(result, "usage", None), _CHAT_USAGE, attrs)
        reasons: list[str] = []
        refusal = False
        outputs: list[dict[str, Any]] = []
        requested: list[tuple[str, Any]] = []
        first_id = None
        for choice in getattr(result, "choices", None) or ():
            reasons.append(choice.finish_reason or "")
            message = getattr(choice, "message", None)
            if message is not None and getattr(message, "refusal", None):
                refusal = True
            for tool_call in getattr(message, "tool_calls", None) or ():
                first_id = first_id or getattr(tool_call, "id", None)
                # a function tool's call, or a custom tool's
                requested.append(
                    _named_call(getattr(tool_call, "function", None) or getattr(tool_call, "custom", None))
                )
            if call.capture:
                content = message.content if message is not None else getattr(choice, "text", None)
                outputs.append(
                    {"role": "assistant", "parts": parts(content), "finish_reason": choice.finish_reason}
                )
        _finish_reasons(attrs, reasons, refusal)
        tool_call_attributes(requested, attrs, first_id, call.in_tool_loop)
        if call.capture and outputs:
            attrs[A.GEN_AI_OUTPUT_MESSAGES] = call.runtime.content.encode(outputs)
        return attrs

    def accumulator(self, call: CallRecorder) -> Any:
        if call.endpoint == "/responses":
            return ResponsesStream(call)
        return ChatStream(call)


def _ids(attrs: dict[str, AttributeValue], result: Any) -> None:
    response_id = getattr(result, "id", None)
    if isinstance(response_id, str):
        attrs[A.GEN_AI_RESPONSE_ID] = response_id
    _model(attrs, result)


def _model(attrs: dict[str, AttributeValue], result: Any) -> None:
    model = getattr(result, "model", None)
    if isinstance(model, str):
        attrs[A.GEN_AI_RESPONSE_MODEL] = model


def _named_call(call: Any) -> tuple[str, Any]:
    """(name, arguments) of a requested tool call: a function's (``arguments``) or a custom
    tool's (``input``), in a chat completion or a Responses output item."""
    name = getattr(call, "name", None)
    arguments = getattr(call, "arguments", None)
    if arguments is None:
        arguments = getattr(call, "input", "")
    return (name if isinstance(name, str) else "", arguments)


def _finish_reasons(attrs: dict[str, AttributeValue], reasons: list[str], refusal: bool) -> None:
    if reasons:
        attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
    if refusal:
        attrs[A.REFUSAL] = True
        attrs[A.FINISH_REASON] = A.FINISH_REFUSAL
    elif reasons:
        attrs[A.FINISH_REASON] = normalize_finish_reason(reasons[0], A.FINISH_STOP)


def _responses_attributes(call: CallRecorder, result: Any) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {}
    _ids(attrs, result)
    usage_attributes(getattr(result, "usage", None), _RESPONSES_USAGE, attrs)
    status = getattr(result, "status", None) or "completed"
    refusal = False
    tool_call = False
    outputs: list[dict[str, Any]] = []
    requested: list[tuple[str, Any]] = []
    first_id = None
    for item in getattr(result, "output", None) or ():
        kind = getattr(item, "type", None)
        if kind == "function_call" or (isinstance(kind, str) and kind.endswith("_call")):
            tool_call = True
            if kind in ("function_call", "custom_tool_call"):
                first_id = first_id or getattr(item, "call_id", None)
                requested.append(_named_call(item))
        elif kind == "message":
            content = getattr(item, "content", None) or ()
            if any(getattr(block, "type", None) == "refusal" for block in content):
                refusal = True
            if call.capture:
                outputs.append({"role": "assistant", "parts": parts(content)})
    if status == "incomplete":
        details = getattr(result, "incomplete_details", None)
        raw = getattr(details, "reason", None) or "incomplete"
    elif status == "failed":
        raw = "failed"
    else:
        raw = "tool_calls" if tool_call else "stop"
    attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] = [raw]
    if refusal:
        attrs[A.REFUSAL] = True
        attrs[A.FINISH_REASON] = A.FINISH_REFUSAL
    elif status == "failed":
        attrs[A.FINISH_REASON] = A.FINISH_ERROR
    else:
        attrs[A.FINISH_REASON] = normalize_finish_reason(raw, A.FINISH_STOP)
    tool_call_attributes(requested, attrs, first_id, call.in_tool_loop)
    if call.capture and outputs:
        attrs[A.GEN_AI_OUTPUT_MESSAGES] = call.runtime.content.encode(outputs)
    return attrs


def _input_content(runtime: Runtime, path: str, body: Mapping[str, Any]) -> dict[str, AttributeValue]:
    encode = runtime.content.encode
    attrs: dict[str, AttributeValue] = {}
    if path == "/chat/completions":
        messages = chat_messages(body.get("messages"))
        system = [m for m in messages if m["role"] in ("system", "developer")]
        others = [m for m in messages if m["role"] not in ("system", "developer")]
        if system:
            attrs[A.GEN_AI_SYSTEM_INSTRUCTIONS] = encode([p for m in system for p in m["parts"]])
        attrs[A.GEN_AI_INPUT_MESSAGES] = encode(others)
    elif path == "/responses":
        if isinstance(body.get("instructions"), str):
            attrs[A.GEN_AI_SYSTEM_INSTRUCTIONS] = encode(parts(body["instructions"]))
        attrs[A.GEN_AI_INPUT_MESSAGES] = encode(chat_messages(body.get("input")))
    elif path == "/completions":
        attrs[A.GEN_AI_INPUT_MESSAGES] = encode(chat_messages(body.get("prompt")))
    return attrs


class ChatStream:
    """Accumulates a chat or text completion stream."""

    __slots__ = ("call", "chunk", "finish", "refusal", "texts", "tools", "usage")

    def __init__(self, call: CallRecorder) -> None:
        self.call = call
        self.tools: ToolCallParts | None = None
        self.chunk: Any = None
        self.usage: Any = None
        self.finish: list[str] = []
        self.refusal = False
        self.texts: list[str] | None = [] if call.capture else None

    def on_chunk(self, chunk: Any) -> bool:
        self.chunk = chunk
        choices = chunk.choices
        if choices:
            for choice in choices:
                if choice.finish_reason is not None:
                    self.finish.append(choice.finish_reason)
                delta = getattr(choice, "delta", None)
                if delta is not None:
                    if delta.refusal:
                        self.refusal = True
                    if delta.tool_calls:
                        self._tool_pieces(delta.tool_calls)
                    if self.texts is not None and delta.content:
                        self.texts.append(delta.content)
                elif self.texts is not None and getattr(choice, "text", None):
                    self.texts.append(choice.text)
            return True
        usage = chunk.usage
        if usage is not None:
            self.usage = usage
            return not self.call.hide_usage
        return True

    def _tool_pieces(self, pieces: Any) -> None:
        tools = self.tools
        if tools is None:
            tools = self.tools = ToolCallParts()
        for piece in pieces:
            function = getattr(piece, "function", None)
            tools.add(
                piece.index,
                getattr(function, "name", None),
                getattr(function, "arguments", None),
                getattr(piece, "id", None),
            )

    def attributes(self) -> dict[str, AttributeValue]:
        attrs: dict[str, AttributeValue] = {}
        if self.chunk is not None:
            _ids(attrs, self.chunk)
        usage_attributes(self.usage, _CHAT_USAGE, attrs)
        _finish_reasons(attrs, self.finish, self.refusal)
        if self.tools is not None:
            tool_call_attributes(self.tools.calls(), attrs, self.tools.first_id(), self.call.in_tool_loop)
        if self.texts is not None:
            outputs = [{"role": "assistant", "parts": parts("".join(self.texts))}]
            attrs[A.GEN_AI_OUTPUT_MESSAGES] = self.call.runtime.content.encode(outputs)
        return attrs


_RESPONSE_DONE = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesStream:
    """Accumulates a Responses API event stream."""

    __slots__ = ("call", "final", "first", "refusal")

    def __init__(self, call: CallRecorder) -> None:
        self.call = call
        self.first: Any = None
        self.final: Any = None
        self.refusal = False

    def on_chunk(self, event: Any) -> bool:
        kind = event.type
        if kind in _RESPONSE_DONE:
            self.final = event.response
        elif kind == "response.created":
            self.first = event.response
        elif kind == "response.refusal.delta":
            self.refusal = True
        return True

    def attributes(self) -> dict[str, AttributeValue]:
        if self.final is not None:
            return _responses_attributes(self.call, self.final)
        attrs: dict[str, AttributeValue] = {}
        if self.first is not None:
            _ids(attrs, self.first)
        if self.refusal:
            attrs[A.REFUSAL] = True
            attrs[A.FINISH_REASON] = A.FINISH_REFUSAL
        return attrs
