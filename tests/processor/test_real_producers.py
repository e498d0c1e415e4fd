"""Spans from real producers: the official GenAI OpenAI instrumentation and the anthropic SDK's own.

The real ``openai`` and ``anthropic`` clients talk to the local fake provider; their spans go
through the OTel SDK's OTLP/gRPC exporter to a running processor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import anthropic
import openai
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from llmpulse.contract.pricing import PricingTable
from llmpulse.processor.metrics import names as M
from llmpulse.processor.service import ProcessorService
from llmpulse.testing.fake_provider import FakeProvider, FakeReply
from llmpulse.testing.polling import wait_until_async
from tests.processor.conftest import ServiceFactory


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


def _tracer_provider(service: ProcessorService, resource: dict[str, str] | None = None) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create(resource or {}))
    exporter = OTLPSpanExporter(endpoint=f"localhost:{service.grpc.port}", insecure=True)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


async def test_official_genai_openai_instrumentation(
    service: ProcessorService, fake_provider: FakeProvider
) -> None:
    tracer_provider = _tracer_provider(
        service, {"service.name": "shop", "deployment.environment.name": "prod"}
    )
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        fake_provider.enqueue(
            FakeReply(text="hello", input_tokens=11, output_tokens=7),
            FakeReply(text="again", input_tokens=13, output_tokens=5),
        )
        client = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="test", max_retries=0)

        def two_calls() -> None:
            for _ in range(2):
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                )

        await asyncio.to_thread(two_calls)
    finally:
        instrumentor.uninstrument()
        await asyncio.to_thread(tracer_provider.shutdown)
    labels = {
        "service": "shop",
        "deployment_environment": "prod",
        "feature": "unknown",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "operation": "chat",
    }
    get = service.registry.get_sample_value
    assert get(M.REQUESTS_TOTAL, {**labels, "finish_reason": "stop", "outcome": "ok"}) == 2
    assert get(M.TOKENS_TOTAL, {**labels, "token_type": "input"}) == 24
    assert get(M.TOKENS_TOTAL, {**labels, "token_type": "output"}) == 12
    # the official instrumentation reports no cost: the processor prices the calls (gpt-4o-mini)
    version = PricingTable.load().version
    cost = get(M.COST_USD_TOTAL, {**labels, "pricing_version": version})
    assert cost == pytest.approx(24 * 0.15e-6 + 12 * 0.6e-6, rel=1e-12)
    assert get(M.UNPRICED_REQUESTS_TOTAL, labels) == 0


async def test_anthropic_sdk_own_span_is_counted_once(
    make_service: ServiceFactory, fake_provider: FakeProvider
) -> None:
    service = await make_service(dedup_hold=0.05)
    tracer_provider = _tracer_provider(service)
    fake_provider.enqueue(FakeReply(text="hello", input_tokens=9, output_tokens=4))
    client = anthropic.Anthropic(
        base_url=fake_provider.base_url,
        api_key="test",
        max_retries=0,
        open_telemetry={"tracer_provider": tracer_provider},
    )

    def one_call() -> None:
        client.messages.create(
            model="claude-haiku-5-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )

    try:
        await asyncio.to_thread(one_call)
    finally:
        await asyncio.to_thread(tracer_provider.shutdown)
    get = service.registry.get_sample_value
    await wait_until_async(lambda: (get(M.SPANS_ACCEPTED_TOTAL, {"kind": "llm"}) or 0) >= 1)
    labels = {
        "service": Resource.create().attributes["service.name"],  # the SDK's default, kept as is
        "deployment_environment": "",
        "feature": "unknown",
        "provider": "anthropic",
        "model": "claude-haiku-5-5",
        "operation": "chat",
    }
    assert get(M.REQUESTS_TOTAL, {**labels, "finish_reason": "stop", "outcome": "ok"}) == 1
    assert get(M.TOKENS_TOTAL, {**labels, "token_type": "output"}) == 4
    assert get(M.UNPRICED_REQUESTS_TOTAL, labels) == 1  # a model the table does not know
    assert get(M.SPANS_ACCEPTED_TOTAL, {"kind": "duplicate"}) == 0
