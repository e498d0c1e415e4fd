"""Fixtures of the quality-engine tests: a fake provider, a fresh registry, sample factories."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.registry import CollectorRegistry

from llmpulse.processor.quality.settings import JudgeSettings
from llmpulse.processor.quality.types import QualitySample
from llmpulse.testing.clock import FakeClock
from llmpulse.testing.fake_provider import FakeProvider

_ids = itertools.count(1)


def trace_id(n: int) -> bytes:
    """A 16-byte trace id whose low bits are spread evenly (as random W3C ids are)."""
    return ((n * 0x9E3779B97F4A7C15_5BD1E995) % (1 << 128)).to_bytes(16, "big")


def make_sample(**overrides: Any) -> QualitySample:
    """A content-carrying chat sample; any field can be overridden."""
    n = next(_ids)
    fields: dict[str, Any] = {
        "trace_id": trace_id(n),
        "span_id": n.to_bytes(8, "big"),
        "feature": "support",
        "model": "gpt-4o-mini",
        "provider": "openai",
        "response_id": f"chatcmpl-{n}",
        "input_messages": [
            {"role": "user", "parts": [{"type": "text", "content": "How do I reset my password?"}]}
        ],
        "output_text": "Open Settings, choose Security, then Reset password.",
        "finish_reason": "stop",
        "input_tokens": 20,
        "output_tokens": 12,
        "duration_s": 0.8,
        "cost_usd": 0.0001,
        "timestamp": 1_764_000_000.0 + n,
    }
    fields.update(overrides)
    return QualitySample(**fields)


@pytest.fixture
def sample_factory() -> Callable[..., QualitySample]:
    return make_sample


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def judge_client() -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for judges in tests.

    Keep-alive is off: the fake provider's keep-alive answers wait on the peer's delayed ACK
    (about 40 ms a call); fresh connections answer in about 3 ms.
    """
    client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0))
    yield client
    await client.aclose()


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fp:
        yield fp


@pytest.fixture
def judge_settings(provider: FakeProvider) -> JudgeSettings:
    """A judge pointed at the fake provider, generous limits, fast backoff."""
    return JudgeSettings(
        base_url=provider.openai_base_url,
        model="gpt-4o-mini",
        api_key="test-key",
        timeout_s=5.0,
        max_retries=2,
        backoff_s=0.001,
        backoff_max_s=0.01,
        requests_per_second=10_000.0,
        burst=1000,
        workers=2,
    )


@pytest.fixture
def sleep_clock() -> FakeClock:
    """The clock :func:`fake_sleep` moves."""
    return FakeClock()


@pytest.fixture
def sleeps(sleep_clock: FakeClock) -> list[float]:
    """Delays requested from :func:`fake_sleep`."""
    return sleep_clock.slept


@pytest.fixture
def fake_sleep(sleep_clock: FakeClock) -> Callable[[float], Awaitable[None]]:
    """Stands in for asyncio.sleep: records the delay, waits for nothing."""
    return sleep_clock.sleep
