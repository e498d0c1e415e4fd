"""Two quality engines on one PostgreSQL store (``store_url``), as two replicas would run:
one judge budget between them, and flagged samples either one stores visible to the other."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
from prometheus_client.registry import CollectorRegistry

from llmpulse.processor.engines import quality_settings
from llmpulse.processor.quality.engine import QualityEngine
from llmpulse.processor.quality.judge import LLMJudge
from llmpulse.processor.quality.settings import JudgeSettings, QualitySettings
from llmpulse.processor.quality.status import quality_status
from llmpulse.processor.quality.types import QualitySample
from llmpulse.processor.settings import ConfigError
from llmpulse.stack.components import free_port
from llmpulse.testing.clock import FakeClock
from llmpulse.testing.fake_provider import FakeProvider, FakeReply

BAD = '{"correctness": 1, "completeness": 2, "tone": 4, "explanation": "Wrong product."}'
START = 1_764_000_000.0


@pytest.fixture
def url(new_pg_database: Callable[[], str]) -> str:
    return new_pg_database()


@pytest.fixture
def engines(
    url: str,
    judge_settings: JudgeSettings,
    judge_client: httpx.AsyncClient,
    fake_sleep: Callable[[float], Awaitable[None]],
) -> Iterator[list[QualityEngine]]:
    budgeted = dataclasses.replace(judge_settings, daily_token_budget=1500, daily_usd_budget=1.0)
    settings = QualitySettings(judge=budgeted, store_url=url, db_path="/nonexistent/not-used.db")
    clock = FakeClock(START)
    made = [
        QualityEngine(
            settings,
            registry=CollectorRegistry(),
            judge=LLMJudge(settings.judge, sleep=fake_sleep, client=judge_client),
            clock=clock,
            monotonic=clock,
        )
        for _ in range(2)
    ]
    yield made


async def test_two_engines_spend_one_budget_and_share_flagged_samples(
    engines: list[QualityEngine], provider: FakeProvider, sample_factory: Callable[..., QualitySample]
) -> None:
    provider.set_default(FakeReply(text=BAD, input_tokens=600, output_tokens=50))
    first, second = engines
    for engine in engines:
        await engine.start()
    judged = [
        await engine.judge_one(sample_factory()) is not None for engine in (first, second, first, second)
    ]
    assert judged == [True, True, True, False]  # 650 tokens a call: the third crosses 1500 for both
    assert await first.judge_one(sample_factory()) is None
    status = quality_status(second)
    assert status["judge"]["spent_today"]["tokens"] == 3 * 650  # type: ignore[index]
    await first.drain(5.0)
    await second.drain(5.0)
    stored = second.store.query(limit=None)
    assert len(stored) == 3 and {s.record.judge_verdict for s in stored} == {"bad"}
    assert first.store.count() == 3
    for engine in engines:
        await engine.stop()


def test_the_store_url_comes_from_the_environment_and_a_bad_one_is_named() -> None:
    url = f"postgresql://llmpulse:pw@127.0.0.1:{free_port()}/nowhere"
    settings = quality_settings({"db_path": "q.db"}, {"LLMPULSE_STORE_URL": url})
    assert settings.store_url == url
    with pytest.raises(ConfigError, match=r"with LLMPULSE_STORE_URL.*store_url must be a postgresql:// URL"):
        quality_settings({}, {"LLMPULSE_STORE_URL": "mysql://h/db"})
