"""The fake provider's OpenAI dialect: chat completions, completions, embeddings, responses.

Each function turns a resolved ``FakeReply`` into the body (or the SSE frames) the
official ``openai`` package parses, with usage in the API's real shape.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from typing import Any

from llmpulse.testing.fake_reply import (
    IdFactory,
    JsonResponse,
    Rendered,
    Resolved,
    Stream,
    count_request_tokens,
    sse,
    tool_arguments,
)

_CHAT_FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter"}
_CHAT_FINISH |= {"tool_calls": "tool_calls", "refusal": "stop"}
_COMPLETION_FINISH = {"length": "length", "content_filter": "content_filter"}
_ERROR_KINDS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
_DONE = sse("[DONE]")


def error(status: int, message: str) -> JsonResponse:
    """An OpenAI error body; 429 carries ``retry-after`` (and a short ``retry-after-ms`` for fast retries)."""
    kind, code = _ERROR_KINDS.get(status, ("server_error", None))
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    headers = {"retry-after": "1", "retry-after-ms": "20"} if status == 429 else {}
    return JsonResponse(status, body, headers)


def models(ids: list[str]) -> JsonResponse:
    """``GET /v1/models``."""
    data = [{"id": model, "object": "model", "created": 0, "owned_by": "llmpulse-fake"} for model in ids]
    return JsonResponse(200, {"object": "list", "data": data})


def chat_usage(res: Resolved) -> dict[str, Any]:
    """Chat/completions usage with prompt and completion token details."""
    return {
        "prompt_tokens": res.input_tokens,
        "completion_tokens": res.output_tokens,
        "total_tokens": res.input_tokens + res.output_tokens,
        "prompt_tokens_details": {"cached_tokens": res.reply.cached_input_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": res.reply.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat_tool_calls(res: Resolved, ids: IdFactory) -> list[dict[str, Any]]:
    return [
        {
            "id": call.get("id") or ids.new("call_"),
            "type": "function",
            "function": {"name": call["name"], "arguments": tool_arguments(call)},
        }
        for call in res.reply.tool_calls
    ]


def chat(res: Resolved, body: dict[str, Any], ids: IdFactory, response_id: str) -> Rendered:
    """``POST /v1/chat/completions``, streamed when the request says ``stream: true``."""
    tool_calls = _chat_tool_calls(res, ids)
    finish = _CHAT_FINISH[res.finish]
    head = {
        "id": response_id,
        "created": int(time.time()),
        "model": res.model,
        "system_fingerprint": "fp_fake",
    }
    if not body.get("stream"):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if res.refusal is not None else res.text,
            "refusal": res.refusal,
            "annotations": [],
        }
        if tool_calls:
            message["tool_calls"] = tool_calls
        choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
        return JsonResponse(
            200, {**head, "object": "chat.completion", "choices": [choice], "usage": chat_usage(res)}
        )

    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    head = {**head, "object": "chat.completion.chunk"}

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        extra = {"usage": None} if include_usage else {}
        return sse({**head, "choices": [choice], **extra})

    delays = res.content_delays()
    # The API sends its first chunk (the role) once the model has its first token: a client's
    # time to first chunk is the time to first token.
    frames = [(next(delays), chunk({"role": "assistant", "content": "", "refusal": None}))]
    field = "refusal" if res.refusal is not None else "content"
    for piece in res.content_chunks(res.refusal if res.refusal is not None else res.text):
        frames.append((next(delays), chunk({field: piece})))
    for index, call in enumerate(tool_calls):
        start = {"index": index, "id": call["id"], "type": "function"}
        start["function"] = {"name": call["function"]["name"], "arguments": ""}
        frames.append((next(delays), chunk({"tool_calls": [start]})))
        arguments = {"index": index, "function": {"arguments": call["function"]["arguments"]}}
        frames.append((next(delays), chunk({"tool_calls": [arguments]})))
    frames.append((0.0, chunk({}, finish)))
    if include_usage:
        frames.append((0.0, sse({**head, "choices": [], "usage": chat_usage(res)})))
    frames.append((0.0, _DONE))
    return Stream(frames)


def completion(res: Resolved, body: dict[str, Any], response_id: str) -> Rendered:
    """``POST /v1/completions`` (the legacy text completion API)."""
    finish = _COMPLETION_FINISH.get(res.finish, "stop")
    head = {"id": response_id, "object": "text_completion", "created": int(time.time()), "model": res.model}
    text = res.refusal if res.refusal is not None else res.text
    if not body.get("stream"):
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
        return JsonResponse(200, {**head, "choices": [choice], "usage": chat_usage(res)})

    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    delays = res.content_delays()
    frames = []
    pieces = res.content_chunks(text)
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        choice = {"index": 0, "text": piece, "finish_reason": finish if last else None, "logprobs": None}
        frames.append((next(delays), sse({**head, "choices": [choice]})))
    if include_usage:
        frames.append((0.0, sse({**head, "choices": [], "usage": chat_usage(res)})))
    frames.append((0.0, _DONE))
    return Stream(frames)


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic vector in [-1, 1) derived from a hash of ``text``.

    Components are multiples of 1/128, exact in float32, so base64 and float encodings agree exactly.
    """
    values: list[float] = []
    block = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{block}:{text}".encode()).digest()
        values.extend(b / 128.0 - 1.0 for b in digest)
        block += 1
    return values[:dimensions]


def embeddings(res: Resolved, body: dict[str, Any]) -> Rendered:
    """``POST /v1/embeddings``: one hashed vector per input; ``dimensions`` and base64 honoured."""
    raw = body.get("input", "")
    inputs: list[Any] = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
    dimensions = int(body.get("dimensions") or res.reply.embedding_dimensions)
    data = []
    for index, item in enumerate(inputs):
        vector = embedding_vector(item if isinstance(item, str) else repr(item), dimensions)
        encoded: Any = vector
        if body.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    prompt_tokens = (
        res.reply.input_tokens
        if res.reply.input_tokens is not None
        else count_request_tokens({"input": inputs})
    )
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return JsonResponse(200, {"object": "list", "data": data, "model": res.model, "usage": usage})
