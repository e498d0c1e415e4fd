"""Save fencing by owner epoch, through the engines, on a real PostgreSQL: a replica that lost a
(service, feature) without knowing it yet (a zombie after a rebalance) cannot write its older SPC
charts or drift reference over the new owner's; its refused saves are counted by reason."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from llmpulse.contract.attributes import UNKNOWN_SERVICE
from llmpulse.processor.drift import metric_names as D
from llmpulse.processor.drift.engine import DriftEngine, DriftSample, DriftSettings
from llmpulse.processor.drift.synthetic import SyntheticStream
from llmpulse.processor.metrics.names import SAVE_REFUSED_STALE_OWNER
from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.chart_store import CHARTS_STATE
from llmpulse.processor.quality.engine import QualityEngine
from llmpulse.processor.quality.settings import JudgeSettings, QualitySettings, SpcSettings
from llmpulse.processor.store import postgres
from llmpulse.processor.store.factory import open_store
from llmpulse.processor.store.fencing import Fence

KEY = ("app", "support")
STALE = {"reason": SAVE_REFUSED_STALE_OWNER}


def _quality(url: str) -> tuple[QualityEngine, CollectorRegistry]:
    registry = CollectorRegistry()
    settings = QualitySettings(
        judge=dataclasses.replace(JudgeSettings(), enabled=False),
        spc=SpcSettings(requests_per_window=10, warmup_windows=5),
        store_url=url,
    )
    return QualityEngine(settings, registry=registry), registry


def _calls(engine: QualityEngine, n: int, rng: random.Random, latency: float) -> None:
    for _ in range(n):
        engine.charts.observe_numbers(KEY, False, False, rng.gauss(latency, 0.05), None)


async def test_the_old_owners_late_chart_save_is_refused_and_the_new_owners_charts_survive(
    new_pg_database: Callable[[], str],
) -> None:
    url = new_pg_database()
    rng = random.Random(11)
    old, old_registry = _quality(url)
    new, new_registry = _quality(url)
    await old.start()
    await new.start()
    await old.resume([KEY])  # the first owner's take-over: claims the key
    _calls(old, 70, rng, 0.5)
    await old.tick()  # saved under its claim: the baseline the next owner resumes
    baseline = old.charts.chart(*KEY, Q.STAT_LATENCY_P95).baseline
    assert baseline is not None

    await new.resume([KEY])  # the old owner's session expired; the group gave the partition on
    assert new.charts.chart(*KEY, Q.STAT_LATENCY_P95).baseline == baseline
    _calls(new, 30, rng, 0.5)
    await new.tick()
    theirs = new.chart_store.load_charts()
    assert new_registry.get_sample_value(Q.SPC_SAVES_REFUSED_TOTAL, STALE) == 0

    _calls(old, 40, rng, 2.0)  # the zombie keeps charting (a shift) and its tick saves
    assert old_registry.get_sample_value(Q.SPC_SAVES_REFUSED_TOTAL, STALE) == 0
    await old.tick()
    refused = old_registry.get_sample_value(Q.SPC_SAVES_REFUSED_TOTAL, STALE)
    assert refused is not None and refused >= 1  # every chart of the key it tried to write
    assert new.chart_store.load_charts() == theirs  # the new owner's charts stand
    old.release([KEY])  # a revocation it learns of late: the save inside it is refused too
    assert old_registry.get_sample_value(Q.SPC_SAVES_REFUSED_TOTAL, STALE) >= refused
    assert new.chart_store.load_charts() == theirs

    _calls(new, 10, rng, 0.5)
    await new.tick()  # the owner's own saves still go through
    assert new.chart_store.load_charts() != theirs
    assert new_registry.get_sample_value(Q.SPC_SAVES_REFUSED_TOTAL, STALE) == 0
    await old.stop()
    await new.stop()


def test_the_old_owners_late_reference_save_is_refused(new_pg_database: Callable[[], str]) -> None:
    url = new_pg_database()
    settings = DriftSettings(permutations=199, batch_size=64, seed=7, spc_warmup=20)
    key = (UNKNOWN_SERVICE, "support")
    old_registry, new_registry = CollectorRegistry(), CollectorRegistry()
    old = DriftEngine(registry=old_registry, settings=settings)
    new = DriftEngine(registry=new_registry, settings=settings)
    with open_store(url) as old_store, open_store(url) as new_store:
        assert old.resume_keys([key], old_store.references) == 0  # claimed, nothing stored yet
        for call in SyntheticStream(5).calls(600):  # a reference frozen at the old owner
            old.observe(DriftSample("support", call.text, call.response_length, call.finish_reason))
        old.run_once()
        assert old.save_state(old_store.references) == 1
        mine = old_store.references.load_references()

        assert new.resume_keys([key], new_store.references) == 1  # the take-over reads it
        new.refreeze("support", service=UNKNOWN_SERVICE)  # and the new owner moves on: a new reference
        for call in SyntheticStream(6).calls(400):
            new.observe(DriftSample("support", call.text, call.response_length, call.finish_reason))
        new.run_once()
        assert new.save_state(new_store.references) == 1
        theirs = new_store.references.load_references()
        assert theirs.keys() == mine.keys() and theirs != mine

        assert old.save_state(old_store.references) == 0  # the zombie's save: refused, counted
        labels = {"reason": SAVE_REFUSED_STALE_OWNER}
        assert old_registry.get_sample_value(D.DRIFT_SAVES_REFUSED_TOTAL, labels) == 1
        assert new_registry.get_sample_value(D.DRIFT_SAVES_REFUSED_TOTAL, labels) == 0
        assert new_store.references.load_references() == theirs


def test_a_claim_waits_for_a_save_that_passed_its_epoch_check(new_pg_database: Callable[[], str]) -> None:
    """The check and the write are one transaction holding the epoch row FOR SHARE: a take-over's
    claim that comes in between waits until the save commits, so the new owner reads what was
    saved, and never has a save land after its claim."""
    url = new_pg_database()
    open_store(url).close()  # migrated
    old, new = Fence(CHARTS_STATE), Fence(CHARTS_STATE)
    with psycopg.connect(url, autocommit=True) as saver, psycopg.connect(url, autocommit=True) as taker:
        assert old.claim(saver.execute, [KEY], 1.0) == {KEY: 1}
        claimed: dict[tuple[str, str], int] = {}
        with saver.transaction():
            assert old.refused(saver.execute, [KEY], lock=" FOR SHARE") == set()  # the save's check
            thread = threading.Thread(target=lambda: claimed.update(new.claim(taker.execute, [KEY], 2.0)))
            thread.start()
            time.sleep(0.5)
            assert claimed == {}  # the claim waits on the row the save holds
        thread.join(timeout=10)  # the save committed: the claim goes through
        assert claimed == {KEY: 2}
        assert old.refused(saver.execute, [KEY]) == {KEY}  # the old owner's next save is refused


def test_a_claim_ends_a_save_stalled_inside_its_transaction(
    new_pg_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zombie stopped between its save's epoch check and its COMMIT keeps the epoch row locked:
    the claim waits ``CLAIM_LOCK_TIMEOUT_MS``, ends the session idle in its transaction for
    ``STALLED_SAVE_S`` or more, and goes through; the stalled save never commits."""
    monkeypatch.setattr(postgres, "CLAIM_LOCK_TIMEOUT_MS", 300)
    monkeypatch.setattr(postgres, "STALLED_SAVE_S", 0.5)
    url = new_pg_database()
    store = open_store(url)
    old = Fence(CHARTS_STATE)
    try:
        with psycopg.connect(url, autocommit=True) as saver:
            assert old.claim(saver.execute, [KEY], 1.0) == {KEY: 1}
            # its session is ended under it: the save never commits
            with pytest.raises(psycopg.OperationalError), saver.transaction():
                assert old.refused(saver.execute, [KEY], lock=" FOR SHARE") == set()
                time.sleep(0.6)  # stalled: idle in the transaction
                assert store.charts.claim([KEY]) == {KEY: 2}
                saver.execute("SELECT 1")
    finally:
        store.close()
