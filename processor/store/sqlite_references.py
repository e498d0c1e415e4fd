"""Frozen drift references in the SQLite file: a ``drift_references`` row per (service, feature).

A key claimed here (:meth:`SqliteReferences.claim`) is saved only while no other process has
claimed it since (owner epochs, :mod:`~llmpulse.processor.store.fencing`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from llmpulse.processor.quality.store import open_database
from llmpulse.processor.store.fencing import OWNERS_TABLE, FeatureKey, Fence

__all__ = ["ADD_EPOCH", "REFERENCES_STATE", "REFERENCES_TABLE", "UPSERT_REFERENCE", "SqliteReferences"]

REFERENCES_TABLE = """
CREATE TABLE IF NOT EXISTS drift_references (
    service TEXT NOT NULL,
    feature TEXT NOT NULL,
    data {blob} NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (service, feature)
);
"""
"""``{blob}`` is BLOB in SQLite, BYTEA in PostgreSQL."""
ADD_EPOCH = "ALTER TABLE drift_references ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0"
"""The owner epoch each row was written under (0: a save that claimed nothing)."""
REFERENCES_STATE = "drift_references"
"""The ``state`` of the drift references' owner epochs (``key_owners``)."""
UPSERT_REFERENCE = (
    "INSERT INTO drift_references (service, feature, data, updated, epoch) VALUES (%s, %s, %s, %s, %s)"
    " ON CONFLICT (service, feature) DO UPDATE SET data = excluded.data, updated = excluded.updated,"
    " epoch = excluded.epoch"
)


class SqliteReferences:
    """The references in the SQLite file at ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = open_database(self.path, REFERENCES_TABLE.format(blob="BLOB") + OWNERS_TABLE)
        if "epoch" not in {row[1] for row in self._db.execute("PRAGMA table_info(drift_references)")}:
            self._db.execute(ADD_EPOCH)
        self._fence = Fence(REFERENCES_STATE)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def _sql(self, sql: str, args: tuple[Any, ...]) -> Any:
        return self._db.execute(sql.replace("%s", "?"), args)

    def claim(self, keys: Collection[FeatureKey], *, now: float | None = None) -> dict[FeatureKey, int]:
        """Take (service, feature) ``keys`` over: raise their owner epochs and hold the new ones,
        so a save by their previous owner from now on is refused. Call before reading them."""
        with self._lock:
            return self._fence.claim(self._sql, keys, time.time() if now is None else now)

    def save_references(
        self, blobs: dict[tuple[str, str], bytes], *, now: float | None = None
    ) -> list[FeatureKey]:
        """Upsert one blob per (service, feature), in one transaction; returns the keys refused
        (claimed by another process after this one claimed them)."""
        stamp = time.time() if now is None else now
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                stale = self._fence.refused(self._sql, blobs)
                rows = [
                    (*k, blob, stamp, self._fence.epoch(k)) for k, blob in blobs.items() if k not in stale
                ]
                self._db.executemany(UPSERT_REFERENCE.replace("%s", "?"), rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return sorted(stale)

    def load_references(self) -> dict[tuple[str, str], bytes]:
        """Every stored blob by (service, feature)."""
        with self._lock:
            rows = self._db.execute("SELECT service, feature, data FROM drift_references").fetchall()
        return {(str(s), str(f)): bytes(d) for s, f, d in rows}
