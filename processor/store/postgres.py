"""The store in PostgreSQL, shared by every processor replica and the CLI (psycopg 3 and a pool).

:func:`open_postgres` opens one connection pool, applies the schema migrations
(:mod:`~llmpulse.processor.store.migrations`) and returns a
:class:`~llmpulse.processor.store.protocols.StateStore` whose three parts share the pool. The
pool's connections are in autocommit mode; the statements that must be atomic run in one
explicit transaction each. Everything here is blocking: the engine calls it through
``asyncio.to_thread``, and the pool makes that safe from several threads at once.

What differs from SQLite, by design:

* reset requests are not deleted when read: every replica keeps the id of the last one it
  applied, so each replica applies every request once (requests older than a day are pruned);
* ids come from a sequence, so two replicas storing at once never collide;
* a save of a claimed key locks the key's owner epoch row (``FOR SHARE``) in the save's
  transaction, so a take-over's claim waits for it or refuses it (:mod:`~llmpulse.processor.store.fencing`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from llmpulse.contract.redaction import Redactor
from llmpulse.processor.quality.chart_store import (
    CHART_UPSERT,
    CHARTS_STATE,
    LEGACY_SERVICE,
    ChartKey,
    chart_rows,
    reset_filter,
)
from llmpulse.processor.quality.store import (
    AGREEMENT_SQL,
    INSERT_COLUMNS,
    INSERT_COUNT,
    LABELS,
    FlaggedRecord,
    StoredSample,
    query_filter,
    record_row,
    sample_from_row,
)
from llmpulse.processor.store.fencing import FeatureKey, Fence
from llmpulse.processor.store.migrations import migrate
from llmpulse.processor.store.protocols import (
    Admission,
    ResetRequest,
    StateStore,
    StoreError,
    StoreReadOnly,
    StoreUnavailable,
)
from llmpulse.processor.store.sessions import SessionLog
from llmpulse.processor.store.sqlite_budget import ADMIT_SQL, SETTLE_SQL
from llmpulse.processor.store.sqlite_references import REFERENCES_STATE, UPSERT_REFERENCE

__all__ = [
    "PostgresBudget",
    "PostgresCharts",
    "PostgresFlagged",
    "PostgresReferences",
    "PostgresSessions",
    "masked",
    "open_postgres",
]

_log = logging.getLogger(__name__)

_RESET_KEEP_S = 86400.0
# A claim waits this long for a key's owner-epoch row, then ends the sessions that hold such rows
# while idle in a transaction for STALLED_SAVE_S or more, and tries again. A save's transaction
# is a few statements sent back to back: only a client that stopped in the middle (a zombie:
# paused past its Kafka session timeout, or cut off from the network) leaves it open that long,
# holding the epoch rows FOR SHARE; without this the new owner's claim, and with it that
# replica's whole Kafka source, waited until the zombie came back (or TCP gave up, hours).
# (idle_in_transaction_session_timeout would not do: a session whose last statements were
# pipelined, as psycopg's executemany sends them, is not ended by it.)
CLAIM_LOCK_TIMEOUT_MS = 2000
STALLED_SAVE_S = 5.0
_CLAIM_ATTEMPTS = 4
_END_STALLED_SAVES = (
    "SELECT a.pid, pg_terminate_backend(a.pid) FROM pg_stat_activity a"
    " JOIN pg_locks l ON l.pid = a.pid AND l.relation = 'key_owners'::regclass AND l.granted"
    " WHERE a.pid <> pg_backend_pid() AND a.datname = current_database()"
    " AND a.state = 'idle in transaction' AND a.state_change < now() - make_interval(secs => %s)"
)
_INSERT = f"INSERT INTO flagged ({INSERT_COLUMNS}) VALUES ({', '.join(['%s'] * INSERT_COUNT)})"


def masked(url: str) -> str:
    """``url`` with its password (``user:PASSWORD@`` or ``password=``) replaced by ``***``."""
    url = re.sub(r"(://[^:/@]*:)[^/]*@", r"\1***@", url)
    return re.sub(r"(password=)[^&\s]*", r"\1***", url)


def open_postgres(
    url: str,
    *,
    retention_days: float = 30.0,
    retention_rows: int = 100_000,
    redactor: Redactor | None = None,
    max_connections: int = 4,
    connect_timeout_s: float = 10.0,
) -> StateStore:
    """Connect to ``url``, migrate the schema and return the store; :class:`StoreUnavailable`
    (with the masked URL and what to check) when the database cannot be reached."""
    try:
        import psycopg
        from psycopg_pool import ConnectionPool
    except ImportError as exc:
        raise StoreError(
            f"a PostgreSQL store needs psycopg 3 and psycopg-pool ({exc.name} is missing):"
            " pip install 'llmpulse[store]'"
        ) from None
    where = masked(url)
    try:  # one direct connection first: a wrong URL or a down server fails fast, not at a pool timeout
        with psycopg.connect(url, autocommit=True, connect_timeout=max(1, round(connect_timeout_s))) as conn:
            applied = migrate(conn)
    except StoreError:
        raise
    except Exception as exc:  # psycopg.Error, a malformed conninfo
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise StoreUnavailable(
            f"cannot open the PostgreSQL store at {where}: {detail}; check the URL"
            " ([quality] store_url or LLMPULSE_STORE_URL), that the server runs and accepts this user"
        ) from None
    pool = ConnectionPool(
        url,
        min_size=1,
        max_size=max_connections,
        kwargs={"autocommit": True, "connect_timeout": max(1, round(connect_timeout_s))},
        open=False,
        name="llmpulse-store",
    )
    pool.open(wait=False)
    if applied:
        _log.info("event=store_migrated url=%s versions=%s", where, ",".join(map(str, applied)))
    shared = _Pool(pool)
    return StateStore(
        flagged=PostgresFlagged(
            shared, retention_days=retention_days, retention_rows=retention_rows, redactor=redactor
        ),
        charts=PostgresCharts(shared),
        budget=PostgresBudget(shared),
        references=PostgresReferences(shared),
        sessions=PostgresSessions(shared, retention_days=retention_days, redactor=redactor),
        location=where,
    )


class _Pool:
    """The pool the parts share; closed when the last part closes."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.users = 5

    def connection(self) -> Any:
        return self.pool.connection()

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            self.pool.close()


def _rows(cursor: Any) -> list[dict[str, Any]]:
    names = [d.name for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class PostgresFlagged:
    """Flagged samples and labels in the ``flagged`` table."""

    def __init__(
        self,
        pool: _Pool,
        *,
        retention_days: float = 30.0,
        retention_rows: int = 100_000,
        redactor: Redactor | None = None,
    ) -> None:
        self._pool = pool
        self.retention_s = retention_days * 86400.0
        self.retention_rows = retention_rows
        self._redact = redactor or Redactor()

    def close(self) -> None:
        """Give the shared pool back."""
        self._pool.release()

    def _text(self, text: str | None) -> str | None:
        return None if text is None else self._redact(text)

    def add(self, record: FlaggedRecord) -> int:
        """Store one record (content redacted); returns its id."""
        with self._pool.connection() as conn:
            row = conn.execute(_INSERT + " RETURNING id", record_row(record, self._text)).fetchone()
        return int(row[0])

    def add_many(self, records: Sequence[FlaggedRecord]) -> None:
        """Store several records in one transaction (content redacted)."""
        rows = [record_row(r, self._text) for r in records]
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(_INSERT, rows)

    def query(
        self,
        *,
        service: str | None = None,
        feature: str | None = None,
        since: float | None = None,
        limit: int | None = 20,
        label: str | None = None,
        include_audit: bool = False,
    ) -> list[StoredSample]:
        """Newest first; the filters of the SQLite store's ``query``."""
        where, args = query_filter(service, feature, since, label, include_audit)
        sql = f"SELECT * FROM flagged WHERE {where} ORDER BY created DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._pool.connection() as conn:
            return [sample_from_row(row) for row in _rows(conn.execute(sql, args))]

    def get(self, sample_id: int) -> StoredSample | None:
        """One sample by id."""
        with self._pool.connection() as conn:
            rows = _rows(conn.execute("SELECT * FROM flagged WHERE id = %s", (sample_id,)))
        return sample_from_row(rows[0]) if rows else None

    def label(self, sample_id: int, label: str, note: str | None = None, *, now: float | None = None) -> bool:
        """Record a human label (``good`` or ``bad``); False when there is no such sample."""
        if label not in LABELS:
            raise ValueError(f"label must be one of {', '.join(LABELS)}, got {label!r}")
        import psycopg

        try:
            with self._pool.connection() as conn:
                cursor = conn.execute(
                    "UPDATE flagged SET label = %s, label_note = %s, labelled_at = %s WHERE id = %s",
                    (label, note, time.time() if now is None else now, sample_id),
                )
                return cursor.rowcount == 1
        except psycopg.errors.InsufficientPrivilege as exc:
            raise StoreReadOnly(f"this database user may not write labels ({exc})") from None

    def agreement(self) -> dict[tuple[str, str], tuple[int, int]]:
        """Per (service, feature): (judged samples with a human label, of which the judge agreed)."""
        with self._pool.connection() as conn:
            rows = conn.execute(AGREEMENT_SQL).fetchall()
        return {(str(s), str(f)): (int(n), int(agree or 0)) for s, f, n, agree in rows}

    def prune(self, *, now: float | None = None) -> int:
        """Apply the retention policy; returns how many rows were deleted."""
        cutoff = (time.time() if now is None else now) - self.retention_s
        with self._pool.connection() as conn, conn.transaction():
            deleted = conn.execute("DELETE FROM flagged WHERE created < %s", (cutoff,)).rowcount
            deleted += conn.execute(
                "DELETE FROM flagged WHERE id NOT IN (SELECT id FROM flagged ORDER BY created DESC, id DESC"
                " LIMIT %s)",
                (self.retention_rows,),
            ).rowcount
        return int(deleted)

    def count(self) -> int:
        """Rows stored."""
        with self._pool.connection() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM flagged").fetchone()[0])


class PostgresCharts:
    """SPC chart snapshots (``spc_charts``) and reset requests (``spc_resets``)."""

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        with pool.connection() as conn:
            # Requests made before this replica started are already in the saved charts (deleted).
            self._seen = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM spc_resets").fetchone()[0])
        self._fence = Fence(CHARTS_STATE)

    def close(self) -> None:
        """Give the shared pool back."""
        self._pool.release()

    def claim(self, keys: Collection[FeatureKey], *, now: float | None = None) -> dict[FeatureKey, int]:
        """Take (service, feature) ``keys`` over: raise their owner epochs and hold the new ones,
        so a save by their previous owner from now on is refused. Call before reading them."""
        return _claim(self._pool, self._fence, keys, now)

    def save_charts(
        self, charts: dict[ChartKey, dict[str, Any]], *, now: float | None = None
    ) -> list[ChartKey]:
        """Upsert chart snapshots; a legacy chart of the same feature and statistic is deleted.
        Returns the charts refused, not written: their key was claimed by another process after
        this one claimed it."""
        stamp = time.time() if now is None else now
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            stale = self._fence.refused(cur.execute, {(v, f) for v, f, _ in charts}, lock=" FOR SHARE")
            kept = {key: state for key, state in charts.items() if key[:2] not in stale}
            cur.executemany(CHART_UPSERT, chart_rows(self._fence, kept, stamp))
            legacy = [(LEGACY_SERVICE, f, s) for (v, f, s) in kept if v != LEGACY_SERVICE]
            if legacy:
                cur.executemany(
                    "DELETE FROM spc_charts WHERE service = %s AND feature = %s AND statistic = %s", legacy
                )
        return [key for key in charts if key[:2] in stale]

    def load_charts(self) -> dict[ChartKey, dict[str, Any]]:
        """Every saved chart snapshot."""
        with self._pool.connection() as conn:
            rows = conn.execute("SELECT service, feature, statistic, state FROM spc_charts").fetchall()
        return {(str(v), str(f), str(s)): json.loads(state) for v, f, s, state in rows}

    def request_reset(self, feature: str, statistic: str | None = None, *, service: str | None = None) -> int:
        """Delete the saved charts of ``feature`` (one statistic or all, one service or all) and
        ask every running replica to reset them too; returns how many saved charts were deleted."""
        where, args = reset_filter(feature, statistic, service)
        with self._pool.connection() as conn, conn.transaction():
            deleted = conn.execute(f"DELETE FROM spc_charts WHERE {where}", args).rowcount
            conn.execute(
                "INSERT INTO spc_resets (service, feature, statistic, requested) VALUES (%s, %s, %s, %s)",
                (service, feature, statistic, time.time()),
            )
        return int(deleted)

    def take_resets(self) -> list[ResetRequest]:
        """Reset requests this replica has not applied yet, oldest first."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT id, service, feature, statistic FROM spc_resets WHERE id > %s ORDER BY id",
                (self._seen,),
            ).fetchall()
            conn.execute("DELETE FROM spc_resets WHERE requested < %s", (time.time() - _RESET_KEEP_S,))
        if rows:
            self._seen = int(rows[-1][0])
        return [(None if v is None else str(v), str(f), None if s is None else str(s)) for _, v, f, s in rows]


class PostgresBudget:
    """The judge's daily budget (``judge_budget``): one row per UTC day, updated atomically."""

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool

    def close(self) -> None:
        """Give the shared pool back."""
        self._pool.release()

    def admit(self, day: int, max_tokens: int, max_usd: float) -> Admission | None:
        """Let one call through if the day's budget allows it, reserving its expected cost.

        One ``UPDATE``: PostgreSQL's row lock orders concurrent admissions, and each re-checks
        the limits against the row as the previous one left it.
        """
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("INSERT INTO judge_budget (day) VALUES (%s) ON CONFLICT (day) DO NOTHING", (day,))
            row = conn.execute(ADMIT_SQL, (day, max_tokens, max_usd)).fetchone()
        return None if row is None else Admission(day, int(row[0]), float(row[1]))

    def settle(self, admission: Admission, tokens: int, usd: float) -> None:
        """Record what an admitted call cost (0 when it was never paid for)."""
        paid = 1 if tokens or usd else 0
        with self._pool.connection() as conn:
            conn.execute(
                SETTLE_SQL.replace("MAX(", "GREATEST("),
                (tokens, usd, paid, admission.tokens, admission.usd, admission.day),
            )

    def spent(self, day: int) -> tuple[int, float]:
        """(tokens, USD) settled on ``day``."""
        with self._pool.connection() as conn:
            row = conn.execute("SELECT tokens, usd FROM judge_budget WHERE day = %s", (day,)).fetchone()
        return (0, 0.0) if row is None else (int(row[0]), float(row[1]))


class PostgresReferences:
    """Frozen drift references (``drift_references``), a ``bytea`` row per (service, feature)."""

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        self._fence = Fence(REFERENCES_STATE)

    def close(self) -> None:
        """Give the shared pool back."""
        self._pool.release()

    def claim(self, keys: Collection[FeatureKey], *, now: float | None = None) -> dict[FeatureKey, int]:
        """Take (service, feature) ``keys`` over (see :meth:`PostgresCharts.claim`)."""
        return _claim(self._pool, self._fence, keys, now)

    def save_references(
        self, blobs: dict[tuple[str, str], bytes], *, now: float | None = None
    ) -> list[FeatureKey]:
        """Upsert one blob per (service, feature), in one transaction; returns the keys refused
        (claimed by another process after this one claimed them)."""
        stamp = time.time() if now is None else now
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            stale = self._fence.refused(cur.execute, blobs, lock=" FOR SHARE")
            rows = [
                (*key, blob, stamp, self._fence.epoch(key)) for key, blob in blobs.items() if key not in stale
            ]
            cur.executemany(UPSERT_REFERENCE, rows)
        return sorted(stale)

    def load_references(self) -> dict[tuple[str, str], bytes]:
        """Every stored blob by (service, feature)."""
        with self._pool.connection() as conn:
            rows = conn.execute("SELECT service, feature, data FROM drift_references").fetchall()
        return {(str(s), str(f)): bytes(d) for s, f, d in rows}


class PostgresSessions(SessionLog):
    """Captured sessions (``sessions``, ``session_turns``): the statements are
    :class:`~llmpulse.processor.store.sessions.SessionLog`'s, each call one transaction."""

    def __init__(
        self, pool: _Pool, *, retention_days: float = 30.0, redactor: Redactor | None = None
    ) -> None:
        super().__init__(retention_days=retention_days, redactor=redactor)
        self._pool = pool

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._pool.connection() as conn, conn.transaction():
            yield conn

    def close(self) -> None:
        """Give the shared pool back."""
        self._pool.release()


def _claim(
    pool: _Pool, fence: Fence, keys: Collection[FeatureKey], now: float | None
) -> dict[FeatureKey, int]:
    """Claim ``keys`` on a connection in autocommit mode: each claim commits before the caller reads.
    A claim that waits on a stalled save ends that save's session and tries again (see
    :data:`CLAIM_LOCK_TIMEOUT_MS`)."""
    import psycopg

    stamp = time.time() if now is None else now
    with pool.connection() as conn:
        conn.execute(f"SET lock_timeout = {CLAIM_LOCK_TIMEOUT_MS}")
        try:
            attempt = 1
            while True:
                try:
                    return fence.claim(conn.execute, keys, stamp)
                except psycopg.errors.LockNotAvailable:
                    if attempt == _CLAIM_ATTEMPTS:
                        raise
                attempt += 1
                ended = [pid for pid, done in conn.execute(_END_STALLED_SAVES, (STALLED_SAVE_S,)) if done]
                _log.warning("event=store_claim_waited keys=%d stalled_sessions_ended=%s", len(keys), ended)
        finally:
            conn.execute("RESET lock_timeout")
