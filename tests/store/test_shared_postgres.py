"""Several processes on one PostgreSQL store, the schema migrations, and what a bad URL gives.

Each process is a real child Python process (``replica_child.py``) or the real ``llmpulse``
CLI, on the session's PostgreSQL cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from llmpulse.processor.store.factory import is_url, open_store
from llmpulse.processor.store.migrations import MIGRATIONS
from llmpulse.processor.store.protocols import StoreSchemaError, StoreUnavailable
from llmpulse.stack.components import free_port

CHILD = Path(__file__).with_name("replica_child.py")
LLMPULSE = Path(sys.executable).with_name("llmpulse")


def start_child(url: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), url, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def result(child: subprocess.Popen[str]) -> object:
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    return json.loads(out)


def run_child(url: str, *args: object) -> object:
    return result(start_child(url, *args))


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LLMPULSE), *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def migrations_table(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return [(int(v), str(n)) for v, n in conn.execute("SELECT version, name FROM schema_migrations")]


def test_migrations_apply_once_and_opening_again_applies_nothing(new_pg_database: Callable[[], str]) -> None:
    url = new_pg_database()
    open_store(url).close()
    open_store(url).close()
    assert migrations_table(url) == [(v, name) for v, name, _ in MIGRATIONS]


def test_a_database_at_version_2_gains_the_scope_columns_and_keeps_its_rows(
    new_pg_database: Callable[[], str],
) -> None:
    url = new_pg_database()
    with psycopg.connect(url) as conn:  # what an llmpulse before migration 3 left behind
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied DOUBLE PRECISION NOT NULL)"
        )
        for version, name, sql in MIGRATIONS[:2]:
            conn.execute(sql)
            conn.execute("INSERT INTO schema_migrations VALUES (%s, %s, 0)", (version, name))
        conn.execute(
            "INSERT INTO flagged (created, feature, model, trace_id, sources, reasons, scores)"
            " VALUES (1, 'support', 'gpt-4o-mini', %s, '[\"judge\"]', '[]', '{}')",
            ("00" * 16,),
        )
    with open_store(url) as state:
        (old,) = state.flagged.query(limit=None)
        assert old.record.model == "gpt-4o-mini" and old.record.prompt_version is None
    assert [v for v, _ in migrations_table(url)] == [v for v, _, _ in MIGRATIONS]
    assert MIGRATIONS[2][0] == 3  # the migration this test is about (later ones apply too)


def test_a_database_at_version_4_gains_owner_epochs_and_keeps_its_charts_and_references(
    new_pg_database: Callable[[], str],
) -> None:
    url = new_pg_database()
    with psycopg.connect(url) as conn:  # what an llmpulse before migration 5 left behind
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied DOUBLE PRECISION NOT NULL)"
        )
        for version, name, sql in MIGRATIONS[:4]:
            conn.execute(sql)
            conn.execute("INSERT INTO schema_migrations VALUES (%s, %s, 0)", (version, name))
        conn.execute("INSERT INTO spc_charts VALUES ('shop', 'support', 'error_rate', '{\"index\": 4}', 1)")
        conn.execute("INSERT INTO drift_references VALUES ('shop', 'support', 'v1', 1)")
    key = ("shop", "support")
    with open_store(url) as state:
        assert state.charts.load_charts() == {(*key, "error_rate"): {"index": 4}}
        assert state.references.load_references() == {key: b"v1"}
        assert state.charts.claim([key]) == {key: 1}
        assert state.charts.save_charts({(*key, "error_rate"): {"index": 5}}) == []
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT epoch FROM spc_charts").fetchall() == [(1,)]  # saved under its claim
        assert conn.execute("SELECT epoch FROM drift_references").fetchall() == [(0,)]  # never claimed
    assert [v for v, _ in migrations_table(url)] == [v for v, _, _ in MIGRATIONS]
    assert MIGRATIONS[4][0] == 5  # the migration this test is about


def test_processes_migrating_at_once_all_start(new_pg_database: Callable[[], str]) -> None:
    url = new_pg_database()
    start_at = time.time() + 2.0  # every child is imported and waiting by then
    children = [start_child(url, "open", start_at) for _ in range(3)]
    assert [result(c) for c in children] == ["ok"] * 3
    assert migrations_table(url) == [(v, name) for v, name, _ in MIGRATIONS]


def test_a_schema_from_a_newer_llmpulse_is_refused(new_pg_database: Callable[[], str]) -> None:
    url = new_pg_database()
    open_store(url).close()
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'from the future', 0)")
    latest = MIGRATIONS[-1][0]
    with pytest.raises(
        StoreSchemaError, match=rf"version 999, this llmpulse knows up to {latest}: upgrade llmpulse"
    ):
        open_store(url)


def test_an_unreachable_store_is_one_line_with_the_password_masked() -> None:
    url = f"postgresql://llmpulse:hunter2@127.0.0.1:{free_port()}/llmpulse"
    with pytest.raises(StoreUnavailable) as caught:
        open_store(url)
    message = str(caught.value)
    assert "hunter2" not in message and "llmpulse:***@127.0.0.1" in message
    assert "\n" not in message and "LLMPULSE_STORE_URL" in message
    done = cli("triage", "--store-url", url)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(
        "llmpulse triage: cannot open the PostgreSQL"
    )
    assert "hunter2" not in done.stderr and "Traceback" not in done.stderr


def test_labels_written_by_one_process_are_seen_by_another(new_pg_database: Callable[[], str]) -> None:
    url = new_pg_database()
    ids = run_child(url, "add", 3)
    assert isinstance(ids, list) and len(ids) == 3
    # A second process (the CLI) lists and labels them...
    listed = cli("triage", "--store-url", url, "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(json.loads(line)["id"] for line in listed.stdout.splitlines()) == sorted(ids)
    assert cli("label", str(ids[0]), "bad", "--store-url", url).returncode == 0
    labelled = cli("label", str(ids[1]), "good", env={"LLMPULSE_STORE_URL": url})
    assert labelled.returncode == 0 and labelled.stdout.strip() == f"sample {ids[1]} labelled good"
    # ...and a third sees the labels in the judge agreement.
    assert run_child(url, "agreement") == {"shop/support": [2, 1]}
    exported = cli("export", "--store-url", url)
    assert exported.returncode == 0 and len(exported.stdout.splitlines()) == 2


def test_spc_commands_on_the_shared_store(new_pg_database: Callable[[], str]) -> None:
    url = new_pg_database()
    with open_store(url) as state:
        state.charts.save_charts({("shop", "support", "judge_score"): {"index": 3, "warmup": 20}})
    shown = cli("spc", "--store-url", url, "show")
    assert shown.returncode == 0 and "shop" in shown.stdout and "warming up 0/20" in shown.stdout
    reset = cli("spc", "--store-url", url, "reset", "--feature", "support")
    assert reset.returncode == 0 and "1 saved chart(s) removed" in reset.stdout
    empty = cli("spc", "--store-url", url, "show")
    assert "no SPC charts saved" in empty.stdout and "postgresql://llmpulse@127.0.0.1" in empty.stdout


def test_resets_reach_every_replica_once(new_pg_database: Callable[[], str]) -> None:
    url = new_pg_database()
    with open_store(url) as first, open_store(url) as second:
        first.charts.request_reset("support", service="shop")
        assert first.charts.take_resets() == [("shop", "support", None)]
        assert second.charts.take_resets() == [("shop", "support", None)]
        assert first.charts.take_resets() == second.charts.take_resets() == []
        with open_store(url) as late:  # started after the request: its charts were already deleted
            assert late.charts.take_resets() == []


def test_two_processes_spend_one_judge_budget(store_location: str) -> None:
    """On PostgreSQL, and on one SQLite file shared by two processes."""
    url = store_location
    open_store(url).close()  # the file or the schema exists before the race
    threads, max_tokens, cost = 4, 10_000, 100
    start_at = time.time() + 2.0
    children = [start_child(url, "budget", start_at, threads, max_tokens, cost) for _ in range(2)]
    outcomes = [result(c) for c in children]
    admitted = sum(o["admitted"] for o in outcomes)  # type: ignore[index]
    charged = sum(o["charged"] for o in outcomes)  # type: ignore[index]
    with open_store(url) as state:
        spent, _ = state.budget.spent(20_000)
    assert spent == charged  # every charge counted once: no lost or doubled update
    # One budget, not two: at most the calls that fit plus, at the day's start (no mean cost to
    # reserve yet), one call per thread in flight.
    assert max_tokens <= spent <= max_tokens + 2 * threads * cost, outcomes
    if is_url(url):  # SQLite's busy wait may let one process take every call: still one budget
        assert all(o["admitted"] > 0 for o in outcomes)  # type: ignore[index]
    assert admitted == spent // cost
