"""The PostgreSQL schema as numbered migrations, applied at start under an advisory lock.

Every replica calls :func:`migrate` when it opens the store. The first thing it does, inside one
transaction, is take a transaction-scoped advisory lock, so two replicas starting together
apply the migrations one after the other: the second finds them in ``schema_migrations`` and
does nothing. A migration is never edited once released: a change is a new, higher version.
A database migrated by a newer llmpulse (a version this one does not know) is refused.
"""

from __future__ import annotations

import time
from typing import Any

from llmpulse.processor.quality.store import SCOPE_COLUMNS
from llmpulse.processor.store.fencing import OWNERS_TABLE
from llmpulse.processor.store.protocols import StoreSchemaError
from llmpulse.processor.store.sessions import SESSION_TABLES
from llmpulse.processor.store.sqlite_budget import BUDGET_TABLE
from llmpulse.processor.store.sqlite_references import ADD_EPOCH, REFERENCES_TABLE

__all__ = ["ADVISORY_LOCK", "MIGRATIONS", "migrate"]

ADVISORY_LOCK = 0x6C6C6D70  # "llmp": the key of the schema lock
"""The ``pg_advisory_xact_lock`` key held while migrating."""

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "flagged samples, SPC charts and resets, judge budget",
        """
CREATE TABLE flagged (
    id BIGSERIAL PRIMARY KEY,
    created DOUBLE PRECISION NOT NULL,
    service TEXT NOT NULL DEFAULT 'unknown_service',
    feature TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL DEFAULT '',
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL DEFAULT '',
    response_id TEXT,
    sources TEXT NOT NULL,
    reasons TEXT NOT NULL,
    scores TEXT NOT NULL,
    judge_verdict TEXT,
    explanation TEXT,
    input TEXT,
    system_instructions TEXT,
    output TEXT,
    label TEXT,
    label_note TEXT,
    labelled_at DOUBLE PRECISION
);
CREATE INDEX flagged_created ON flagged (created);
CREATE INDEX flagged_service_feature_created ON flagged (service, feature, created);
CREATE TABLE spc_charts (
    service TEXT NOT NULL DEFAULT '',
    feature TEXT NOT NULL,
    statistic TEXT NOT NULL,
    state TEXT NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (service, feature, statistic)
);
CREATE TABLE spc_resets (
    id BIGSERIAL PRIMARY KEY,
    service TEXT,
    feature TEXT NOT NULL,
    statistic TEXT,
    requested DOUBLE PRECISION NOT NULL
);
"""
        + BUDGET_TABLE,
    ),
    (2, "drift references", REFERENCES_TABLE.format(blob="BYTEA")),
    (
        3,
        "flagged samples record response model, prompt, app and RAG index versions, query category",
        "".join(f"ALTER TABLE flagged ADD COLUMN {column} TEXT;\n" for column in SCOPE_COLUMNS),
    ),
    (4, "captured sessions and their turns", SESSION_TABLES.format(id="BIGSERIAL PRIMARY KEY")),
    (
        5,
        "owner epochs per (service, feature); the epoch each chart and reference was saved under",
        f"ALTER TABLE spc_charts ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;\n{ADD_EPOCH};\n{OWNERS_TABLE}",
    ),
)
"""(version, what it does, SQL), in order."""

_TRACKING = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied DOUBLE PRECISION NOT NULL)"
)


def _newer_error(done: set[int], known: set[int]) -> StoreSchemaError:
    return StoreSchemaError(
        f"the store's schema is at version {max(done)}, this llmpulse knows up to {max(known)}:"
        " upgrade llmpulse (a newer version migrated this database)"
    )


def _current(conn: Any) -> bool:
    """Whether the schema is already at this version: read only, so that a user who may only
    read (a console with a read-only role) opens a migrated store without writing anything."""
    with conn.transaction():
        (table,) = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
        if table is None:
            return False
        done = {int(v) for (v,) in conn.execute("SELECT version FROM schema_migrations").fetchall()}
    known = {version for version, _, _ in MIGRATIONS}
    if done - known:
        raise _newer_error(done, known)
    return done >= known


def migrate(conn: Any) -> list[int]:
    """Apply the migrations ``conn``'s database lacks; returns the versions applied (often [])."""
    if _current(conn):
        return []
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK,))
        conn.execute(_TRACKING)
        done = {int(v) for (v,) in conn.execute("SELECT version FROM schema_migrations").fetchall()}
        known = {version for version, _, _ in MIGRATIONS}
        if done - known:
            raise _newer_error(done, known)
        for version, name, sql in MIGRATIONS:
            if version in done:
                continue
            conn.execute(sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied) VALUES (%s, %s, %s)",
                (version, name, time.time()),
            )
            applied.append(version)
    return applied
