"""The judge against the fake provider: parsing, retries, unparseable verdicts, no self-tracing."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import httpx
import pytest
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmpulse.processor.quality.judge import (
    JudgeHTTPError,
    JudgeTimeout,
    JudgeTransportError,
    JudgeUnparseable,
    LLMJudge,
    parse_verdict,
)
from llmpulse.processor.quality.settings import JudgeSettings
from llmpulse.processor.quality.types import QualitySample
from llmpulse.testing.fake_provider import FakeProvider, FakeReply

GOOD = '{"correctness": 5, "completeness": 4, "tone": 5, "explanation": "Right and complete."}'
Sleep = Callable[[float], Awaitable[None]]
Factory = Callable[..., QualitySample]


def _judge(settings: JudgeSettings, sleep: Sleep, **kwargs: object) -> LLMJudge:
    return LLMJudge(settings, sleep=sleep, **kwargs)  # type: ignore[arg-type,unused-ignore]


async def test_verdict_parsed_with_every_dimension_and_the_request_is_one_json_call(
    provider: FakeProvider, judge_settings: JudgeSettings, fake_sleep: Sleep, sample_factory: Factory
) -> None:
    provider.enqueue(FakeReply(text=GOOD, input_tokens=300, output_tokens=40))
    spent: list[tuple[int, int, float]] = []
    judge = _judge(judge_settings, fake_sleep, on_spend=lambda i, o, usd: spent.append((i, o, usd)))
    verdict = await judge.evaluate(sample_factory())
    await judge.aclose()
    assert verdict.scores == {"correctness": 5.0, "completeness": 4.0, "tone": 5.0}
    assert verdict.explanation == "Right and complete."
    assert verdict.overall == pytest.approx(14 / 3)
    # priced with the shared pricing table: gpt-4o-mini 0.15 / 0.60 USD per million tokens
    assert spent == [(300, 40, pytest.approx(300 * 0.15e-6 + 40 * 0.6e-6))]
    [request] = provider.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer test-key"
    assert request.body["response_format"] == {"type": "json_object"}
    assert "ANSWER:\nOpen Settings" in request.body["messages"][1]["content"]


async def test_content_from_a_producer_that_does_not_redact_is_redacted_before_the_judge_sees_it(
    provider: FakeProvider, judge_settings: JudgeSettings, fake_sleep: Sleep, sample_factory: Factory
) -> None:
    scores = {"correctness": 4, "completeness": 4, "tone": 4, "relevance": 4, "groundedness": 4}
    provider.enqueue(FakeReply(text=json.dumps({"scores": scores, "explanation": "ok"})))
    judge = _judge(judge_settings, fake_sleep)
    secrets = ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "jane@example.com", "123-45-6789", "hunter2")
    sample = sample_factory(
        system_instructions="Use key sk_live_4eC39HqLyjWDarjtT1zdp7dc for refunds.",
        input_messages=[
            {"role": "user", "parts": [{"type": "text", "content": "I am jane@example.com, 123-45-6789"}]}
        ],
        retrieved_context=["account: password=hunter2"],
        output_text="Mailed jane@example.com.",
    )
    await judge.evaluate(sample)
    await judge.aclose()
    [request] = provider.requests
    sent = json.dumps(request.body)
    assert not [s for s in secrets if s in sent]
    assert "[REDACTED:email]" in sent and "[REDACTED:ssn]" in sent and "[REDACTED:password]" in sent


async def test_retrieved_context_adds_relevance_and_groundedness(
    provider: FakeProvider, judge_settings: JudgeSettings, fake_sleep: Sleep, sample_factory: Factory
) -> None:
    provider.enqueue(
        FakeReply(text=json.dumps({"scores": {"correctness": 4, "completeness": 4, "tone": 4, "relevance": 3,
                                              "groundedness": 2}, "explanation": "Partly grounded."}))
    )  # fmt: skip
    judge = _judge(judge_settings, fake_sleep)
    verdict = await judge.evaluate(sample_factory(retrieved_context=["Passwords are reset in Settings."]))
    await judge.aclose()
    assert verdict.scores["groundedness"] == 2.0 and verdict.scores["relevance"] == 3.0
    assert "RETRIEVED CONTEXT:\nPasswords are reset" in provider.requests[0].body["messages"][1]["content"]
    assert '"groundedness"' in provider.requests[0].body["messages"][0]["content"]


async def test_unparseable_verdict_is_retried_once(
    provider: FakeProvider, judge_settings: JudgeSettings, fake_sleep: Sleep, sample_factory: Factory
) -> None:
    provider.enqueue(FakeReply(text=GOOD, malformed_json=True), FakeReply(text="```json\n" + GOOD + "\n```"))
    judge = _judge(judge_settings, fake_sleep)
    verdict = await judge.evaluate(sample_factory())
    await judge.aclose()
    assert verdict.scores["correctness"] == 5.0
    assert len(provider.requests) == 2


async def test_twice_unparseable_is_an_error_never_a_default_score(
    provider: FakeProvider, judge_settings: JudgeSettings, fake_sleep: Sleep, sample_factory: Factory
) -> None:
    provider.enqueue(
        FakeReply(text='{"correctness": "great", "completeness": 4, "tone": 5}'),
        FakeReply(text='{"correctness": 9, "completeness": 4, "tone": 5}'),
        FakeReply(text=GOOD),
    )
    judge = _judge(judge_settings, fake_sleep)
    with pytest.raises(JudgeUnparseable, match="correctness"):
        await judge.evaluate(sample_factory())
    await judge.aclose()
    assert len(provider.requests) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"correctness": 4, "completeness": 4}', "tone"),
        ('{"correctness": true, "completeness": 4, "tone": 4}', "correctness"),
        ('{"correctness": 0, "completeness": 4, "tone": 4}', "correctness"),
    ],
)
def test_parse_verdict_rejects(text: str, message: str) -> None:
    with pytest.raises(JudgeUnparseable, match=message):
        parse_verdict(text, ("correctness", "completeness", "tone"))


async def test_server_errors_and_rate_limits_are_retried_with_backoff(
    provider: FakeProvider,
    judge_settings: JudgeSettings,
    fake_sleep: Sleep,
    sleeps: list[float],
    sample_factory: Factory,
) -> None:
    provider.enqueue(FakeReply(status=500), FakeReply(status=429), FakeReply(text=GOOD))
    judge = _judge(judge_settings, fake_sleep)
    verdict = await judge.evaluate(sample_factory())
    await judge.aclose()
    assert verdict.scores["tone"] == 5.0
    assert len(provider.requests) == 3
    assert len(sleeps) == 2
    assert sleeps[1] == judge_settings.backoff_max_s  # Retry-After: 1, capped by backoff_max_s


async def test_retries_give_up_with_the_status(
    provider: FakeProvider, judge_settings: JudgeSettings, fake_sleep: Sleep, sample_factory: Factory
) -> None:
    provider.set_default(FakeReply(status=503))
    judge = _judge(judge_settings, fake_sleep)
    with pytest.raises(JudgeHTTPError, match="503") as info:
        await judge.evaluate(sample_factory())
    await judge.aclose()
    assert info.value.status == 503
    assert len(provider.requests) == 1 + judge_settings.max_retries


async def test_client_errors_are_not_retried(
    provider: FakeProvider, judge_settings: JudgeSettings, fake_sleep: Sleep, sample_factory: Factory
) -> None:
    provider.set_default(FakeReply(status=401))
    judge = _judge(judge_settings, fake_sleep)
    with pytest.raises(JudgeHTTPError, match="401"):
        await judge.evaluate(sample_factory())
    await judge.aclose()
    assert len(provider.requests) == 1


async def test_timeouts_and_unreachable_endpoints(
    judge_settings: JudgeSettings, fake_sleep: Sleep, sample_factory: Factory
) -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    for handler, error in ((timeout, JudgeTimeout), (refused, JudgeTransportError)):
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        judge = _judge(judge_settings, fake_sleep, client=client)
        with pytest.raises(error):
            await judge.evaluate(sample_factory())
        await client.aclose()


async def test_the_judge_never_traces_itself_even_with_httpx_instrumented(
    provider: FakeProvider, judge_settings: JudgeSettings, fake_sleep: Sleep, sample_factory: Factory
) -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        provider.set_handler(lambda request: FakeReply(text=GOOD))
        # The instrumentation is live: a plain client call produces a span ...
        async with httpx.AsyncClient() as client:
            await client.get(provider.openai_base_url + "/models")
        assert len(exporter.get_finished_spans()) == 1
        exporter.clear()
        # ... but the judge's calls, through a client created after instrumenting, do not.
        judge = _judge(judge_settings, fake_sleep)
        await judge.evaluate(sample_factory())
        await judge.aclose()
    finally:
        instrumentor.uninstrument()
    assert len(provider.requests) == 2
    assert exporter.get_finished_spans() == ()
    assert all("traceparent" not in r.headers for r in provider.requests if r.path.endswith("/completions"))
