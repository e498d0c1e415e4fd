"""Rate limit and circuit breaker on a hand-moved clock; the store's concurrent reads."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from llmpulse.processor.quality.guards import CircuitBreaker, DailyBudget, RateLimiter
from llmpulse.processor.quality.store import FlaggedRecord, FlaggedStore
from llmpulse.testing.clock import FakeClock


async def test_rate_limiter_allows_a_burst_then_spaces_calls() -> None:
    clock = FakeClock(1000.0)
    waits = clock.slept
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock, sleep=clock.sleep)
    assert [await limiter.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await limiter.acquire() == 0.5  # 2 per second once the burst is spent
    clock.now += 10  # idle time refills up to the burst, not beyond
    assert [await limiter.acquire() for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]
    assert waits == [0.5, 0.5]


def test_breaker_lets_one_trial_through_when_half_open() -> None:
    clock = FakeClock(1000.0)
    breaker = CircuitBreaker(failures=2, cooldown_s=30, clock=clock)
    breaker.record(False)
    assert breaker.allow() and not breaker.is_open
    breaker.record(False)
    assert breaker.is_open and not breaker.allow()
    clock.now += 30
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.record(False)  # the trial failed: open for another cooldown
    assert breaker.is_open and not breaker.allow()
    clock.now += 30
    assert breaker.allow()
    breaker.record(True)
    assert breaker.allow() and breaker.allow()


def test_budget_of_zero_allows_nothing() -> None:
    assert not DailyBudget(max_tokens=0, max_usd=1.0).allows()
    assert not DailyBudget(max_tokens=10, max_usd=0.0).allows()


def test_readers_are_not_blocked_by_an_open_write_transaction(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    record = FlaggedRecord("f", "m", b"\x02" * 16, ("check",), ("truncated",), created=1.0)
    with FlaggedStore(path) as store:
        store.add(record)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute(
        "INSERT INTO flagged (created, feature, model, trace_id, sources, reasons, scores)"
        " VALUES (2.0, 'f', 'm', '00', '[]', '[]', '{}')"
    )
    with FlaggedStore(path) as reader:  # WAL: sees the committed row at once, not the pending one
        assert [s.record.reasons for s in reader.query(limit=None)] == [("truncated",)]
        assert reader.path == str(path)
    writer.execute("COMMIT")
    writer.close()
    with FlaggedStore(path) as reader:
        assert reader.count() == 2


def test_add_many_writes_one_transaction_redacted_and_all_or_nothing(tmp_path: Path) -> None:
    records = [
        FlaggedRecord(
            "f",
            "m",
            bytes([i]) * 16,
            ("check",),
            ("truncated",),
            created=float(i),
            output=f"mail me at u{i}@x.org",
        )
        for i in range(3)
    ]
    with FlaggedStore(tmp_path / "q.db") as store:
        store.add_many(records)
        stored = store.query(limit=None)
        assert sorted(s.record.created for s in stored) == [0.0, 1.0, 2.0]
        assert all("@x.org" not in (s.record.output or "") for s in stored)  # redacted like add()
        broken = FlaggedRecord("f", "m", b"\x09" * 16, ("check",), ("truncated",), created=9.0)
        object.__setattr__(broken, "feature", object())  # not bindable: the insert fails mid-batch
        with pytest.raises(sqlite3.Error):
            store.add_many([records[0], broken])
        assert store.count() == 3  # the batch was rolled back whole


def test_a_store_file_from_before_the_scope_columns_gains_them_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(  # the flagged table as llmpulse wrote it before the scope columns
        "CREATE TABLE flagged (id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL,"
        " service TEXT NOT NULL DEFAULT 'unknown_service', feature TEXT NOT NULL, model TEXT NOT NULL,"
        " provider TEXT NOT NULL DEFAULT '', trace_id TEXT NOT NULL, span_id TEXT NOT NULL DEFAULT '',"
        " response_id TEXT, sources TEXT NOT NULL, reasons TEXT NOT NULL, scores TEXT NOT NULL,"
        " judge_verdict TEXT, explanation TEXT, input TEXT, system_instructions TEXT, output TEXT,"
        " label TEXT, label_note TEXT, labelled_at REAL);"
        " INSERT INTO flagged (created, feature, model, trace_id, sources, reasons, scores)"
        " VALUES (1, 'support', 'gpt-4o-mini', '" + "00" * 16 + "', '[\"judge\"]', '[]', '{}');"
    )
    db.close()
    with FlaggedStore(path) as store:
        (old,) = store.query(limit=None)
        assert old.record.model == "gpt-4o-mini" and old.record.prompt_version is None
        new = store.add(dataclasses.replace(old.record, prompt_version="v2", query_category="refunds"))
        got = store.get(new)
        assert got is not None and (got.record.prompt_version, got.record.query_category) == ("v2", "refunds")
