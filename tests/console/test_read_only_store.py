"""The console on a store it may only read (a read-only PostgreSQL role, as a team gives a
console that should not write): every page works, a label is refused with 409 in one line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from starlette.testclient import TestClient

from llmpulse.console.app import Console, create_app
from llmpulse.console.settings import ConsoleSettings
from llmpulse.console.sources import AlertmanagerClient, PrometheusClient
from llmpulse.processor.store.factory import open_store
from tests.console.test_console_parts import CLOSED, _record


def test_a_read_only_store_serves_pages_and_refuses_labels(new_pg_database: Callable[[], str]) -> None:
    url = new_pg_database()
    writer = open_store(url)
    sample = writer.flagged.add(_record("bad"))
    database = url.rsplit("/", 1)[1]
    role = f"ro_{database}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"')
        conn.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
        conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
    read_only_url = url.replace("://llmpulse@", f"://{role}@", 1)
    assert read_only_url != url
    reader = open_store(read_only_url)
    settings = ConsoleSettings(db_path=read_only_url, prometheus_url=CLOSED, alertmanager_url=CLOSED)
    console = Console(
        settings,
        store=reader.flagged,
        prometheus=PrometheusClient(CLOSED, timeout=1.0),
        alertmanager=AlertmanagerClient(CLOSED, timeout=1.0),
    )
    client = TestClient(create_app(console), base_url="http://127.0.0.1:9470", follow_redirects=False)
    assert client.get("/").status_code == 200
    assert client.get("/judge").status_code == 200
    exported: list[Any] = client.get("/export.jsonl").text.splitlines()
    assert exported == []  # nothing labelled yet
    refused = client.post(f"/samples/{sample}/label", data={"label": "good"})
    assert refused.status_code == 409, refused.text
    assert (
        refused.text.startswith("the quality database is read-only here") and "\n" not in refused.text.strip()
    )
    stored = writer.flagged.get(sample)
    assert stored is not None and stored.label is None  # nothing was written
