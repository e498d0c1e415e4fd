"""The fake provider as the app's model and as the judge: instrumented app -> OTLP spans ->
the processor's normaliser -> the quality engine -> judge verdicts, check failures and flags."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.registry import CollectorRegistry

import llmpulse.instrumentation as llmpulse
from llmpulse.contract import attributes as A
from llmpulse.contract.attributes import UNKNOWN_SERVICE
from llmpulse.contract.sampling import is_sampled_bytes
from llmpulse.instrumentation import Settings
from llmpulse.processor.pipeline.normalize import normalize_span
from llmpulse.processor.pipeline.records import Feedback, LLMCall
from llmpulse.processor.quality.engine import QualityEngine
from llmpulse.processor.quality.ingest import feedback_from_record, sample_from_call
from llmpulse.processor.quality.judge import LLMJudge
from llmpulse.processor.quality.settings import JudgeSettings, QualitySettings
from llmpulse.testing.fake_provider import FakeProvider, FakeReply, RecordedRequest

RATE = 0.5
VERDICTS = {
    "good": '{"correctness": 5, "completeness": 5, "tone": 5, "explanation": "Correct."}',
    "wrong": '{"correctness": 1, "completeness": 2, "tone": 4, "explanation": "Wrong setting named."}',
}


def _answer(request: RecordedRequest) -> FakeReply:
    """The app's model and the judge on one fake provider, told apart by the judge's prompt."""
    messages = request.body["messages"]
    if "strict evaluator" in messages[0]["content"]:
        return FakeReply(text=VERDICTS["wrong" if "Network" in messages[1]["content"] else "good"])
    question = messages[-1]["content"]
    if question.startswith("refuse"):
        return FakeReply(text="I'm sorry, but I can't help with that.")
    if question.startswith("wrong"):
        return FakeReply(text="Open Network settings and press Reset.")
    return FakeReply(text="Open Security settings and press Reset password.")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    llmpulse.instrument(
        tracer_provider=tracer_provider, settings=Settings(content="sampled", sample_rate=RATE)
    )
    yield exporter
    llmpulse.uninstrument()


@pytest.fixture
def engine(
    tmp_path: Path,
    judge_settings: JudgeSettings,
    judge_client: httpx.AsyncClient,
    fake_sleep: Callable[[float], Awaitable[None]],
) -> QualityEngine:
    """An engine judging at the instrumentation's sample rate, on its own registry."""
    settings = QualitySettings(
        judge=judge_settings, judge_rate=RATE, audit_rate=0.0, db_path=str(tmp_path / "q.db")
    )
    judge = LLMJudge(judge_settings, sleep=fake_sleep, client=judge_client)
    return QualityEngine(settings, registry=CollectorRegistry(), judge=judge)


async def test_instrumented_app_to_judged_and_flagged_samples(
    provider: FakeProvider, spans: InMemorySpanExporter, engine: QualityEngine
) -> None:
    provider.set_handler(_answer)
    questions = [f"{kind} question {i}" for i in range(12) for kind in ("ok", "wrong", "refuse")]
    response_ids = []
    with openai.OpenAI(base_url=provider.openai_base_url, api_key="t", max_retries=0) as app:
        for question in questions:
            kind = question.split()[0]
            prompt = "support-v3" if kind == "wrong" else "support-v2"
            with llmpulse.context(feature="support", prompt_version=prompt, query_category=kind):
                reply = app.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
                )
            response_ids.append(reply.id)
        with llmpulse.context(feature="support"):
            llmpulse.feedback("thumbs", False, response_id=response_ids[1], comment="wrong menu")

    registry = engine.metrics.registry
    await engine.start()
    request = encode_spans(spans.get_finished_spans())
    calls: list[LLMCall] = []
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                record = normalize_span(span)
                if isinstance(record, LLMCall):
                    calls.append(record)
                    engine.observe(sample_from_call(record, span))
                elif isinstance(record, Feedback):
                    engine.observe_feedback(feedback_from_record(record, span))
    await engine.drain(timeout=30)

    judged = [r for r in provider.requests if "strict evaluator" in r.body["messages"][0]["content"]]
    sampled = [c for c in calls if is_sampled_bytes(c.trace_id, RATE)]
    assert len(calls) == len(questions) and 0 < len(sampled) < len(calls)
    assert len(judged) == len(sampled)  # every sampled call carried content and was judged once

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"service": UNKNOWN_SERVICE, "feature": "support", **labels})

    refusals_sampled = sum(1 for c in sampled if c.response_id in {response_ids[i] for i in range(2, 36, 3)})
    assert value("llmpulse_quality_check_failures_total", check="refusal_phrase") == refusals_sampled
    assert value("llmpulse_judge_verdicts_total") == len(sampled)
    wrong_sampled = sum(1 for c in sampled if c.response_id in {response_ids[i] for i in range(1, 36, 3)})
    assert value("llmpulse_quality_flagged_total", source="judge") == wrong_sampled
    assert value("llmpulse_quality_flagged_total", source="feedback") == 1
    flagged = {(s.record.sources, s.record.response_id) for s in engine.store.query(limit=None)}
    # what scopes the regression reaches the store with each flagged sample
    by_judge = [s.record for s in engine.store.query(limit=None) if s.record.sources == ("judge",)]
    assert len(by_judge) == wrong_sampled
    assert {(r.prompt_version, r.query_category, r.response_model) for r in by_judge} == {
        ("support-v3", "wrong", "gpt-4o-mini")
    }
    await engine.stop()
    assert (("feedback",), response_ids[1]) in flagged
    judge_bodies = [json.dumps(r.body) for r in judged]
    assert all(A.SAMPLED not in body for body in judge_bodies)  # the judge sees content, not span plumbing
