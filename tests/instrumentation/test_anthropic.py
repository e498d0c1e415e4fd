"""Anthropic SDK coverage with the real client against the fake provider."""

from __future__ import annotations

import gc

import anthropic
import pytest
from opentelemetry.trace import StatusCode

from llmpulse.contract import attributes as A
from llmpulse.testing.fake_provider import FakeProvider, FakeReply

MODEL = "claude-haiku-4-5-20251001"
MESSAGES = [{"role": "user", "content": "Name a colour."}]
# claude-haiku-4-5 per million tokens: input, output, cache read, cache write
PRICE = (1.0, 5.0, 0.1, 1.25)


def haiku_cost(fresh: int, out: int, read: int = 0, write: int = 0) -> float:
    return (fresh * PRICE[0] + out * PRICE[1] + read * PRICE[2] + write * PRICE[3]) / 1e6


def test_message_span_counts_cache_tokens_into_input(spans, claude, provider: FakeProvider) -> None:
    provider.enqueue(
        FakeReply(
            text="Blue.",
            input_tokens=20,
            output_tokens=2,
            cached_input_tokens=300,
            cache_creation_input_tokens=50,
        )
    )
    message = claude.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stop_sequences=["END"])
    assert message.content[0].text == "Blue."
    attrs = dict(spans.one_llm().attributes or {})
    assert spans.one_llm().name == f"chat {MODEL}"
    assert attrs.pop(A.COST_USD) == pytest.approx(haiku_cost(20, 2, 300, 50))
    assert attrs == {
        A.SPAN_KIND: A.SPAN_KIND_LLM,
        A.GEN_AI_OPERATION_NAME: "chat",
        A.GEN_AI_PROVIDER_NAME: "anthropic",
        A.SERVER_ADDRESS: "127.0.0.1",
        A.SERVER_PORT: provider.port,
        A.GEN_AI_REQUEST_MODEL: MODEL,
        A.GEN_AI_REQUEST_MAX_TOKENS: 64,
        A.GEN_AI_REQUEST_STOP_SEQUENCES: ("END",),
        A.GEN_AI_RESPONSE_ID: message.id,
        A.GEN_AI_RESPONSE_MODEL: MODEL,
        A.GEN_AI_RESPONSE_FINISH_REASONS: ("end_turn",),
        A.FINISH_REASON: A.FINISH_STOP,
        A.GEN_AI_USAGE_INPUT_TOKENS: 370,
        A.GEN_AI_USAGE_OUTPUT_TOKENS: 2,
        A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 300,
        A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 50,
        A.PRICING_VERSION: "2026.12.1",
    }


def test_stream_true_and_stream_helper(spans, claude, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(text="red green", input_tokens=8, output_tokens=2, finish_reason="length"))
    events = list(claude.messages.create(model=MODEL, max_tokens=2, messages=MESSAGES, stream=True))
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    provider.enqueue(FakeReply(text="violet", input_tokens=9, output_tokens=1))
    with claude.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        assert stream.get_final_text() == "violet"
    raw_stream, helper = spans.llm()
    assert raw_stream.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("max_tokens",)
    assert raw_stream.attributes[A.FINISH_REASON] == A.FINISH_LENGTH
    assert raw_stream.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 2
    assert raw_stream.attributes[A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert helper.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 9
    assert helper.attributes[A.COST_USD] == pytest.approx(haiku_cost(9, 1))


def test_refusal_and_tool_use(spans, claude, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(refusal="I can't help with that."))
    claude.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    provider.enqueue(FakeReply(tool_calls=({"name": "lookup", "arguments": {"q": "x"}},)))
    claude.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    refused, tool = spans.llm()
    assert refused.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("refusal",)
    assert refused.attributes[A.REFUSAL] is True
    assert refused.attributes[A.FINISH_REASON] == A.FINISH_REFUSAL
    assert tool.attributes[A.FINISH_REASON] == A.FINISH_TOOL_CALLS


def test_overloaded_error_is_reraised_unchanged(spans, claude, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(status=529))
    with pytest.raises(anthropic.APIStatusError) as caught:
        claude.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert caught.value.status_code == 529
    span = spans.one_llm()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[A.ERROR_TYPE] == type(caught.value).__qualname__


def test_abandoned_stream_helper_ends_span_once(spans, claude, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(text="a b c d e", chunks=5))
    with claude.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        for _ in stream.text_stream:
            break
    gc.collect()
    assert len(spans.llm()) == 1


async def test_async_create_stream_and_helper(spans, aclaude, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(text="x", input_tokens=3, output_tokens=1))
    await aclaude.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    provider.enqueue(FakeReply(text="y z", input_tokens=4, output_tokens=2))
    stream = await aclaude.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES, stream=True)
    assert isinstance(stream, anthropic.AsyncStream)
    kinds = [event.type async for event in stream]
    assert kinds[-1] == "message_stop"
    provider.enqueue(FakeReply(text="w", input_tokens=5, output_tokens=1))
    async with aclaude.messages.stream(model=MODEL, max_tokens=8, messages=MESSAGES) as helper:
        assert await helper.get_final_text() == "w"
    inputs = [s.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] for s in spans.llm()]
    assert inputs == [3, 4, 5]


def test_raw_response(spans, claude, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(text="raw", input_tokens=6, output_tokens=1))
    raw = claude.messages.with_raw_response.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    assert raw.parse().content[0].text == "raw"
    assert spans.one_llm().attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 6


def test_sdk_own_span_is_suppressed_by_default(spans, provider: FakeProvider) -> None:
    client = anthropic.Anthropic(
        base_url=provider.base_url,
        api_key="test",
        max_retries=0,
        open_telemetry={"tracer_provider": spans.tracer_provider},
    )
    client.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    scopes = [s.instrumentation_scope.name for s in spans.all()]
    assert scopes == ["llmpulse.instrumentation"]


def test_sdk_own_span_kept_on_request_becomes_a_child(make_spans, provider: FakeProvider) -> None:
    spans = make_spans(anthropic_sdk_spans="keep")
    client = anthropic.Anthropic(
        base_url=provider.base_url,
        api_key="test",
        max_retries=0,
        open_telemetry={"tracer_provider": spans.tracer_provider},
    )
    client.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    sdk = [s for s in spans.all() if s.instrumentation_scope.name == A.ANTHROPIC_SDK_SCOPE]
    ours = spans.one_llm()
    assert len(sdk) == 1
    assert sdk[0].parent is not None and sdk[0].parent.span_id == ours.context.span_id
    assert A.SPAN_KIND not in (sdk[0].attributes or {})
