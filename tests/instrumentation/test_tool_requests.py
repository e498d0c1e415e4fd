"""What the model asked of tools and whether the request answered one, on the LLM span: the real
openai and anthropic clients against the fake provider, plain and streamed, without content."""

from __future__ import annotations

from typing import Any

import pytest

from llmpulse.contract import attributes as A
from llmpulse.instrumentation.tool_requests import tool_call_digest
from llmpulse.testing.fake_provider import FakeProvider, FakeReply

CALLS = (
    {"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}},
    {"name": "get_time", "arguments": {"city": "Rome"}},
)
# the same request, whichever SDK's shape its arguments come in (keys sorted)
DIGESTS = (
    tool_call_digest("get_weather", '{"unit": "C", "city": "Paris"}'),
    tool_call_digest("get_time", {"city": "Rome"}),
)


def _tool_attributes(span: Any) -> dict[str, Any]:
    attrs = span.attributes or {}
    keys = (A.TOOL_CALLS_COUNT, A.TOOL_CALLS_NAMES, A.TOOL_CALLS_HASHES, A.TOOL_RESULTS_COUNT)
    return {k: (tuple(v) if isinstance(v, tuple | list) else v) for k, v in attrs.items() if k in keys}


ASKED = {
    A.TOOL_CALLS_COUNT: 2,
    A.TOOL_CALLS_NAMES: ("get_weather", "get_time"),
    A.TOOL_CALLS_HASHES: DIGESTS,
}


def test_digests_do_not_depend_on_key_order_or_shape_and_differ_by_name() -> None:
    assert tool_call_digest("a", '{"x": 1, "y": 2}') == tool_call_digest("a", {"y": 2, "x": 1})
    assert tool_call_digest("a", {"x": 1}) != tool_call_digest("b", {"x": 1})
    assert tool_call_digest("a", "not json") == tool_call_digest("a", "not json")
    assert len(DIGESTS[0]) == 16


@pytest.mark.parametrize("stream", [False, True])
def test_openai_chat_records_the_requested_calls_and_the_results_sent(
    spans, oai, provider: FakeProvider, stream: bool
) -> None:
    provider.enqueue(FakeReply(text="", tool_calls=CALLS), FakeReply(text="done"))
    messages: list[Any] = [{"role": "user", "content": "weather?"}]
    if stream:
        for _chunk in oai.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True):
            pass
    else:
        oai.chat.completions.create(model="gpt-4o-mini", messages=messages)
    results = [{"role": "tool", "tool_call_id": f"c{i}", "content": "ok"} for i in range(2)]
    messages += [{"role": "assistant", "tool_calls": [], "content": ""}, *results]
    oai.chat.completions.create(model="gpt-4o-mini", messages=messages)
    first, second = spans.llm()
    assert _tool_attributes(first) == ASKED
    assert _tool_attributes(second) == {A.TOOL_RESULTS_COUNT: 2}  # answered: asked for nothing
    assert A.GEN_AI_OUTPUT_MESSAGES not in (first.attributes or {})  # no content needed


def test_openai_responses_records_function_calls_and_their_outputs(
    spans, oai, provider: FakeProvider
) -> None:
    provider.enqueue(FakeReply(text="", tool_calls=CALLS), FakeReply(text="done"))
    oai.responses.create(model="gpt-4o-mini", input="weather?")
    oai.responses.create(
        model="gpt-4o-mini",
        input=[{"type": "function_call_output", "call_id": "c1", "output": "ok"}],  # type: ignore[list-item]
    )
    first, second = spans.llm()
    assert _tool_attributes(first) == ASKED
    assert _tool_attributes(second) == {A.TOOL_RESULTS_COUNT: 1}


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_records_tool_use_blocks_and_tool_results(
    spans, claude, provider: FakeProvider, stream: bool
) -> None:
    provider.enqueue(FakeReply(text="", tool_calls=CALLS), FakeReply(text="done"))
    ask: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 50}
    if stream:
        with claude.messages.stream(messages=[{"role": "user", "content": "weather?"}], **ask) as events:
            events.get_final_message()
    else:
        claude.messages.create(messages=[{"role": "user", "content": "weather?"}], **ask)
    results = [{"type": "tool_result", "tool_use_id": f"t{i}", "content": "ok"} for i in range(2)]
    claude.messages.create(messages=[{"role": "user", "content": results}], **ask)  # type: ignore[list-item]
    first, second = spans.llm()
    assert _tool_attributes(first) == ASKED
    assert _tool_attributes(second) == {A.TOOL_RESULTS_COUNT: 2}


def test_a_call_without_tools_carries_none_of_the_keys(spans, oai, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(text="hi"))
    oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert _tool_attributes(spans.one_llm()) == {}


def test_only_the_results_the_request_ends_with_count() -> None:
    from llmpulse.instrumentation.tool_requests import loop_id, tool_results_attributes

    old_loop = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "tool_calls": []},
        {"role": "tool", "tool_call_id": "c1", "content": "18 C"},
        {"role": "assistant", "content": "18 C."},
    ]
    attrs: dict[str, Any] = {}
    tool_results_attributes([*old_loop, {"role": "user", "content": "and tomorrow?"}], attrs)
    assert attrs == {}  # a new question: the history's results are an earlier loop's
    tool_results_attributes([*old_loop, {"role": "tool", "tool_call_id": "c2"}, {"role": "tool"}], attrs)
    # no user message since c1's call: the same loop, named by its earliest tool call
    assert attrs == {A.TOOL_RESULTS_COUNT: 2, A.TOOL_LOOP_ID: loop_id("c1")}
    attrs = {}
    blocks = [{"type": "tool_result", "tool_use_id": "t1"}, {"type": "text", "text": "also"}]
    tool_results_attributes([{"role": "user", "content": blocks}], attrs)
    assert attrs == {A.TOOL_RESULTS_COUNT: 1}


def _loop_id(span: Any) -> str | None:
    value = (span.attributes or {}).get(A.TOOL_LOOP_ID)
    return value if isinstance(value, str) else None


@pytest.mark.parametrize("stream", [False, True])
def test_openai_chat_calls_of_one_loop_carry_one_loop_id(
    spans, oai, provider: FakeProvider, stream: bool
) -> None:
    """The call that opens the loop names it by its response's first tool call id; the calls that
    continue it find that id in their request (dicts or the SDK's message objects); a new
    question under a fresh history opens another loop; a plain call carries none."""
    asked = FakeReply(text="", tool_calls=({"name": "get_weather", "arguments": {"city": "Paris"}},))
    provider.enqueue(asked, asked, FakeReply(text="done"), asked, FakeReply(text="hi"))
    messages: list[Any] = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "weather?"}]
    for step in range(3):
        if stream and step == 0:
            chunks = list(oai.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True))
            ids = [d.id for c in chunks for ch in c.choices for d in (ch.delta.tool_calls or ()) if d.id]
            messages.append(
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": ids[0],
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        }
                    ],
                }
            )
            messages.append({"role": "tool", "tool_call_id": ids[0], "content": "18 C"})
            continue
        response = oai.chat.completions.create(model="gpt-4o-mini", messages=messages)
        message = response.choices[0].message
        if not message.tool_calls:
            break
        messages.append(message if step else message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "18 C"})
    oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "again?"}])
    oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    first, second, third, other, plain = spans.llm()
    assert _loop_id(first) is not None and len(_loop_id(first) or "") == 16
    assert _loop_id(first) == _loop_id(second) == _loop_id(third)
    assert _loop_id(other) is not None and _loop_id(other) != _loop_id(first)
    assert _loop_id(plain) is None


def test_anthropic_and_responses_loops_carry_one_loop_id(spans, oai, claude, provider: FakeProvider) -> None:
    asked = FakeReply(text="", tool_calls=({"name": "search", "arguments": {"q": "otel"}},))
    provider.enqueue(asked, FakeReply(text="found"), asked, FakeReply(text="found"))
    ask: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 50}
    messages: list[Any] = [{"role": "user", "content": "research"}]
    with claude.messages.stream(messages=messages, **ask) as events:
        message = events.get_final_message()
    messages.append({"role": "assistant", "content": [b.model_dump() for b in message.content]})
    used = [b.id for b in message.content if b.type == "tool_use"]
    messages.append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": used[0], "content": "ok"}]}
    )
    claude.messages.create(messages=messages, **ask)
    response = oai.responses.create(model="gpt-4o-mini", input="research")
    calls = [item for item in response.output if item.type == "function_call"]
    oai.responses.create(
        model="gpt-4o-mini",
        input=[
            {"role": "user", "content": "research"},
            *[item.model_dump(exclude_none=True) for item in calls],
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "ok"},
        ],  # type: ignore[list-item]
    )
    a_first, a_second, r_first, r_second = spans.llm()
    assert _loop_id(a_first) is not None and _loop_id(a_first) == _loop_id(a_second)
    assert _loop_id(r_first) is not None and _loop_id(r_first) == _loop_id(r_second)
    assert _loop_id(a_first) != _loop_id(r_first)
