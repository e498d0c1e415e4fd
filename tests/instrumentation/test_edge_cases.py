"""Less common paths: helpers, lazy raw responses, failures inside stream handling, single end."""

from __future__ import annotations

import gc
import logging

import pytest

from llmpulse.contract import attributes as A
from llmpulse.testing.fake_provider import FakeProvider, FakeReply

MESSAGES = [{"role": "user", "content": "hi"}]
MODEL = "claude-haiku-4-5"


def _no_double_end(caplog: pytest.LogCaptureFixture) -> None:
    assert not [
        r for r in caplog.records if "already ended" in r.getMessage() or "ended span" in r.getMessage()
    ]


def test_responses_stream_helper(spans, oai, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(text="x y", input_tokens=7, output_tokens=2))
    with oai.responses.stream(model="gpt-4o", input="hi") as stream:
        final = stream.get_final_response()
    attrs = spans.one_llm().attributes
    assert attrs[A.GEN_AI_RESPONSE_ID] == final.id
    assert attrs[A.GEN_AI_USAGE_INPUT_TOKENS] == 7


def test_lazy_streaming_response_without_stream(spans, oai, provider: FakeProvider) -> None:
    provider.enqueue(FakeReply(text="lazy", input_tokens=3, output_tokens=1))
    with oai.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    ) as response:
        assert spans.llm() == []  # the body is not read yet
        assert response.parse().choices[0].message.content == "lazy"
    assert spans.one_llm().attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 3


async def test_anthropic_async_raw_and_streaming_response(spans, aclaude, provider: FakeProvider) -> None:
    provider.enqueue(
        FakeReply(text="r", input_tokens=2, output_tokens=1), FakeReply(text="s", input_tokens=4)
    )
    raw = await aclaude.messages.with_raw_response.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    assert (await raw.parse()).content[0].text == "r"
    async with aclaude.messages.with_streaming_response.create(
        model=MODEL, max_tokens=8, messages=MESSAGES
    ) as response:
        assert (await response.parse()).content[0].text == "s"
    assert [s.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] for s in spans.llm()] == [2, 4]


def test_accumulator_failure_does_not_touch_the_stream(spans, oai, provider, monkeypatch, caplog) -> None:
    from llmpulse.instrumentation import openai_wrappers

    def broken(self: object, chunk: object) -> bool:
        raise RuntimeError("bug in llmpulse")

    monkeypatch.setattr(openai_wrappers.ChatStream, "on_chunk", broken)
    provider.enqueue(FakeReply(text="a b c", chunks=3))
    with caplog.at_level(logging.DEBUG, logger="llmpulse"):
        chunks = list(oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "a b c"
    assert spans.one_llm().end_time is not None
    assert any("could not read a stream chunk" in r.getMessage() for r in caplog.records)


def test_every_way_of_leaving_a_stream_ends_the_span_once(spans, oai, claude, provider, caplog) -> None:
    provider.set_default(FakeReply(text="a b c d", chunks=4))
    with caplog.at_level(logging.DEBUG):
        finished = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        list(finished)
        finished.close()  # closing after the end: still one end
        with oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as early:
            next(early)
        dropped = claude.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES, stream=True)
        next(iter(dropped))
        del dropped
        untouched = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        del untouched
        gc.collect()
    assert len(spans.llm()) == 4
    assert len({s.context.span_id for s in spans.llm()}) == 4
    _no_double_end(caplog)


def test_uninstrumented_behaviour_is_identical(make_spans, oai, provider: FakeProvider) -> None:
    """The same scripted replies give equal results with and without instrumentation."""
    reply = FakeReply(text="same answer", input_tokens=5, output_tokens=2, response_id="chatcmpl-fixed")
    provider.enqueue(reply, reply)
    plain = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    plain_chunks = [c.model_dump(exclude={"created"}) for c in plain]
    make_spans()
    traced = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    traced_chunks = [c.model_dump(exclude={"created"}) for c in traced]
    assert traced_chunks == plain_chunks


@pytest.mark.parametrize(
    ("attributes", "foreign"),
    [
        ({A.GEN_AI_OPERATION_NAME: "chat", A.GEN_AI_REQUEST_MODEL: "gpt-4o"}, True),  # official GenAI
        ({A.OPENINFERENCE_SPAN_KIND: "LLM"}, True),
        ({A.OPENINFERENCE_SPAN_KIND: "EMBEDDING"}, True),
        ({A.OPENINFERENCE_SPAN_KIND: "CHAIN"}, False),
        ({A.OPENLLMETRY_REQUEST_TYPE: "chat"}, True),
        ({A.OPENINFERENCE_MODEL_NAME: "gpt-4o", "http.method": "POST"}, True),
        ({A.GEN_AI_OPERATION_NAME: "invoke_agent", A.GEN_AI_AGENT_NAME: "a"}, False),  # an agent run
        ({A.SPAN_KIND: A.SPAN_KIND_STEP, A.GEN_AI_OPERATION_NAME: "chat"}, False),  # llmpulse's own
        ({"http.method": "GET", "http.route": "/ask"}, False),  # the app's request span
        ({}, False),
    ],
)
def test_foreign_llm_span_verdict(attributes, foreign: bool) -> None:
    """Which parent spans count as another instrumentation's LLM span (annotated, not duplicated)."""
    from opentelemetry.sdk.trace import TracerProvider

    from llmpulse.instrumentation.calls import foreign_llm_span

    provider = TracerProvider()
    span = provider.get_tracer("test").start_span("parent", attributes=attributes)
    assert (foreign_llm_span(span) is span) is foreign
    span.end()
    assert foreign_llm_span(span) is None  # an ended span records nothing more
