"""The fake provider's Anthropic dialect: the Messages API (``POST /v1/messages``), plain and streamed.

The stream is the real event sequence: ``message_start`` (with input and cache usage),
``content_block_start``/``_delta``/``_stop`` per block, ``message_delta`` (stop reason and
the final ``output_tokens``) and ``message_stop``, so both ``messages.create(stream=True)``
and the ``messages.stream()`` helper accumulate it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from llmpulse.testing.fake_reply import IdFactory, JsonResponse, Rendered, Resolved, Stream, sse, tool_input

_STOP_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "refusal": "refusal",
    "content_filter": "refusal",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def error(status: int, message: str, request_id: str) -> JsonResponse:
    """An Anthropic error body; 429 and 529 carry ``retry-after``."""
    body = {
        "type": "error",
        "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
        "request_id": request_id,
    }
    headers = {"request-id": request_id}
    if status in (429, 529):
        headers |= {"retry-after": "1", "retry-after-ms": "20"}
    return JsonResponse(status, body, headers)


def models(ids: list[str]) -> JsonResponse:
    """``GET /v1/models`` in Anthropic's list shape."""
    data = [
        {"id": model, "type": "model", "display_name": model, "created_at": "2025-01-01T00:00:00Z"}
        for model in ids
    ]
    first, last = (ids[0], ids[-1]) if ids else (None, None)
    return JsonResponse(200, {"data": data, "has_more": False, "first_id": first, "last_id": last})


def usage(res: Resolved, output_tokens: int) -> dict[str, Any]:
    """Anthropic usage; ``input_tokens`` excludes the cache reads and writes, as the real API reports it."""
    return {
        "input_tokens": res.input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": res.reply.cached_input_tokens,
        "cache_creation_input_tokens": res.reply.cache_creation_input_tokens,
        "service_tier": "standard",
    }


def _blocks(res: Resolved, ids: IdFactory) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = res.refusal if res.refusal is not None else res.text
    if text or not res.reply.tool_calls:
        blocks.append({"type": "text", "text": text})
    for call in res.reply.tool_calls:
        blocks.append(
            {"type": "tool_use", "id": call.get("id") or ids.new("toolu_"), "name": call["name"]}
            | {"input": tool_input(call)}
        )
    return blocks


def messages(res: Resolved, body: dict[str, Any], ids: IdFactory, response_id: str) -> Rendered:
    """``POST /v1/messages``."""
    blocks = _blocks(res, ids)
    stop_reason = _STOP_REASON[res.finish]
    message: dict[str, Any] = {
        "id": response_id,
        "type": "message",
        "role": "assistant",
        "model": res.model,
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage(res, res.output_tokens),
    }
    headers = {"request-id": ids.new("req_")}
    if not body.get("stream"):
        return JsonResponse(200, message, headers)
    return Stream(list(_stream_frames(res, message, blocks)), headers)


def _stream_frames(
    res: Resolved, message: dict[str, Any], blocks: list[dict[str, Any]]
) -> Iterator[tuple[float, bytes]]:
    delays = res.content_delays()

    def event(kind: str, **fields: Any) -> bytes:
        return sse({"type": kind, **fields}, event=kind)

    start = {**message, "content": [], "stop_reason": None, "usage": usage(res, 1)}
    yield 0.0, event("message_start", message=start)
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            yield 0.0, event("content_block_start", index=index, content_block={"type": "text", "text": ""})
            for piece in res.content_chunks(block["text"]):
                delta = {"type": "text_delta", "text": piece}
                yield next(delays), event("content_block_delta", index=index, delta=delta)
        else:
            yield 0.0, event("content_block_start", index=index, content_block={**block, "input": {}})
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            yield next(delays), event("content_block_delta", index=index, delta=delta)
        yield 0.0, event("content_block_stop", index=index)
    final_delta: dict[str, Any] = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    final_usage = {
        key: value for key, value in usage(res, res.output_tokens).items() if key != "service_tier"
    }
    yield 0.0, event("message_delta", delta=final_delta, usage=final_usage)
    yield 0.0, event("message_stop")
