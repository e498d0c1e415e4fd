"""Saved SPC chart state and pending baseline resets, in the quality database.

The quality engine saves its charts here on every tick and restores them at start, so baselines
survive a restart; ``llmpulse spc show|reset`` read them and file reset requests from another
process, which the running engine takes on its next tick. The tables (``spc_charts``,
``spc_resets``) live in the same SQLite file as the flagged samples
(:class:`~llmpulse.processor.quality.store.FlaggedStore`), each store with its own connection;
WAL journal mode and a busy timeout let the two, and the CLI, share the file.

One :class:`ChartStore` owns one connection guarded by a lock, so one instance may be shared by
threads (the engine calls it through ``asyncio.to_thread``).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from llmpulse.processor.quality.store import open_database

__all__ = ["ChartStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spc_charts (
    feature TEXT NOT NULL,
    statistic TEXT NOT NULL,
    state TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (feature, statistic)
);
CREATE TABLE IF NOT EXISTS spc_resets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    feature TEXT NOT NULL,
    statistic TEXT,
    requested REAL NOT NULL
);
"""


class ChartStore:
    """Chart snapshots keyed by (feature, statistic). ``path`` may be ``":memory:"``."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = open_database(self.path, _SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> ChartStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save_charts(self, charts: dict[tuple[str, str], dict[str, Any]], *, now: float | None = None) -> None:
        """Upsert chart snapshots keyed by (feature, statistic)."""
        stamp = time.time() if now is None else now
        with self._lock:
            self._db.executemany(
                "INSERT INTO spc_charts (feature, statistic, state, updated) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (feature, statistic)"
                " DO UPDATE SET state = excluded.state, updated = excluded.updated",
                [(f, s, json.dumps(state), stamp) for (f, s), state in charts.items()],
            )

    def load_charts(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every saved chart snapshot."""
        with self._lock:
            rows = self._db.execute("SELECT feature, statistic, state FROM spc_charts").fetchall()
        return {(str(f), str(s)): json.loads(state) for f, s, state in rows}

    def request_reset(self, feature: str, statistic: str | None = None) -> int:
        """Delete the saved charts of ``feature`` (one statistic or all) and ask a running engine
        to reset them too; returns how many saved charts were deleted."""
        with self._lock:
            if statistic is None:
                deleted = self._db.execute("DELETE FROM spc_charts WHERE feature = ?", (feature,)).rowcount
            else:
                deleted = self._db.execute(
                    "DELETE FROM spc_charts WHERE feature = ? AND statistic = ?", (feature, statistic)
                ).rowcount
            self._db.execute(
                "INSERT INTO spc_resets (feature, statistic, requested) VALUES (?, ?, ?)",
                (feature, statistic, time.time()),
            )
        return int(deleted)

    def take_resets(self) -> list[tuple[str, str | None]]:
        """Pending reset requests (feature, statistic or None for all), removed as they are read."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute("SELECT feature, statistic FROM spc_resets ORDER BY id").fetchall()
                self._db.execute("DELETE FROM spc_resets")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return [(str(f), None if s is None else str(s)) for f, s in rows]
