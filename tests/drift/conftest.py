"""Fixtures for the drift engine tests: a fresh registry, small settings and a feeding helper."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from llmpulse.processor.drift.engine import DriftEngine, DriftSample, DriftSettings
from llmpulse.processor.drift.synthetic import SyntheticCall, SyntheticStream
from llmpulse.testing.clock import FakeClock


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def settings() -> DriftSettings:
    # Production sizes (windows of 200) but fewer permutations: p-values down to 1/200.
    return DriftSettings(permutations=199, batch_size=64, seed=7)


@pytest.fixture
def engine(registry: CollectorRegistry, settings: DriftSettings) -> DriftEngine:
    return DriftEngine(registry=registry, settings=settings, clock=FakeClock(1_700_000_000.0))


def _sample(call: SyntheticCall, feature: str) -> DriftSample:
    return DriftSample(feature, call.text, call.response_length, call.finish_reason, 0.0)


@pytest.fixture
def feed(engine: DriftEngine) -> Callable[..., None]:
    """feed(stream, n, feature=..., **call_kwargs): observe n synthetic calls and process them."""

    def _feed(stream: SyntheticStream, n: int, feature: str = "support", **kwargs: object) -> None:
        for call in stream.calls(n, **kwargs):
            assert engine.observe(_sample(call, feature))
        assert engine.run_once() == n

    return _feed
