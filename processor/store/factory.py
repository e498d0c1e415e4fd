"""Open the store where the configuration says: a SQLite file path, or a PostgreSQL URL."""

from __future__ import annotations

import sqlite3

from llmpulse.contract.redaction import Redactor
from llmpulse.processor.quality.chart_store import ChartStore
from llmpulse.processor.quality.store import FlaggedStore
from llmpulse.processor.store.protocols import StateStore, StoreUnavailable
from llmpulse.processor.store.sessions import SqliteSessions
from llmpulse.processor.store.sqlite_budget import SqliteBudgetLedger
from llmpulse.processor.store.sqlite_references import SqliteReferences

__all__ = ["URL_SCHEMES", "is_url", "open_store"]

URL_SCHEMES = ("postgresql://", "postgres://")


def is_url(location: str) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than a SQLite file."""
    return location.startswith(URL_SCHEMES)


def open_store(
    location: str,
    *,
    retention_days: float = 30.0,
    retention_rows: int = 100_000,
    redactor: Redactor | None = None,
) -> StateStore:
    """The store at ``location``: PostgreSQL for a ``postgresql://`` URL (schema migrated),
    else the SQLite file at that path (``":memory:"`` for a throwaway one)."""
    if is_url(location):
        from llmpulse.processor.store.postgres import open_postgres

        return open_postgres(
            location, retention_days=retention_days, retention_rows=retention_rows, redactor=redactor
        )
    try:
        flagged = FlaggedStore(
            location, retention_days=retention_days, retention_rows=retention_rows, redactor=redactor
        )
        return StateStore(
            flagged,
            ChartStore(location),
            SqliteBudgetLedger(location),
            SqliteReferences(location),
            SqliteSessions(location, retention_days=retention_days, redactor=redactor),
            location,
        )
    except (sqlite3.Error, OSError) as exc:
        raise StoreUnavailable(f"cannot open the SQLite store at {location}: {exc}") from None
