"""The drift engine's frozen references through a store (SQLite and PostgreSQL): a replica that
starts on the store resumes the references another one froze."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from llmpulse.processor.drift.embedders import HashedNgramEmbedder
from llmpulse.processor.drift.engine import DriftEngine, DriftSample, DriftSettings
from llmpulse.processor.drift.extension import drift_extension
from llmpulse.processor.drift.synthetic import SyntheticStream
from llmpulse.processor.engines import build_drift
from llmpulse.processor.settings import ConfigError
from llmpulse.processor.store.factory import open_store
from llmpulse.processor.store.protocols import StateStore
from llmpulse.stack.components import free_port

SETTINGS = DriftSettings(permutations=199, batch_size=64, seed=7)  # as tests/drift: fewer permutations


def feed(engine: DriftEngine, stream: SyntheticStream, n: int, shift: float = 0.0) -> None:
    for call in stream.calls(n, shift=shift):
        sample = DriftSample("support", call.text, call.response_length, call.finish_reason, service="shop")
        engine.observe(sample)
    engine.run_once()


def test_a_second_replica_resumes_the_frozen_reference(state: StateStore, store_location: str) -> None:
    first = DriftEngine(registry=CollectorRegistry(), settings=SETTINGS)
    stream = SyntheticStream(31)
    feed(first, stream, 200)
    feed(first, stream, 400)
    assert first.save_state(state.references) == 1
    before = first._features[("shop", "support")]

    registry = CollectorRegistry()
    second = DriftEngine(registry=registry, settings=SETTINGS)
    with open_store(store_location) as other:  # another process's own connection to the store
        assert second.load_state(other.references) == 1
    after = second._features[("shop", "support")]
    assert after.reference is not None and before.reference is not None
    assert (after.reference == before.reference).all() and after.chart.baseline == before.chart.baseline
    assert second.status("support", service="shop")["state"] == "monitoring"
    feed(second, stream, 200, shift=0.5)  # no new warm-up: the drift is measured at once
    labels = {"service": "shop", "feature": "support", "signal": "input"}
    assert registry.get_sample_value("llmpulse_drift_drifted", labels) == 1


def test_references_of_another_embedder_are_ignored(
    state: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    first = DriftEngine(registry=CollectorRegistry(), settings=SETTINGS)
    feed(first, SyntheticStream(32), 200)
    first.save_state(state.references)
    smaller = DriftEngine(registry=CollectorRegistry(), embedder=HashedNgramEmbedder(dimensions=64))
    with caplog.at_level(logging.WARNING, logger="llmpulse.processor.drift.persist"):
        assert smaller.load_state(state.references) == 0
    assert "holds 512-dimensional vectors, the embedder makes 64" in caplog.text
    assert smaller.features() == []


async def test_the_drift_extension_persists_to_the_store_named_by_the_environment(
    new_pg_database: Callable[[], str],
) -> None:
    url = new_pg_database()
    extension = build_drift({"interval_s": 60.0}, {"LLMPULSE_STORE_URL": url})
    assert extension is not None
    await extension.start()  # loads (nothing yet) from the store
    await extension.stop()  # saves (nothing frozen) and closes the store
    engine = DriftEngine(registry=CollectorRegistry(), settings=SETTINGS)
    feed(engine, SyntheticStream(33), 200)
    with open_store(url) as state:
        saving = drift_extension(engine, references=state.references, close_references=state.close)
        await saving.start()
        await saving.stop()
    resumed = DriftEngine(registry=CollectorRegistry(), settings=SETTINGS)
    with open_store(url) as state:
        loading = drift_extension(resumed, references=state.references)
        await loading.start()
        assert resumed.features() == [("shop", "support")]
        await loading.stop()
    with pytest.raises(ConfigError, match=r"\[drift\] store: cannot open the PostgreSQL store"):
        build_drift({}, {"LLMPULSE_STORE_URL": f"postgresql://u@127.0.0.1:{free_port()}/x"})
