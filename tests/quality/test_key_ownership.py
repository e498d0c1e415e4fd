"""The quality engine's KeyOwner hooks, as a Kafka owner topic moves a (service, feature) between
replicas: ``release`` saves the key's changed charts and removes its SPC gauges, ``resume`` on
another engine on the same store takes the baseline over (no new warm-up)."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from prometheus_client.registry import CollectorRegistry

from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.engine import QualityEngine
from llmpulse.processor.quality.settings import JudgeSettings, QualitySettings, SpcSettings

KEY = ("app", "support")
OTHER = ("app", "search")


def _engine(db: Path) -> tuple[QualityEngine, CollectorRegistry]:
    registry = CollectorRegistry()
    settings = QualitySettings(
        judge=dataclasses.replace(JudgeSettings(), enabled=False),
        spc=SpcSettings(requests_per_window=10, warmup_windows=5),
        db_path=str(db),
    )
    return QualityEngine(settings, registry=registry), registry


def _calls(engine: QualityEngine, key: tuple[str, str], n: int, rng: random.Random) -> None:
    for _ in range(n):
        engine.charts.observe_numbers(key, False, False, rng.gauss(0.5, 0.05), None)


def _centre(registry: CollectorRegistry, key: tuple[str, str]) -> float | None:
    labels = {"service": key[0], "feature": key[1], "statistic": Q.STAT_LATENCY_P95}
    return registry.get_sample_value(Q.SPC_CENTRE, labels)


async def test_a_released_key_is_resumed_by_the_next_owner_with_its_baseline(tmp_path: Path) -> None:
    rng = random.Random(3)
    old, old_registry = _engine(tmp_path / "q.db")
    new, new_registry = _engine(tmp_path / "q.db")
    await old.start()
    await new.start()
    _calls(old, KEY, 70, rng)
    _calls(old, OTHER, 70, rng)
    baseline = old.charts.chart(*KEY, Q.STAT_LATENCY_P95).baseline
    assert baseline is not None and _centre(old_registry, KEY) == baseline.mean

    old.release([KEY])  # its partition moves: saved, forgotten, gauges gone
    assert _centre(old_registry, KEY) is None
    assert _centre(old_registry, OTHER) is not None  # a key it still owns keeps its series
    assert (*KEY, Q.STAT_LATENCY_P95) not in old.charts.states()

    await new.resume([KEY])
    chart = new.charts.chart(*KEY, Q.STAT_LATENCY_P95)
    assert chart.baseline == baseline and not chart.in_warmup
    _calls(new, KEY, 10, rng)  # one point: charted against the old baseline, not a warm-up
    assert _centre(new_registry, KEY) == baseline.mean
    labels = {"service": KEY[0], "feature": KEY[1], "statistic": Q.STAT_LATENCY_P95}
    assert new_registry.get_sample_value(Q.SPC_WARMUP, labels) == 0
    assert (*OTHER, Q.STAT_LATENCY_P95) not in new.charts.states()  # not resumed, not held
    await old.stop()
    await new.stop()


async def test_release_of_everything_saves_nothing_unchanged(tmp_path: Path) -> None:
    rng = random.Random(4)
    owner, _ = _engine(tmp_path / "q.db")
    await owner.start()
    _calls(owner, KEY, 70, rng)
    await owner.tick()  # saved
    saved = owner.chart_store.load_charts()
    late, late_registry = _engine(tmp_path / "q.db")
    await late.start()  # loads every chart, as each replica does at start
    _calls(owner, KEY, 30, rng)
    await owner.tick()  # the owner moves on
    late.release(None)  # the Kafka source's start: nothing changed here, so nothing written over it
    assert owner.chart_store.load_charts() != saved
    assert late.charts.states() == {} and _centre(late_registry, KEY) is None
    await owner.stop()
    await late.stop()


async def test_a_lost_key_is_forgotten_without_writing_over_the_new_owner(tmp_path: Path) -> None:
    rng = random.Random(5)
    old, old_registry = _engine(tmp_path / "q.db")
    new, _ = _engine(tmp_path / "q.db")
    await old.start()
    await new.start()
    _calls(old, KEY, 70, rng)
    await old.tick()  # saved: the baseline the next owner resumes
    _calls(old, KEY, 20, rng)  # charted here after the last save: changed, unsaved
    await new.resume([KEY])  # the group moved on while the old owner's session was expiring
    _calls(new, KEY, 30, rng)
    await new.tick()
    theirs = new.chart_store.load_charts()

    old.release([KEY], save=False)  # the partition was lost, not revoked
    assert old.chart_store.load_charts() == theirs  # the new owner's charts stand
    assert _centre(old_registry, KEY) is None and old.charts.states() == {}
    old.release([KEY])  # and nothing of the key is left to write later
    assert old.chart_store.load_charts() == theirs
    await old.stop()
    assert new.chart_store.load_charts() == theirs  # its stop saved nothing of the key
    await new.stop()
