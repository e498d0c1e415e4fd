"""The triage console on the PostgreSQL store: it lists and labels what a processor replica
stored, and a store that is down is a page that says so, not a crash."""

from __future__ import annotations

import argparse
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
