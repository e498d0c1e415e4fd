"""context(), step() and feedback(): attributes, parentage, threads and asyncio tasks."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import llmpulse
from llmpulse.contract import attributes as A
from llmpulse.instrumentation.context import hash_user_id
from llmpulse.testing.fake_provider import FakeProvider

MESSAGES = [{"role": "user", "content": "hi"}]


def test_context_attributes_on_llm_spans_with_hashed_user(spans, oai) -> None:
    with llmpulse.context(
        feature="support-bot", session_id="s-1", user_id="alice@example.com", prompt_version="v3"
    ):
        oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    attrs = spans.one_llm().attributes or {}
    assert attrs[A.FEATURE] == "support-bot"
    assert attrs[A.SESSION_ID] == "s-1"
    assert attrs[A.PROMPT_VERSION] == "v3"
    assert attrs[A.ENDUSER_PSEUDO_ID] == hash_user_id("alice@example.com")
    assert "alice@example.com" not in str(dict(attrs))
    assert A.ENDUSER_ID not in attrs


def test_context_scope_attributes_on_llm_spans(spans, oai) -> None:
    with llmpulse.context(
        feature="support-bot",
        prompt_version="p7",
        app_version="2.3.1",
        query_category="refunds",
        rag_index_version="kb-2026-12-01",
    ):
        oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    attrs = spans.one_llm().attributes or {}
    assert (attrs[A.PROMPT_VERSION], attrs[A.APP_VERSION]) == ("p7", "2.3.1")
    assert (attrs[A.QUERY_CATEGORY], attrs[A.RAG_INDEX_VERSION]) == ("refunds", "kb-2026-12-01")


def test_user_id_hashing_opt_out_and_salt(make_spans, oai) -> None:
    spans = make_spans(user_id_salt="pepper")
    with llmpulse.context(user_id="u1"):
        oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with llmpulse.context(user_id="u2", hash_user_id=False):
            oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    salted, raw = spans.llm()
    assert salted.attributes[A.ENDUSER_PSEUDO_ID] == hash_user_id("u1", "pepper") != hash_user_id("u1")
    assert raw.attributes[A.ENDUSER_ID] == "u2"


def test_nested_context_overrides_and_decorator(spans, oai) -> None:
    @llmpulse.context(prompt_version="v9")
    def answer() -> None:
        oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    with llmpulse.context(feature="outer", prompt_version="v1"):
        answer()
    oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    inner, outside = spans.llm()
    assert inner.attributes[A.FEATURE] == "outer"
    assert inner.attributes[A.PROMPT_VERSION] == "v9"
    assert A.FEATURE not in outside.attributes


def test_context_and_parent_cross_threads(spans, oai) -> None:
    with llmpulse.context(feature="threaded"), llmpulse.step("fan-out") as fan_out:
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(
                pool.map(
                    lambda _: oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES), range(2)
                )
            )
        worker = threading.Thread(
            target=lambda: oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        )
        worker.start()
        worker.join()
        step_id = fan_out.span.get_span_context().span_id
    calls = spans.llm()
    assert len(calls) == 3
    for call in calls:
        assert call.attributes[A.FEATURE] == "threaded"
        assert call.parent is not None and call.parent.span_id == step_id


async def test_context_crosses_asyncio_tasks(spans, aoai) -> None:
    async def call(n: int) -> None:
        async with llmpulse.context(session_id=f"s{n}"):
            await aoai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    async with llmpulse.context(feature="async-bot"):
        await asyncio.gather(*(asyncio.create_task(call(n)) for n in range(3)))
    calls = spans.llm()
    assert sorted(s.attributes[A.SESSION_ID] for s in calls) == ["s0", "s1", "s2"]
    assert {s.attributes[A.FEATURE] for s in calls} == {"async-bot"}


def test_retrieval_step_uses_semconv_operation_and_parents_llm_calls(spans, oai) -> None:
    with llmpulse.context(feature="rag"), llmpulse.step("retrieval", data_source="kb-docs") as retrieval:
        retrieval.record(document_count=4, top_score=0.87)
        oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    step_span = next(s for s in spans.all() if s.attributes[A.SPAN_KIND] == A.SPAN_KIND_STEP)
    assert step_span.name == "retrieval kb-docs"
    assert step_span.kind == SpanKind.INTERNAL
    assert dict(step_span.attributes) == {
        A.SPAN_KIND: A.SPAN_KIND_STEP,
        A.STEP_NAME: "retrieval",
        A.GEN_AI_OPERATION_NAME: A.OP_RETRIEVAL,
        A.GEN_AI_DATA_SOURCE_ID: "kb-docs",
        A.FEATURE: "rag",
        A.STEP_DOCUMENT_COUNT: 4,
        A.STEP_TOP_SCORE: 0.87,
    }
    llm = spans.one_llm()
    assert llm.parent.span_id == step_span.context.span_id
    assert llm.start_time >= step_span.start_time and llm.end_time <= step_span.end_time


def test_step_decorators_sync_and_async_and_errors(spans) -> None:
    @llmpulse.step("rerank")
    def rerank(docs: list[str]) -> list[str]:
        return docs[:2]

    @llmpulse.step("retrieval")
    async def retrieve() -> list[str]:
        return ["a", "b", "c"]

    @llmpulse.step("tool")
    def broken() -> None:
        raise KeyError("missing")

    assert rerank(["x", "y", "z"]) == ["x", "y"]
    assert asyncio.run(retrieve()) == ["a", "b", "c"]
    with pytest.raises(KeyError, match="missing"):
        broken()
    by_name = {s.name: s for s in spans.all()}
    assert by_name["rerank"].attributes[A.STEP_DOCUMENT_COUNT] == 2
    assert by_name["retrieval"].attributes[A.STEP_DOCUMENT_COUNT] == 3
    assert by_name["retrieval"].attributes[A.GEN_AI_OPERATION_NAME] == A.OP_RETRIEVAL
    assert by_name["tool"].status.status_code == StatusCode.ERROR
    assert by_name["tool"].attributes[A.ERROR_TYPE] == "KeyError"


def test_feedback_spans_explicit_and_implicit(spans, oai) -> None:
    with llmpulse.step("turn") as turn:
        answer = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        llmpulse.feedback(
            "thumbs", "down", response_id=answer.id, comment="wrong, mail me at bob@example.com"
        )
        turn_id = turn.span.get_span_context().span_id
    llmpulse.feedback("abandoned", response_id="chatcmpl-old")
    llmpulse.feedback("rating", 4)
    thumbs, abandoned, rating = [s for s in spans.all() if s.attributes[A.SPAN_KIND] == A.SPAN_KIND_FEEDBACK]
    assert thumbs.name == "feedback thumbs"
    assert dict(thumbs.attributes) == {
        A.SPAN_KIND: A.SPAN_KIND_FEEDBACK,
        A.FEEDBACK_KIND: "thumbs",
        A.FEEDBACK_VALUE: 0.0,  # "down" is recorded as the contract's number
        A.GEN_AI_RESPONSE_ID: answer.id,
        A.FEEDBACK_COMMENT: "wrong, mail me at [REDACTED:email]",
    }
    assert thumbs.parent is not None and thumbs.parent.span_id == turn_id
    assert abandoned.parent is None
    assert abandoned.attributes[A.FEEDBACK_KIND] == A.FEEDBACK_ABANDONED
    assert abandoned.attributes[A.GEN_AI_RESPONSE_ID] == "chatcmpl-old"
    assert rating.attributes[A.FEEDBACK_VALUE] == 4.0
    with pytest.raises(ValueError, match="unknown feedback kind 'like'"):
        llmpulse.feedback("like")
    with pytest.raises(ValueError, match="not a number, 'up' or 'down'"):
        llmpulse.feedback("thumbs", "meh")


def test_feedback_values_become_the_contract_number(spans) -> None:
    for value in ("up", "UP", True, 1, "1"):
        llmpulse.feedback("thumbs", value)
    for value in ("down", False, 0):
        llmpulse.feedback("thumbs", value)
    values = [s.attributes[A.FEEDBACK_VALUE] for s in spans.all()]
    assert values == [1.0] * 5 + [0.0] * 3


def test_provider_fixture_is_shared(provider: FakeProvider) -> None:
    assert provider.base_url.startswith("http://127.0.0.1:")


def test_tool_step_uses_execute_tool(spans) -> None:
    with llmpulse.step("weather-lookup", tool_name="get_weather"):
        pass
    (span,) = spans.all()
    assert span.name == "execute_tool get_weather"
    assert span.attributes[A.GEN_AI_OPERATION_NAME] == A.OP_EXECUTE_TOOL
    assert span.attributes[A.GEN_AI_TOOL_NAME] == "get_weather"
    assert span.attributes[A.STEP_NAME] == "weather-lookup"
