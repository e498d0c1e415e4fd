"""The drift engine's key hand-over (a Kafka owner topic moving a (service, feature)): the old
owner saves and forgets the key's reference and gauges, the new owner resumes it from the store."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prometheus_client import CollectorRegistry

from llmpulse.contract.attributes import UNKNOWN_SERVICE
from llmpulse.processor.drift import metric_names as names
from llmpulse.processor.drift.engine import DriftEngine, DriftSample, DriftSettings
from llmpulse.processor.drift.synthetic import SyntheticStream
from llmpulse.processor.store.factory import open_store

KEY = (UNKNOWN_SERVICE, "support")


def test_the_next_owner_resumes_the_frozen_reference(settings: DriftSettings, tmp_path: Path) -> None:
    settings = dataclasses.replace(settings, spc_warmup=20)  # a baseline after 400 samples
    registry = CollectorRegistry()
    engine = DriftEngine(registry=registry, settings=settings)
    store = open_store(str(tmp_path / "state.db"))
    for call in SyntheticStream(5).calls(600):  # reference frozen and the chart's baseline fixed
        assert engine.observe(DriftSample("support", call.text, call.response_length, call.finish_reason))
    engine.run_once()
    before = engine.status("support")
    baseline = engine._features[KEY].chart.baseline
    assert baseline is not None
    labels = {"service": KEY[0], "feature": KEY[1]}
    assert registry.get_sample_value(names.DRIFT_REFERENCE_SAMPLES, labels) == settings.reference_size

    assert engine.release_keys([KEY], store.references) == 1
    assert engine.features() == []
    assert registry.get_sample_value(names.DRIFT_REFERENCE_SAMPLES, labels) is None
    engine.observe(DriftSample("support", "a sample still in flight"))
    engine.run_once()
    assert engine.features() == []  # released: late samples do not bring the key back here
    assert engine.release_keys(None, store.references) == 0

    other_registry = CollectorRegistry()
    other = DriftEngine(registry=other_registry, settings=settings)
    assert other.resume_keys([KEY], store.references) == 1
    after = other.status("support")
    assert after["state"] == "monitoring"
    assert after["reference_frozen_at"] == before["reference_frozen_at"]
    assert after["reference_samples"] == before["reference_samples"]
    assert other._features[KEY].chart.baseline == baseline  # the similarity chart: no new warm-up
    assert other_registry.get_sample_value(names.DRIFT_REFERENCE_SAMPLES, labels) == settings.reference_size
    assert other.release_keys([KEY], store.references) == 0  # unchanged since resumed: not written
    store.close()
