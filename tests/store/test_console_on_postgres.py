"""The triage console on the PostgreSQL store: it lists and labels what a processor replica
stored, and a store that is down is a page that says so, not a crash."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from llmpulse.console.app import Console, create_app
from llmpulse.console.cli import register, settings_from
from llmpulse.console.settings import ConsoleSettings
from llmpulse.console.sources import AlertmanagerClient, PrometheusClient
from llmpulse.processor.quality.store import FlaggedRecord
from llmpulse.processor.store.factory import open_store
from llmpulse.processor.store.sessions import SessionRecord, SessionVerdict, TurnRecord
from llmpulse.stack import components

CLOSED = f"http://127.0.0.1:{components.free_port()}"  # nothing listens here


def console_client(location: str) -> tuple[Console, TestClient]:
    settings = ConsoleSettings(db_path=location, prometheus_url=CLOSED, alertmanager_url=CLOSED)
    console = Console(
        settings,
        prometheus=PrometheusClient(CLOSED, timeout=1.0),
        alertmanager=AlertmanagerClient(CLOSED, timeout=1.0),
    )
    return console, TestClient(create_app(console), base_url="http://127.0.0.1:9470", follow_redirects=False)


def test_the_console_labels_samples_in_the_shared_store(new_pg_database: Callable[[], str]) -> None:
    url = new_pg_database()
    with open_store(url) as replica:
        sample = replica.flagged.add(
            FlaggedRecord(
                feature="chat",
                model="m",
                trace_id=b"\x01" * 16,
                sources=("judge",),
                reasons=("low_overall",),
                created=time.time(),
                judge_verdict="bad",
                output="a wrong answer",
                service="shop",
            )
        )
    console, client = console_client(url)
    try:
        assert client.post(f"/samples/{sample}/label", data={"label": "bad"}).status_code == 303
        lines = client.get("/export.jsonl").text.splitlines()
        assert len(lines) == 1 and '"label": "bad"' in lines[0]
    finally:
        console.close()
    with open_store(url) as other:  # another process sees the console's label
        assert other.flagged.agreement() == {("shop", "chat"): (1, 1)}


def test_a_store_that_is_down_is_reported_and_the_url_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"postgresql://llmpulse:hunter2@127.0.0.1:{components.free_port()}/x"
    console, client = console_client(url)
    try:
        assert console.store() is None
        assert console.store_problem is not None and "hunter2" not in console.store_problem
        assert "cannot open the PostgreSQL store" in console.store_problem
        assert client.post("/samples/1/label", data={"label": "bad"}).status_code == 503
    finally:
        console.close()
    monkeypatch.setenv("LLMPULSE_STORE_URL", url)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    assert settings_from(parser.parse_args(["console", "--db", "ignored.db"])).db_path == url


def test_sessions_in_the_shared_store_on_the_console_and_the_cli(new_pg_database: Callable[[], str]) -> None:
    url = new_pg_database()
    turns = tuple(
        TurnRecord(bytes([n + 1]) * 16, f"question {n} <b>", f"answer {n}", 1.8e9 + n, 0.5) for n in range(2)
    )
    with open_store(url) as replica:
        sid = replica.sessions.add_session(
            SessionRecord("shop", "chat", "conv-pg", 1.8e9, 1.8e9 + 2, 2, turns[-1].trace_id, turns)
        )
        replica.sessions.set_verdict(
            "shop", turns[-1].trace_id, SessionVerdict("good", 4.5, {"goal_met": 5.0})
        )
        sample = replica.flagged.add(
            FlaggedRecord("chat", "m", turns[0].trace_id, ("check",), ("empty",), time.time(), service="shop")
        )
    console, client = console_client(url)
    try:
        page = client.get(f"/samples/{sample}").text
        assert f'href="/sessions/{sid}"' in page
        session_page = client.get(f"/sessions/{sid}").text
        assert session_page.index("question 0 &lt;b&gt;") < session_page.index("question 1 &lt;b&gt;")
        assert "good</span>, overall 4.50" in session_page
        assert f'href="/samples/{sample}"' in session_page
        assert "conv-pg" in client.get("/sessions?service=shop").text
    finally:
        console.close()
    shown = subprocess.run(
        [sys.executable, "-m", "llmpulse.cli", "sessions", "show", str(sid), "--store-url", url, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert [t["user"] for t in view["transcript"]] == ["question 0 <b>", "question 1 <b>"]
    assert view["verdict"]["verdict"] == "good"
