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
    from llmpulse.instrumentation.tool_requests import tool_results_attributes

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
    assert attrs == {A.TOOL_RESULTS_COUNT: 2}
    attrs = {}
    blocks = [{"type": "tool_result", "tool_use_id": "t1"}, {"type": "text", "text": "also"}]
    tool_results_attributes([{"role": "user", "content": blocks}], attrs)
    assert attrs == {A.TOOL_RESULTS_COUNT: 1}
