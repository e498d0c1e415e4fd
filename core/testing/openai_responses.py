"""The fake provider's OpenAI Responses API (``POST /v1/responses``), plain and streamed.

The stream follows the real event order (created, in_progress, output_item.added,
content_part.added, output_text.delta..., done events, completed/incomplete) because
the ``openai`` stream helper checks item identities as it accumulates them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from llmpulse.testing.fake_reply import (
    IdFactory,
    JsonResponse,
    Rendered,
    Resolved,
    Stream,
    sse,
    tool_arguments,
)

_INCOMPLETE_REASON = {"length": "max_output_tokens", "content_filter": "content_filter"}


def usage(res: Resolved) -> dict[str, Any]:
    """Responses usage with input and output token details."""
    return {
        "input_tokens": res.input_tokens,
        "input_tokens_details": {
            "cached_tokens": res.reply.cached_input_tokens,
            "cache_write_tokens": res.reply.cache_creation_input_tokens,
        },
        "output_tokens": res.output_tokens,
        "output_tokens_details": {"reasoning_tokens": res.reply.reasoning_tokens},
        "total_tokens": res.input_tokens + res.output_tokens,
    }


def _message_item(res: Resolved, item_id: str, status: str) -> dict[str, Any]:
    if res.refusal is not None:
        part: dict[str, Any] = {"type": "refusal", "refusal": res.refusal}
    else:
        part = {"type": "output_text", "text": res.text, "annotations": [], "logprobs": []}
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": [part]}


def _function_items(res: Resolved, ids: IdFactory) -> list[dict[str, Any]]:
    return [
        {
            "id": ids.new("fc_"),
            "type": "function_call",
            "call_id": call.get("id") or ids.new("call_"),
            "name": call["name"],
            "arguments": tool_arguments(call),
            "status": "completed",
        }
        for call in res.reply.tool_calls
    ]


def _response(res: Resolved, body: dict[str, Any], response_id: str, created: int) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "model": res.model,
        "status": "in_progress",
        "output": [],
        "parallel_tool_calls": True,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "incomplete_details": None,
        "error": None,
        "usage": None,
    }


def _finish(res: Resolved, response: dict[str, Any], output: list[dict[str, Any]]) -> dict[str, Any]:
    reason = _INCOMPLETE_REASON.get(res.finish)
    return {
        **response,
        "status": "incomplete" if reason else "completed",
        "incomplete_details": {"reason": reason} if reason else None,
        "output": output,
        "usage": usage(res),
    }


def responses(res: Resolved, body: dict[str, Any], ids: IdFactory, response_id: str) -> Rendered:
    """``POST /v1/responses``: a message item (text or refusal) followed by any function calls."""
    response = _response(res, body, response_id, int(time.time()))
    message_id = ids.new("msg_")
    functions = _function_items(res, ids)
    show_message = bool(res.text) or res.refusal is not None or not functions
    item_status = "incomplete" if res.finish in _INCOMPLETE_REASON else "completed"
    message = [_message_item(res, message_id, item_status)] if show_message else []
    final = _finish(res, response, message + functions)
    if not body.get("stream"):
        return JsonResponse(200, final)
    return Stream(list(_stream_frames(res, response, final, message_id if show_message else None, functions)))


def _stream_frames(
    res: Resolved,
    response: dict[str, Any],
    final: dict[str, Any],
    message_id: str | None,
    functions: list[dict[str, Any]],
) -> Iterator[tuple[float, bytes]]:
    sequence = iter(range(1_000_000))
    delays = res.content_delays()

    def event(kind: str, **fields: Any) -> bytes:
        return sse({"type": kind, "sequence_number": next(sequence), **fields}, event=kind)

    yield 0.0, event("response.created", response=response)
    yield 0.0, event("response.in_progress", response=response)
    output_index = 0
    if message_id is not None:
        done_item = final["output"][0]
        part = done_item["content"][0]
        empty_part = {**part, "refusal": ""} if res.refusal is not None else {**part, "text": ""}
        where = {"item_id": message_id, "output_index": 0, "content_index": 0}
        added = {**done_item, "status": "in_progress", "content": []}
        yield 0.0, event("response.output_item.added", output_index=0, item=added)
        yield 0.0, event("response.content_part.added", part=empty_part, **where)
        if res.refusal is not None:
            for piece in res.content_chunks(res.refusal):
                yield next(delays), event("response.refusal.delta", delta=piece, **where)
            yield 0.0, event("response.refusal.done", refusal=res.refusal, **where)
        else:
            for piece in res.content_chunks(res.text):
                yield next(delays), event("response.output_text.delta", delta=piece, logprobs=[], **where)
            yield 0.0, event("response.output_text.done", text=res.text, logprobs=[], **where)
        yield 0.0, event("response.content_part.done", part=part, **where)
        yield 0.0, event("response.output_item.done", output_index=0, item=done_item)
        output_index = 1
    for offset, item in enumerate(functions):
        index = output_index + offset
        yield 0.0, event("response.output_item.added", output_index=index, item={**item, "arguments": ""})
        where = {"item_id": item["id"], "output_index": index}
        yield next(delays), event("response.function_call_arguments.delta", delta=item["arguments"], **where)
        yield 0.0, event("response.function_call_arguments.done", arguments=item["arguments"], **where)
        yield 0.0, event("response.output_item.done", output_index=index, item=item)
    kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
    yield 0.0, event(kind, response=final)
