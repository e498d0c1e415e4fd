"""Shared fixtures: one fake provider per session, a fresh in-memory exporter per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

try:
    import anthropic
    import openai
except ImportError as exc:  # pragma: no cover - a missing component is a failure, not a skip
    raise ImportError(f"{exc}: install the dev extra: .venv/bin/pip install -e '.[dev]'") from exc

from llmpulse.contract import attributes as A
from llmpulse.instrumentation import Settings, instrument, uninstrument
from llmpulse.testing.fake_provider import FakeProvider


@pytest.fixture(scope="session")
def _provider_server() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture
def provider(_provider_server: FakeProvider) -> Iterator[FakeProvider]:
    _provider_server.clear()
    _provider_server.set_handler(None)
    yield _provider_server
    _provider_server.clear()


class Spans:
    """The spans one test produced, with helpers to pick them."""

    def __init__(self, exporter: InMemorySpanExporter, tracer_provider: TracerProvider) -> None:
        self.exporter = exporter
        self.tracer_provider = tracer_provider

    def all(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def llm(self) -> list[ReadableSpan]:
        return [s for s in self.all() if (s.attributes or {}).get(A.SPAN_KIND) == A.SPAN_KIND_LLM]

    def one_llm(self) -> ReadableSpan:
        spans = self.llm()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]


@pytest.fixture
def make_spans() -> Iterator[Callable[..., Spans]]:
    """Instrument with the given settings; uninstrument at teardown."""
    active: list[bool] = []

    def make(**settings: Any) -> Spans:
        exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        instrument(tracer_provider=tracer_provider, settings=Settings(**settings))
        active.append(True)
        return Spans(exporter, tracer_provider)

    yield make
    if active:
        uninstrument()


@pytest.fixture
def spans(make_spans: Callable[..., Spans]) -> Spans:
    return make_spans()


@pytest.fixture
def oai(provider: FakeProvider) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=provider.openai_base_url, api_key="test", max_retries=0) as client:
        yield client


@pytest.fixture
async def aoai(provider: FakeProvider) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=provider.openai_base_url, api_key="test", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(provider: FakeProvider) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=provider.base_url, api_key="test", max_retries=0) as client:
        yield client


@pytest.fixture
async def aclaude(provider: FakeProvider) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=provider.base_url, api_key="test", max_retries=0) as client:
        yield client
