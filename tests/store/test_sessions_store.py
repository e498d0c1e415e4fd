"""Captured sessions in the store, on SQLite and a real PostgreSQL alike (``store_location``)."""

from __future__ import annotations

from dataclasses import replace

import psycopg

from llmpulse.processor.quality.store import FlaggedRecord
from llmpulse.processor.store.factory import open_store
from llmpulse.processor.store.migrations import MIGRATIONS
from llmpulse.processor.store.protocols import SessionTranscripts, StateStore
from llmpulse.processor.store.sessions import SessionRecord, SessionVerdict, TurnRecord

NOW = 1_800_000_000.0


def _trace(n: int) -> bytes:
    return n.to_bytes(16, "big")


def session(
    n: int, turns: int = 3, *, service: str = "shop", text: str = "x", **fields: object
) -> SessionRecord:
    transcript = tuple(
        TurnRecord(
            trace_id=_trace(100 * n + t),
            user=f"question {t} {text}",
            answer=f"answer {t}",
            started=NOW + n + t,
            duration_s=0.5 + t,
            model="gpt-4o-mini",
            llm_calls=1 + t,
            input_tokens=10 * t,
            output_tokens=5 * t,
            cost_usd=0.001 * t,
            error=t == 2,
        )
        for t in range(turns)
    )
    values: dict[str, object] = {
        "service": service,
        "feature": "support",
        "conversation_id": f"conv-{n}",
        "started": NOW + n,
        "ended": NOW + n + turns,
        "turns": turns,
        "last_trace_id": transcript[-1].trace_id if transcript else _trace(100 * n),
        "transcript": transcript,
        "environment": "prod",
        "cost_usd": 0.003,
        "corrections": 1,
        "explicit_feedback": 2,
        "positive_feedback": 1,
    }
    values.update(fields)
    return SessionRecord(**values)  # type: ignore[arg-type]


def test_a_session_round_trips_with_its_turns_in_order_and_content_redacted(state: StateStore) -> None:
    log = state.sessions
    assert isinstance(log, SessionTranscripts)
    record = session(1, text="mail me at bob@example.com")
    sid = log.add_session(record, now=NOW)
    got = log.session(sid)
    assert got is not None and got.id == sid and got.verdict is None
    stored = got.record
    assert [t.trace_id for t in stored.transcript] == [t.trace_id for t in record.transcript]
    assert all("bob@example.com" not in t.user for t in stored.transcript)
    assert stored.transcript[0].user.startswith("question 0 mail me at ")
    # everything but the redacted text reads back exactly
    numbered = [replace(t, user="", number=n) for n, t in record.numbered()]  # numbers from 1, as stored
    assert [replace(t, user="") for t in stored.transcript] == numbered
    assert (stored.conversation_id, stored.environment, stored.turns, stored.corrections) == (
        "conv-1",
        "prod",
        3,
        1,
    )
    assert stored.transcript[2].error is True and stored.transcript[1].error is False
    assert log.session(sid + 1000) is None
    view = got.to_json()
    assert [t["turn"] for t in view["transcript"]] == [1, 2, 3]
    assert view["transcript"][2]["trace_id"] == _trace(102).hex()


def test_verdicts_listing_and_the_link_from_a_trace(state: StateStore) -> None:
    log = state.sessions
    first = log.add_session(session(1), now=NOW)
    second = log.add_session(session(2, service="bank"), now=NOW + 1)
    clipped = log.add_session(replace(session(3), turns=7, turns_clipped=4), now=NOW + 2)
    verdict = SessionVerdict("bad", 2.0, {"goal_met": 1.0, "consistency": 3.0}, "user gave up", NOW + 5)
    assert log.set_verdict("shop", _trace(102), verdict) is True
    assert log.set_verdict("bank", _trace(102), verdict) is False  # the last turn of shop's session
    assert log.set_verdict("shop", _trace(999), verdict) is False
    got = log.session(first)
    assert got is not None and got.verdict == verdict
    assert [s.id for s in log.sessions()] == [clipped, second, first]
    assert [s.id for s in log.sessions(service="bank")] == [second]
    assert [s.id for s in log.sessions(feature="support", limit=1)] == [clipped]
    assert [s.id for s in log.sessions(verdict="bad")] == [first]
    assert [s.id for s in log.sessions(verdict="none")] == [clipped, second]
    assert log.sessions(verdict="good") == []
    assert log.sessions()[0].record.transcript == ()  # listings carry no turns
    assert log.session_of_trace(_trace(201)) == second
    assert log.session_of_trace(_trace(7)) is None
    sample = state.flagged.add(
        FlaggedRecord(
            "support", "gpt-4o-mini", _trace(101), ("judge",), ("low_overall",), NOW, service="shop"
        )
    )
    state.flagged.add(FlaggedRecord("support", "m", _trace(7), ("check",), (), NOW, service="shop"))
    assert log.flagged_in_session(first) == [(sample, '["judge"]')]
    assert log.flagged_in_session(second) == []
    shown = log.session(clipped)
    assert shown is not None
    assert [t["turn"] for t in shown.to_json()["transcript"]] == [5, 6, 7]  # 4 oldest clipped


def test_the_store_is_bounded_by_content_bytes_and_age(state: StateStore) -> None:
    log = state.sessions
    ids = [log.add_session(session(n), now=NOW + n) for n in range(6)]
    size = session(0).content_bytes
    assert size > 0
    # room for three sessions' content: the three oldest go
    assert log.prune_sessions(max_bytes=3 * size, now=NOW) == 3
    assert [s.id for s in log.sessions(limit=None)] == ids[:2:-1]
    assert log.session(ids[0]) is None and log.session_of_trace(_trace(2)) is None  # turns gone too
    # the store's retention age (1 day in this fixture) drops the rest
    assert log.prune_sessions(max_bytes=10**9, now=NOW + 2 * 86400) == 3
    assert log.count_sessions() == 0


def test_postgres_schema_gains_the_session_tables_in_migration_4(new_pg_database: object) -> None:
    url = new_pg_database()  # type: ignore[operator]
    assert MIGRATIONS[3][0] == 4 and "sessions" in MIGRATIONS[3][1]  # later migrations apply too
    with open_store(url) as store:
        store.sessions.add_session(session(1), now=NOW)
    with psycopg.connect(url) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        (turns,) = conn.execute("SELECT COUNT(*) FROM session_turns").fetchone()  # type: ignore[misc]
    assert versions == [v for v, _, _ in MIGRATIONS] and turns == 3
    with open_store(url) as again:  # a second open applies nothing and reads what is there
        assert again.sessions.count_sessions() == 1


def test_a_database_at_version_3_gains_the_session_tables_and_keeps_its_rows(new_pg_database: object) -> None:
    url = new_pg_database()  # type: ignore[operator]
    with psycopg.connect(url) as conn:  # what an llmpulse before migration 4 left behind
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied DOUBLE PRECISION NOT NULL)"
        )
        for version, name, sql in MIGRATIONS[:3]:
            conn.execute(sql)
            conn.execute("INSERT INTO schema_migrations VALUES (%s, %s, 0)", (version, name))
        conn.execute(
            "INSERT INTO flagged (created, feature, model, trace_id, sources, reasons, scores)"
            " VALUES (1, 'support', 'gpt-4o-mini', %s, '[\"judge\"]', '[]', '{}')",
            (_trace(101).hex(),),
        )
    with open_store(url) as state:
        (old,) = state.flagged.query(limit=None)
        sid = state.sessions.add_session(session(1), now=NOW)
        assert state.sessions.flagged_in_session(sid) == [(old.id, '["judge"]')]
