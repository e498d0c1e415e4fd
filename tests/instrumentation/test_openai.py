"""OpenAI SDK coverage with the real client against the fake provider."""

from __future__ import annotations

import gc

import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode

import llmpulse
from llmpulse.contract import attributes as A
from llmpulse.testing.fake_provider import FakeProvider, FakeReply

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]

# gpt-4o-mini in the shipped table: per million tokens.
MINI_IN, MINI_OUT, MINI_CACHED = 0.15, 0.6, 0.075


def mini_cost(n_in: int, n_out: int, n_cached: int = 0) -> float:
    return ((n_in - n_cached) * MINI_IN + n_cached * MINI_CACHED + n_out * MINI_OUT) / 1e6


def test_chat_completion_span_has_exact_attributes(spans, oai, provider: FakeProvider) -> None:
    provider.enqueue(
        FakeReply(
            text="Paris.", input_tokens=120, output_tokens=7, cached_input_tokens=100, reasoning_tokens=3
        )
    )
    result = oai.chat.completions.create(
        model="gpt-4o-mini-2024-07-18", messages=MESSAGES, temperature=0.2, max_tokens=50, top_p=0.9, seed=7
    )
    assert result.choices[0].message.content == "Paris."
    span = spans.one_llm()
    assert span.name == "chat gpt-4o-mini-2024-07-18"
    assert span.kind == SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    assert attrs.pop(A.COST_USD) == pytest.approx(mini_cost(120, 7, 100))
    assert attrs == {
        A.SPAN_KIND: A.SPAN_KIND_LLM,
        A.GEN_AI_OPERATION_NAME: "chat",
        A.GEN_AI_PROVIDER_NAME: "openai",
        A.SERVER_ADDRESS: "127.0.0.1",
        A.SERVER_PORT: provider.port,
        A.GEN_AI_REQUEST_MODEL: "gpt-4o-mini-2024-07-18",
        A.GEN_AI_REQUEST_TEMPERATURE: 0.2,
        A.GEN_AI_REQUEST_MAX_TOKENS: 50,
        A.GEN_AI_REQUEST_TOP_P: 0.9,
        A.GEN_AI_REQUEST_SEED: 7,
        A.GEN_AI_RESPONSE_ID: result.id,
        A.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
        A.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        A.FINISH_REASON: A.FINISH_STOP,
        A.GEN_AI_USAGE_INPUT_TOKENS: 120,
        A.GEN_AI_USAGE_OUTPUT_TOKENS: 7,
        A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 100,
        A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 3,
        A.PRICING_VERSION: "2026.12.1",
    }
    assert span.status.status_code == StatusCode.UNSET


def test_stream_records_usage_ttft_and_hides_the_usage_chunk(spans, oai, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(text="one two three", input_tokens=11, output_tokens=3, chunks=3))
    stream = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.Stream)
    chunks = list(stream)
    # what the caller sees is what it asked for: no usage chunk with empty choices
    assert all(chunk.choices for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "one two three"
    assert provider.requests[-1].body["stream_options"] == {"include_usage": True}
    attrs = spans.one_llm().attributes or {}
    assert attrs[A.GEN_AI_REQUEST_STREAM] is True
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 11
    assert attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 3
    assert attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attrs[A.COST_USD] == pytest.approx(mini_cost(11, 3))
    assert attrs[A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0


def test_stream_keeps_the_usage_chunk_the_caller_asked_for(spans, oai, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(text="a b", input_tokens=5, output_tokens=2))
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 5
    assert (spans.one_llm().attributes or {})[A.GEN_AI_USAGE_INPUT_TOKENS] == 5


def test_stream_usage_request_can_be_turned_off(make_spans, oai, provider: FakeProvider) -> None:
    spans = make_spans(request_stream_usage=False)
    provider.enqueue(FakeReply(text="a b"))
    list(oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert "stream_options" not in provider.requests[-1].body
    attrs = spans.one_llm().attributes or {}
    assert A.GEN_AI_USAGE_INPUT_TOKENS not in attrs and A.COST_USD not in attrs


def test_text_completion_and_embeddings(spans, oai, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(text="done", input_tokens=4, output_tokens=1, finish_reason="length"))
    oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say done")
    provider.enqueue(FakeReply(input_tokens=6))
    emb = oai.embeddings.create(model="text-embedding-3-small", input="hello world")
    assert len(emb.data[0].embedding) == 8
    completion, embedding = spans.llm()
    assert completion.name == "text_completion gpt-3.5-turbo-instruct"
    assert completion.attributes[A.FINISH_REASON] == A.FINISH_LENGTH
    assert completion.attributes[A.COST_USD] == pytest.approx((4 * 1.5 + 1 * 2.0) / 1e6)
    assert embedding.name == "embeddings text-embedding-3-small"
    assert embedding.attributes[A.GEN_AI_OPERATION_NAME] == A.OP_EMBEDDINGS
    assert embedding.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 6
    assert embedding.attributes[A.COST_USD] == pytest.approx(6 * 0.02 / 1e6)


def test_responses_api_plain_and_streamed(spans, oai, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(text="hi", input_tokens=9, output_tokens=2, reasoning_tokens=1))
    response = oai.responses.create(model="gpt-4o", input="hello", max_output_tokens=64)
    provider.enqueue(FakeReply(text="a b c", input_tokens=9, output_tokens=3, finish_reason="length"))
    events = list(oai.responses.create(model="gpt-4o", input="hello", stream=True))
    assert events[-1].type == "response.incomplete"
    plain, streamed = spans.llm()
    assert plain.attributes[A.GEN_AI_RESPONSE_ID] == response.id
    assert plain.attributes[A.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert plain.attributes[A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 1
    assert plain.attributes[A.COST_USD] == pytest.approx((9 * 2.5 + 2 * 10.0) / 1e6)
    assert streamed.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("max_output_tokens",)
    assert streamed.attributes[A.FINISH_REASON] == A.FINISH_LENGTH
    assert streamed.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 3


@pytest.mark.parametrize(
    "case",
    [
        (FakeReply(finish_reason="length"), "length", A.FINISH_LENGTH),
        (FakeReply(finish_reason="content_filter"), "content_filter", A.FINISH_CONTENT_FILTER),
        (
            FakeReply(tool_calls=({"name": "get_weather", "arguments": {"city": "Paris"}},)),
            "tool_calls",
            A.FINISH_TOOL_CALLS,
        ),
    ],
)
def test_finish_reasons_are_normalized(spans, oai, provider, case) -> None:
    reply, raw, normalized = case
    provider.enqueue(reply)
    oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    attrs = spans.one_llm().attributes or {}
    assert attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] == (raw,)
    assert attrs[A.FINISH_REASON] == normalized
    assert A.REFUSAL not in attrs


def test_refusal_is_detected_from_the_api_signal(spans, oai, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(refusal="I can't help with that."))
    oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    provider.enqueue(FakeReply(refusal="I can't help with that."))
    list(oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    provider.enqueue(FakeReply(refusal="No."))
    oai.responses.create(model="gpt-4o", input="x")
    for span in spans.llm():
        assert span.attributes[A.REFUSAL] is True, span.name
        assert span.attributes[A.FINISH_REASON] == A.FINISH_REFUSAL


def test_api_error_is_reraised_unchanged_and_recorded(spans, oai, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(status=429))
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert caught.value.status_code == 429
    span = spans.one_llm()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[A.ERROR_TYPE] == "RateLimitError"
    assert span.attributes[A.FINISH_REASON] == A.FINISH_ERROR
    assert A.COST_USD not in span.attributes


def test_abandoned_stream_ends_its_span_once(spans, oai, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(text="a b c d e f", chunks=6))
    stream = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    first = next(iter(stream))
    assert first.choices
    assert spans.llm() == []  # still open while the caller holds the stream
    del stream
    gc.collect()
    span = spans.one_llm()
    assert span.end_time is not None and A.ERROR_TYPE not in span.attributes


def test_closed_and_context_managed_streams_end_once(spans, oai, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(text="a b c", chunks=3), FakeReply(text="x y", chunks=2))
    stream = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    next(stream)
    stream.close()
    stream.close()
    with oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as managed:
        for _ in managed:
            break
    gc.collect()
    assert len(spans.llm()) == 2


def test_stream_helper_and_raw_responses(spans, oai, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(text="helper", input_tokens=3, output_tokens=1))
    with oai.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "helper"
    provider.enqueue(FakeReply(text="raw", input_tokens=4, output_tokens=1))
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.headers["content-type"].startswith("application/json")
    assert raw.parse().choices[0].message.content == "raw"
    provider.enqueue(FakeReply(text="s1 s2", input_tokens=5, output_tokens=2))
    with oai.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as response:
        texts = [c.choices[0].delta.content for c in response.parse() if c.choices]
    assert "".join(t or "" for t in texts) == "s1 s2"
    helper, raw_span, streaming = spans.llm()
    assert helper.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 3
    assert raw_span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 4
    assert streaming.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 5


def test_azure_style_base_url(spans, provider: FakeProvider) -> None:
    client = openai.AzureOpenAI(
        azure_endpoint=provider.base_url, api_key="test", api_version="2024-10-21", max_retries=0
    )
    provider.enqueue(FakeReply(text="ok", input_tokens=2, output_tokens=1))
    client.chat.completions.create(model="my-gpt4o-deployment", messages=MESSAGES)
    attrs = spans.one_llm().attributes or {}
    assert "/openai/deployments/my-gpt4o-deployment/" in provider.requests[-1].path
    assert attrs[A.GEN_AI_PROVIDER_NAME] == "azure.ai.openai"
    assert attrs[A.GEN_AI_REQUEST_MODEL] == "my-gpt4o-deployment"
    assert attrs[A.UNPRICED] is True and A.COST_USD not in attrs


async def test_async_chat_stream_and_embeddings(spans, aoai, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(text="a b", input_tokens=3, output_tokens=2))
    result = await aoai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    provider.enqueue(FakeReply(text="c d", input_tokens=4, output_tokens=2))
    stream = await aoai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.AsyncStream)
    texts = [c.choices[0].delta.content async for c in stream]
    assert "".join(t or "" for t in texts) == "c d"
    provider.enqueue(FakeReply(input_tokens=5))
    await aoai.embeddings.create(model="text-embedding-3-small", input="x")
    plain, streamed, emb = spans.llm()
    assert plain.attributes[A.GEN_AI_RESPONSE_ID] == result.id
    assert streamed.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 4
    assert emb.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 5


async def test_async_raw_response_and_error(spans, aoai, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(text="raw", input_tokens=4, output_tokens=1), FakeReply(status=500))
    raw = await aoai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "raw"
    with pytest.raises(openai.InternalServerError):
        await aoai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    ok, failed = spans.llm()
    assert ok.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 4
    assert failed.attributes[A.ERROR_TYPE] == "InternalServerError"


async def test_async_abandoned_stream(spans, aoai, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(text="a b c d", chunks=4))
    stream = await aoai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    async for _ in stream:
        break
    await stream.close()
    await stream.close()
    assert len(spans.llm()) == 1


def test_non_llm_endpoints_are_not_recorded(spans, oai) -> None:
    oai.models.list()
    assert spans.llm() == []


def test_cached_start_attributes_are_per_call(spans, oai, provider: FakeProvider) -> None:
    """The start attributes are cached per client and (operation, model, stream) and copied per
    call: a call's parameters, stream flag and context attributes never reach the next call's span,
    and a repeated call gets exactly the first one's attributes."""
    provider.set_default(FakeReply(text="ok", input_tokens=20, output_tokens=4))
    oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with llmpulse.context(feature="cache-test"):
        oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0.5)
    for _ in oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
        pass
    oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    first, in_context, streamed, other_model, again = (dict(s.attributes or {}) for s in spans.llm())
    varying = (A.GEN_AI_RESPONSE_ID,)
    assert {k: v for k, v in again.items() if k not in varying} == {
        k: v for k, v in first.items() if k not in varying
    }
    assert first[A.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert A.GEN_AI_REQUEST_STREAM not in first and A.FEATURE not in first
    assert A.GEN_AI_REQUEST_TEMPERATURE not in first
    assert in_context[A.FEATURE] == "cache-test" and in_context[A.GEN_AI_REQUEST_TEMPERATURE] == 0.5
    assert streamed[A.GEN_AI_REQUEST_STREAM] is True and A.FEATURE not in streamed
    assert A.GEN_AI_REQUEST_TEMPERATURE not in streamed
    assert other_model[A.GEN_AI_REQUEST_MODEL] == "gpt-4o" and A.GEN_AI_REQUEST_STREAM not in other_model
    for attrs in (first, in_context, streamed, other_model, again):
        assert attrs[A.SERVER_ADDRESS] == "127.0.0.1" and attrs[A.SERVER_PORT] == provider.port
        assert attrs[A.GEN_AI_PROVIDER_NAME] == "openai" and attrs[A.SPAN_KIND] == A.SPAN_KIND_LLM


def test_server_attributes_follow_a_changed_base_url(spans, oai, provider: FakeProvider) -> None:
    """The per-client cache of server.address/port is keyed on the base URL object."""
    provider.set_default(FakeReply(text="ok"))
    oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    oai.base_url = f"http://localhost:{provider.port}/v1"
    oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    first, second = spans.llm()
    assert (first.attributes or {})[A.SERVER_ADDRESS] == "127.0.0.1"
    assert (second.attributes or {})[A.SERVER_ADDRESS] == "localhost"
    assert (second.attributes or {})[A.SERVER_PORT] == provider.port
