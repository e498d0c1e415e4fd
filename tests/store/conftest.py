"""Fixtures of the store tests: a fresh store location per test, SQLite or PostgreSQL.

PostgreSQL is the session's throwaway cluster (``postgres_server`` in tests/conftest.py); each
test gets its own database in it (``new_pg_database``), so tests never see each other's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llmpulse.processor.store.factory import open_store
from llmpulse.processor.store.protocols import StateStore


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
