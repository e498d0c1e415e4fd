"""Frozen references survive a restart through save_state / load_state."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from llmpulse.contract.attributes import UNKNOWN_SERVICE
from llmpulse.processor.drift.embedders import HashedNgramEmbedder
from llmpulse.processor.drift.engine import DriftEngine, DriftSample, DriftSettings
from llmpulse.processor.drift.synthetic import SyntheticStream

Feed = Callable[..., None]


def _feed(engine: DriftEngine, stream: SyntheticStream, n: int, shift: float = 0.0) -> None:
    for call in stream.calls(n, shift=shift):
        engine.observe(DriftSample("support", call.text, call.response_length, call.finish_reason))
    engine.run_once()


def test_a_restart_keeps_the_old_normal(
    engine: DriftEngine, settings: DriftSettings, feed: Feed, tmp_path: Path
) -> None:
    stream = SyntheticStream(21)
    feed(stream, 200)
    feed(stream, 400)  # the similarity chart has its baseline too
    engine.observe(DriftSample("collecting", "a feature without a reference yet"))
    engine.run_once()
    path = tmp_path / "drift.npz"
    assert engine.save_state(path) == 1  # only frozen references are saved
    before = engine._features[(UNKNOWN_SERVICE, "support")]

    registry = CollectorRegistry()
    restarted = DriftEngine(registry=registry, settings=settings)
    assert restarted.load_state(path) == 1
    after = restarted._features[(UNKNOWN_SERVICE, "support")]
    assert after.reference is not None and before.reference is not None
    assert (after.reference == before.reference).all()
    assert after.ref_lengths == before.ref_lengths and after.ref_reasons == before.ref_reasons
    assert after.chart.baseline == before.chart.baseline
    assert restarted.status("support")["state"] == "monitoring"
    assert (
        registry.get_sample_value(
            "llmpulse_drift_reference_samples", {"service": UNKNOWN_SERVICE, "feature": "support"}
        )
        == 200
    )
    # A drift that starts around the restart is still measured against the saved reference.
    _feed(restarted, stream, 200, shift=0.5)
    labels = {"service": UNKNOWN_SERVICE, "feature": "support", "signal": "input"}
    assert registry.get_sample_value("llmpulse_drift_drifted", labels) == 1


def test_state_from_another_embedder_or_a_bad_file_is_ignored(
    engine: DriftEngine, feed: Feed, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    feed(SyntheticStream(22), 200)
    path = tmp_path / "drift.npz"
    engine.save_state(path)
    other = DriftEngine(registry=CollectorRegistry(), embedder=_Renamed())
    with caplog.at_level(logging.WARNING, logger="llmpulse.processor.drift.persist"):
        assert other.load_state(path) == 0
        assert "made with embedder hashed, not renamed" in caplog.text
        smaller = DriftEngine(registry=CollectorRegistry(), embedder=HashedNgramEmbedder(dimensions=64))
        assert smaller.load_state(path) == 0
        assert "holds 512-dimensional vectors, the embedder makes 64" in caplog.text
        assert other.load_state(tmp_path / "missing.npz") == 0
        (tmp_path / "bad.npz").write_bytes(b"not an npz file")
        assert other.load_state(tmp_path / "bad.npz") == 0
        assert "ignoring unreadable state file" in caplog.text
    assert other.features() == []


class _Renamed(HashedNgramEmbedder):
    name = "renamed"


def test_a_reference_saved_before_per_service_state_is_taken_over_by_the_first_service(
    engine: DriftEngine, settings: DriftSettings, feed: Feed, tmp_path: Path
) -> None:
    stream = SyntheticStream(22)
    feed(stream, 200)
    before = engine._features[(UNKNOWN_SERVICE, "support")]
    before.service = ""  # what a file written before drift state was kept per service reads as
    path = tmp_path / "drift.npz"
    assert engine.save_state(path) == 1

    restarted = DriftEngine(registry=CollectorRegistry(), settings=settings)
    assert restarted.load_state(path) == 1
    assert restarted.features() == []  # waiting for a service
    restarted.observe(DriftSample("support", "how do I reset my password", service="shop"))
    restarted.run_once()
    after = restarted._features[("shop", "support")]
    assert after.frozen and after.reference is not None and before.reference is not None
    assert (after.reference == before.reference).all()
    assert restarted.features() == [("shop", "support")]
    resaved = tmp_path / "again.npz"
    assert restarted.save_state(resaved) == 1
    again = DriftEngine(registry=CollectorRegistry(), settings=settings)
    assert again.load_state(resaved) == 1 and again.features() == [("shop", "support")]
