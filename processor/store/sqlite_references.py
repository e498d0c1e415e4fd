"""Frozen drift references in the SQLite file: a ``drift_references`` row per (service, feature)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from llmpulse.processor.quality.store import open_database

__all__ = ["REFERENCES_TABLE", "UPSERT_REFERENCE", "SqliteReferences"]

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
UPSERT_REFERENCE = (
    "INSERT INTO drift_references (service, feature, data, updated) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT (service, feature) DO UPDATE SET data = excluded.data, updated = excluded.updated"
)


class SqliteReferences:
    """The references in the SQLite file at ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = open_database(self.path, REFERENCES_TABLE.format(blob="BLOB"))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def save_references(self, blobs: dict[tuple[str, str], bytes], *, now: float | None = None) -> None:
        """Upsert one blob per (service, feature), in one transaction."""
        stamp = time.time() if now is None else now
        rows = [(service, feature, blob, stamp) for (service, feature), blob in blobs.items()]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(UPSERT_REFERENCE.replace("%s", "?"), rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def load_references(self) -> dict[tuple[str, str], bytes]:
        """Every stored blob by (service, feature)."""
        with self._lock:
            rows = self._db.execute("SELECT service, feature, data FROM drift_references").fetchall()
        return {(str(s), str(f)): bytes(d) for s, f, d in rows}
