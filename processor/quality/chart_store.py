"""Saved SPC chart state and pending baseline resets, in the quality database.

The quality engine saves its charts here on every tick and restores them at start, so baselines
survive a restart; ``llmpulse spc show|reset`` read them and file reset requests from another
process, which the running engine takes on its next tick. The tables (``spc_charts``,
``spc_resets``) live in the same SQLite file as the flagged samples
(:class:`~llmpulse.processor.quality.store.FlaggedStore`), each store with its own connection;
WAL journal mode and a busy timeout let the two, and the CLI, share the file.

One :class:`ChartStore` owns one connection guarded by a lock, so one instance may be shared by
threads (the engine calls it through ``asyncio.to_thread``).

Charts are keyed by (service, feature, statistic). A file written before charts were kept per
service is migrated at open: its charts get the service ``""`` (:data:`LEGACY_SERVICE`), and the
first service that charts the same feature and statistic takes the saved baseline over
(:meth:`~llmpulse.processor.quality.charts.QualityCharts.load`); saving it deletes the legacy row.

A replica that takes a (service, feature) over claims it first (:meth:`ChartStore.claim`), and its
saves of that key are refused once another process claimed it after (owner epochs,
:mod:`~llmpulse.processor.store.fencing`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from llmpulse.processor.quality.store import open_database
from llmpulse.processor.store.fencing import OWNERS_TABLE, FeatureKey, Fence

__all__ = ["CHARTS_STATE", "CHART_UPSERT", "LEGACY_SERVICE", "ChartKey", "ChartStore", "reset_filter"]

ChartKey = tuple[str, str, str]
"""(service, feature, statistic)."""

LEGACY_SERVICE = ""
"""The service of charts saved before charts were kept per service."""

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS spc_charts (
    service TEXT NOT NULL DEFAULT '',
    feature TEXT NOT NULL,
    statistic TEXT NOT NULL,
    state TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (service, feature, statistic)
);
CREATE TABLE IF NOT EXISTS spc_resets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT,
    feature TEXT NOT NULL,
    statistic TEXT,
    requested REAL NOT NULL
);
"""
    + OWNERS_TABLE
)

CHARTS_STATE = "spc_charts"
"""The ``state`` of the SPC charts' owner epochs (``key_owners``)."""
CHART_UPSERT = (
    "INSERT INTO spc_charts (service, feature, statistic, state, updated, epoch)"
    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (service, feature, statistic)"
    " DO UPDATE SET state = excluded.state, updated = excluded.updated, epoch = excluded.epoch"
)
"""Upsert one chart snapshot, with the owner epoch it is written under (``%s`` placeholders)."""

# A file from before per-service charts: the table's key was (feature, statistic).
_MIGRATE_CHARTS = """
BEGIN;
ALTER TABLE spc_charts RENAME TO spc_charts_by_feature;
CREATE TABLE spc_charts (
    service TEXT NOT NULL DEFAULT '',
    feature TEXT NOT NULL,
    statistic TEXT NOT NULL,
    state TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (service, feature, statistic)
);
INSERT INTO spc_charts (service, feature, statistic, state, updated)
    SELECT '', feature, statistic, state, updated FROM spc_charts_by_feature;
DROP TABLE spc_charts_by_feature;
COMMIT;
"""
_MIGRATE_RESETS = "ALTER TABLE spc_resets ADD COLUMN service TEXT"
_ADD_EPOCH = "ALTER TABLE spc_charts ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0"


def chart_rows(fence: Fence, charts: dict[ChartKey, dict[str, Any]], stamp: float) -> list[tuple[Any, ...]]:
    """The :data:`CHART_UPSERT` rows of ``charts``, each under its key's held epoch."""
    return [(v, f, s, json.dumps(state), stamp, fence.epoch((v, f))) for (v, f, s), state in charts.items()]


def reset_filter(feature: str, statistic: str | None, service: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause (``%s`` placeholders) and arguments selecting the charts a reset removes."""
    where = ["feature = %s"]
    args: list[Any] = [feature]
    if statistic is not None:
        where.append("statistic = %s")
        args.append(statistic)
    if service is not None:
        where.append("service IN (%s, %s)")  # a legacy chart is every service's
        args.extend((service, LEGACY_SERVICE))
    return " AND ".join(where), args


def _columns(db: Any, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


class ChartStore:
    """Chart snapshots keyed by (service, feature, statistic). ``path`` may be ``":memory:"``."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = open_database(self.path, _SCHEMA)
        if "service" not in _columns(self._db, "spc_charts"):
            self._db.executescript(_MIGRATE_CHARTS)
        if "service" not in _columns(self._db, "spc_resets"):
            self._db.execute(_MIGRATE_RESETS)
        if "epoch" not in _columns(self._db, "spc_charts"):
            self._db.execute(_ADD_EPOCH)
        self._fence = Fence(CHARTS_STATE)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> ChartStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def claim(self, keys: Collection[FeatureKey], *, now: float | None = None) -> dict[FeatureKey, int]:
        """Take (service, feature) ``keys`` over: raise their owner epochs and hold the new ones,
        so a save by their previous owner from now on is refused. Call before reading them."""
        with self._lock:
            return self._fence.claim(self._sql, keys, time.time() if now is None else now)

    def _sql(self, sql: str, args: tuple[Any, ...]) -> Any:
        return self._db.execute(sql.replace("%s", "?"), args)

    def save_charts(
        self, charts: dict[ChartKey, dict[str, Any]], *, now: float | None = None
    ) -> list[ChartKey]:
        """Upsert chart snapshots keyed by (service, feature, statistic); a legacy chart of the
        same feature and statistic, taken over by a service, is deleted. Returns the charts
        refused, not written: their key was claimed by another process after this one claimed it."""
        stamp = time.time() if now is None else now
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # the write lock first: no claim between check and write
            try:
                stale = self._fence.refused(self._sql, {(v, f) for v, f, _ in charts})
                kept = {key: state for key, state in charts.items() if key[:2] not in stale}
                self._db.executemany(CHART_UPSERT.replace("%s", "?"), chart_rows(self._fence, kept, stamp))
                self._db.executemany(
                    "DELETE FROM spc_charts WHERE service = ? AND feature = ? AND statistic = ?",
                    [(LEGACY_SERVICE, f, s) for (v, f, s) in kept if v != LEGACY_SERVICE],
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return [key for key in charts if key[:2] in stale]

    def load_charts(self) -> dict[ChartKey, dict[str, Any]]:
        """Every saved chart snapshot."""
        with self._lock:
            rows = self._db.execute("SELECT service, feature, statistic, state FROM spc_charts").fetchall()
        return {(str(v), str(f), str(s)): json.loads(state) for v, f, s, state in rows}

    def request_reset(self, feature: str, statistic: str | None = None, *, service: str | None = None) -> int:
        """Delete the saved charts of ``feature`` (one statistic or all; of one service or of
        every service) and ask a running engine to reset them too; returns how many saved
        charts were deleted."""
        where, args = reset_filter(feature, statistic, service)
        with self._lock:
            deleted = self._db.execute(
                f"DELETE FROM spc_charts WHERE {where.replace('%s', '?')}", args
            ).rowcount
            self._db.execute(
                "INSERT INTO spc_resets (service, feature, statistic, requested) VALUES (?, ?, ?, ?)",
                (service, feature, statistic, time.time()),
            )
        return int(deleted)

    def take_resets(self) -> list[tuple[str | None, str, str | None]]:
        """Pending reset requests (service or None for all, feature, statistic or None for all),
        removed as they are read."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    "SELECT service, feature, statistic FROM spc_resets ORDER BY id"
                ).fetchall()
                self._db.execute("DELETE FROM spc_resets")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return [(None if v is None else str(v), str(f), None if s is None else str(s)) for v, f, s in rows]
