"""Fixtures of the store tests: a fresh store location per test, SQLite or PostgreSQL.

PostgreSQL is the session's throwaway cluster (``postgres_server`` in tests/conftest.py); each
test gets its own database in it, so tests never see each other's rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from llmpulse.processor.store.factory import open_store
from llmpulse.processor.store.protocols import StateStore
from llmpulse.stack.postgres import PostgresCluster

_databases = itertools.count(1)


@pytest.fixture
def new_pg_database(postgres_server: PostgresCluster) -> Callable[[], str]:
    """Make an empty database in the session's cluster; returns its URL."""

    def make() -> str:
        name = f"t{next(_databases)}_{id(make) % 10_000}"
        with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return postgres_server.url(name)

    return make


@pytest.fixture(params=["sqlite", "postgres"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store lives: a SQLite file, or a fresh PostgreSQL database (URL)."""
    if request.param == "sqlite":
        return str(tmp_path / "quality.db")
    maker: Callable[[], str] = request.getfixturevalue("new_pg_database")
    return maker()


@pytest.fixture
def state(store_location: str) -> Iterator[StateStore]:
    """The store at ``store_location``, closed after the test."""
    with open_store(store_location, retention_days=1.0, retention_rows=5) as opened:
        yield opened
