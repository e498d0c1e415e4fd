"""Captured sessions: a closed conversation's turns (content as stored, already redacted), its
totals and its session-judge verdict, in the ``sessions`` and ``session_turns`` tables.

One implementation for both databases: :class:`SessionLog` holds every statement (``%s``
placeholders) and asks its subclass only for a connection inside a transaction
(:class:`SqliteSessions` here, :class:`~llmpulse.processor.store.postgres.PostgresSessions`).

Which sessions are kept is the agents engine's choice (the share sampled for session judging,
by a hash of the conversation id); the store bounds what it keeps by the bytes of content
(:meth:`SessionLog.prune_sessions` drops the oldest sessions first and says how many went) and
by age. A flagged sample belongs to a session when its trace id is one of the session's turns
(:meth:`SessionLog.session_of_trace`); the session verdict is matched by the session's last
turn's trace id, the trace id the session judge's sample carries.
"""

from __future__ import annotations

import abc
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmpulse.contract.redaction import Redactor
from llmpulse.processor.quality.store import open_database

__all__ = [
    "SESSION_TABLES",
    "SessionLog",
    "SessionRecord",
    "SessionVerdict",
    "SqliteSessions",
    "StoredSession",
    "TurnRecord",
]

SESSION_TABLES = """
CREATE TABLE IF NOT EXISTS sessions (
    id {id},
    created DOUBLE PRECISION NOT NULL,
    service TEXT NOT NULL,
    environment TEXT NOT NULL DEFAULT '',
    feature TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    started DOUBLE PRECISION NOT NULL,
    ended DOUBLE PRECISION NOT NULL,
    turns INTEGER NOT NULL,
    turns_clipped INTEGER NOT NULL DEFAULT 0,
    cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
    abandoned INTEGER NOT NULL DEFAULT 0,
    corrections INTEGER NOT NULL DEFAULT 0,
    follow_ups INTEGER NOT NULL DEFAULT 0,
    explicit_feedback INTEGER NOT NULL DEFAULT 0,
    positive_feedback INTEGER NOT NULL DEFAULT 0,
    last_trace_id TEXT NOT NULL,
    content_bytes INTEGER NOT NULL DEFAULT 0,
    verdict TEXT,
    verdict_overall DOUBLE PRECISION,
    verdict_scores TEXT,
    verdict_explanation TEXT,
    judged_at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS sessions_service_feature_created ON sessions (service, feature, created);
CREATE INDEX IF NOT EXISTS sessions_last_trace ON sessions (last_trace_id);
CREATE TABLE IF NOT EXISTS session_turns (
    session_id BIGINT NOT NULL,
    turn INTEGER NOT NULL,
    trace_id TEXT NOT NULL,
    started DOUBLE PRECISION NOT NULL,
    duration_s DOUBLE PRECISION NOT NULL,
    model TEXT NOT NULL DEFAULT '',
    llm_calls INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
    error INTEGER NOT NULL DEFAULT 0,
    user_text TEXT,
    answer_text TEXT,
    PRIMARY KEY (session_id, turn)
);
CREATE INDEX IF NOT EXISTS session_turns_trace ON session_turns (trace_id);
"""
"""``{id}``: ``INTEGER PRIMARY KEY AUTOINCREMENT`` in SQLite, ``BIGSERIAL PRIMARY KEY`` in PostgreSQL."""

_SESSION_COLUMNS = (
    "created, service, environment, feature, conversation_id, started, ended, turns, turns_clipped,"
    " cost_usd, abandoned, corrections, follow_ups, explicit_feedback, positive_feedback,"
    " last_trace_id, content_bytes"
)
_TURN_COLUMNS = (
    "session_id, turn, trace_id, started, duration_s, model, llm_calls, input_tokens, output_tokens,"
    " cost_usd, error, user_text, answer_text"
)


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One turn (one trace) of a captured session."""

    trace_id: bytes
    user: str
    """The turn's last user message ("" when the calls named none)."""
    answer: str
    """The answer of the turn's last LLM call that carried content."""
    started: float
    """Unix seconds of the turn's first LLM call's start."""
    duration_s: float
    """First call's start to last call's end."""
    model: str = ""
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    error: bool = False
    """An LLM call of the turn failed."""
    number: int = 0
    """The turn's number in the session, from 1; 0: its place after the clipped turns."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """What the agents engine stores for one closed, captured session."""

    service: str
    feature: str
    conversation_id: str
    started: float
    ended: float
    turns: int
    """Turns the session had (``transcript`` may hold fewer: the oldest are clipped)."""
    last_trace_id: bytes
    transcript: tuple[TurnRecord, ...] = ()
    environment: str = ""
    turns_clipped: int = 0
    cost_usd: float = 0.0
    abandoned: bool = False
    corrections: int = 0
    follow_ups: int = 0
    explicit_feedback: int = 0
    positive_feedback: int = 0

    def numbered(self) -> list[tuple[int, TurnRecord]]:
        """The kept turns with their numbers in the session, in order."""
        first = 1 + self.turns_clipped
        return [(t.number or first + i, t) for i, t in enumerate(self.transcript)]

    @property
    def content_bytes(self) -> int:
        """UTF-8 bytes of the turns' content: what the store's byte bound counts."""
        return sum(len(t.user.encode()) + len(t.answer.encode()) for t in self.transcript)


@dataclass(frozen=True, slots=True)
class SessionVerdict:
    """The session judge's verdict on a whole conversation."""

    verdict: str
    """``bad`` or ``good``."""
    overall: float
    scores: dict[str, float] = field(default_factory=dict)
    explanation: str | None = None
    judged_at: float = 0.0


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A session read back: ``record.transcript`` is empty in listings."""

    id: int
    record: SessionRecord
    verdict: SessionVerdict | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view (trace ids in hex)."""
        r = self.record
        return {
            "id": self.id,
            "service": r.service,
            "environment": r.environment,
            "feature": r.feature,
            "conversation_id": r.conversation_id,
            "started": r.started,
            "ended": r.ended,
            "turns": r.turns,
            "turns_clipped": r.turns_clipped,
            "cost_usd": r.cost_usd,
            "abandoned": r.abandoned,
            "corrections": r.corrections,
            "follow_ups": r.follow_ups,
            "explicit_feedback": r.explicit_feedback,
            "positive_feedback": r.positive_feedback,
            "last_trace_id": r.last_trace_id.hex(),
            "verdict": None
            if self.verdict is None
            else {
                "verdict": self.verdict.verdict,
                "overall": self.verdict.overall,
                "scores": self.verdict.scores,
                "explanation": self.verdict.explanation,
                "judged_at": self.verdict.judged_at,
            },
            "transcript": [
                {
                    "turn": n,
                    "trace_id": t.trace_id.hex(),
                    "user": t.user,
                    "answer": t.answer,
                    "started": t.started,
                    "duration_s": t.duration_s,
                    "model": t.model,
                    "llm_calls": t.llm_calls,
                    "input_tokens": t.input_tokens,
                    "output_tokens": t.output_tokens,
                    "cost_usd": t.cost_usd,
                    "error": t.error,
                }
                for n, t in r.numbered()
            ],
        }


class SessionLog(abc.ABC):
    """Captured sessions in one database; subclasses give :meth:`_transaction`, :meth:`close`
    and ``_mark``."""

    _mark = "%s"

    def __init__(self, *, retention_days: float = 30.0, redactor: Redactor | None = None) -> None:
        self.retention_s = retention_days * 86400.0
        self._redact = redactor or Redactor()

    @abc.abstractmethod
    def _transaction(self) -> contextlib.AbstractContextManager[Any]:
        """A connection inside one transaction (committed on exit, rolled back on error)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection (or the share of a pool)."""

    def _sql(self, sql: str) -> str:
        return sql if self._mark == "%s" else sql.replace("%s", self._mark)

    def _execute(self, conn: Any, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> Any:
        return conn.execute(self._sql(sql), args)

    def add_session(self, record: SessionRecord, *, now: float | None = None) -> int:
        """Store ``record`` and its turns (content redacted again) in one transaction; its id."""
        r = record
        row = (
            time.time() if now is None else now,
            r.service,
            r.environment,
            r.feature,
            r.conversation_id,
            r.started,
            r.ended,
            r.turns,
            r.turns_clipped,
            r.cost_usd,
            int(r.abandoned),
            r.corrections,
            r.follow_ups,
            r.explicit_feedback,
            r.positive_feedback,
            r.last_trace_id.hex(),
            r.content_bytes,
        )
        marks = ", ".join(["%s"] * 17)
        with self._transaction() as conn:
            cursor = self._execute(
                conn, f"INSERT INTO sessions ({_SESSION_COLUMNS}) VALUES ({marks}) RETURNING id", row
            )
            session_id = int(cursor.fetchone()[0])
            turns = [
                (
                    session_id,
                    n,
                    t.trace_id.hex(),
                    t.started,
                    t.duration_s,
                    t.model,
                    t.llm_calls,
                    t.input_tokens,
                    t.output_tokens,
                    t.cost_usd,
                    int(t.error),
                    self._redact(t.user),
                    self._redact(t.answer),
                )
                for n, t in r.numbered()
            ]
            if turns:
                marks = ", ".join(["%s"] * 13)
                conn.cursor().executemany(
                    self._sql(f"INSERT INTO session_turns ({_TURN_COLUMNS}) VALUES ({marks})"), turns
                )
        return session_id

    def set_verdict(self, service: str, last_trace_id: bytes, verdict: SessionVerdict) -> bool:
        """Record the judge's verdict on the session of ``service`` whose last turn is
        ``last_trace_id`` (the newest such session); False when none is stored."""
        with self._transaction() as conn:
            cursor = self._execute(
                conn,
                "UPDATE sessions SET verdict = %s, verdict_overall = %s, verdict_scores = %s,"
                " verdict_explanation = %s, judged_at = %s WHERE id = (SELECT MAX(id) FROM sessions"
                " WHERE service = %s AND last_trace_id = %s)",
                (
                    verdict.verdict,
                    verdict.overall,
                    json.dumps(verdict.scores),
                    None if verdict.explanation is None else self._redact(verdict.explanation),
                    verdict.judged_at,
                    service,
                    last_trace_id.hex(),
                ),
            )
            return int(cursor.rowcount) == 1

    def sessions(
        self,
        *,
        service: str | None = None,
        feature: str | None = None,
        verdict: str | None = None,
        limit: int | None = 20,
    ) -> list[StoredSession]:
        """Newest first, without their turns; ``verdict`` is ``bad``, ``good`` or ``none`` (not judged)."""
        where, args = ["1=1"], []
        for column, value in (("service", service), ("feature", feature)):
            if value is not None:
                where.append(f"{column} = %s")
                args.append(value)
        if verdict == "none":
            where.append("verdict IS NULL")
        elif verdict is not None:
            where.append("verdict = %s")
            args.append(verdict)
        sql = f"SELECT * FROM sessions WHERE {' AND '.join(where)} ORDER BY created DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._transaction() as conn:
            return [_session(row, ()) for row in _dicts(self._execute(conn, sql, args))]

    def session(self, session_id: int) -> StoredSession | None:
        """One session with its turns in order; None when there is no such id."""
        with self._transaction() as conn:
            rows = _dicts(self._execute(conn, "SELECT * FROM sessions WHERE id = %s", (session_id,)))
            if not rows:
                return None
            turns = _dicts(
                self._execute(
                    conn, "SELECT * FROM session_turns WHERE session_id = %s ORDER BY turn", (session_id,)
                )
            )
        return _session(rows[0], tuple(_turn(t) for t in turns))

    def session_of_trace(self, trace_id: bytes) -> int | None:
        """The id of the newest stored session that has ``trace_id`` as one of its turns."""
        with self._transaction() as conn:
            row = self._execute(
                conn, "SELECT MAX(session_id) FROM session_turns WHERE trace_id = %s", (trace_id.hex(),)
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def flagged_in_session(self, session_id: int) -> list[tuple[int, str]]:
        """(id, sources as stored) of the flagged and audit samples whose trace is one of the
        session's turns (the ``flagged`` table lives in the same database), oldest first."""
        with self._transaction() as conn:
            rows = self._execute(
                conn,
                "SELECT f.id, f.sources FROM flagged f JOIN session_turns t ON f.trace_id = t.trace_id"
                " WHERE t.session_id = %s ORDER BY f.id",
                (session_id,),
            ).fetchall()
        return [(int(i), str(sources)) for i, sources in rows]

    def prune_sessions(self, *, max_bytes: int, now: float | None = None) -> int:
        """Drop sessions older than the retention age, then the oldest until the content kept
        is at most ``max_bytes``; returns how many sessions were dropped."""
        cutoff = (time.time() if now is None else now) - self.retention_s
        with self._transaction() as conn:
            total, oldest = self._execute(
                conn, "SELECT COALESCE(SUM(content_bytes), 0), MIN(created) FROM sessions"
            ).fetchone()
            if int(total) <= max_bytes and (oldest is None or float(oldest) >= cutoff):
                return 0  # the usual case: one aggregate, no row comes back to Python
            rows = self._execute(conn, "SELECT id, created, content_bytes FROM sessions ORDER BY id DESC")
            doomed: list[int] = []
            kept, full = 0, False
            for session_id, created, size in rows.fetchall():  # newest first: once full, the rest go
                full = full or kept + int(size) > max_bytes
                if full or float(created) < cutoff:
                    doomed.append(int(session_id))
                else:
                    kept += int(size)
            for start in range(0, len(doomed), 500):
                chunk = doomed[start : start + 500]
                marks = ", ".join(["%s"] * len(chunk))
                self._execute(conn, f"DELETE FROM session_turns WHERE session_id IN ({marks})", chunk)
                self._execute(conn, f"DELETE FROM sessions WHERE id IN ({marks})", chunk)
        return len(doomed)

    def count_sessions(self) -> int:
        """Sessions stored."""
        with self._transaction() as conn:
            return int(self._execute(conn, "SELECT COUNT(*) FROM sessions").fetchone()[0])


def _dicts(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _turn(row: dict[str, Any]) -> TurnRecord:
    return TurnRecord(
        trace_id=bytes.fromhex(row["trace_id"]),
        user=row["user_text"] or "",
        answer=row["answer_text"] or "",
        started=float(row["started"]),
        duration_s=float(row["duration_s"]),
        model=row["model"],
        llm_calls=int(row["llm_calls"]),
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        cost_usd=float(row["cost_usd"]),
        error=bool(row["error"]),
        number=int(row["turn"]),
    )


def _session(row: dict[str, Any], transcript: tuple[TurnRecord, ...]) -> StoredSession:
    record = SessionRecord(
        service=row["service"],
        environment=row["environment"],
        feature=row["feature"],
        conversation_id=row["conversation_id"],
        started=float(row["started"]),
        ended=float(row["ended"]),
        turns=int(row["turns"]),
        turns_clipped=int(row["turns_clipped"]),
        cost_usd=float(row["cost_usd"]),
        abandoned=bool(row["abandoned"]),
        corrections=int(row["corrections"]),
        follow_ups=int(row["follow_ups"]),
        explicit_feedback=int(row["explicit_feedback"]),
        positive_feedback=int(row["positive_feedback"]),
        last_trace_id=bytes.fromhex(row["last_trace_id"]),
        transcript=transcript,
    )
    verdict = None
    if row["verdict"] is not None:
        verdict = SessionVerdict(
            verdict=row["verdict"],
            overall=float(row["verdict_overall"]),
            scores=json.loads(row["verdict_scores"] or "{}"),
            explanation=row["verdict_explanation"],
            judged_at=float(row["judged_at"] or 0.0),
        )
    return StoredSession(int(row["id"]), record, verdict)


class SqliteSessions(SessionLog):
    """The sessions in the SQLite file at ``path`` (one connection, guarded by a lock)."""

    _mark = "?"

    def __init__(
        self, path: str | Path, *, retention_days: float = 30.0, redactor: Redactor | None = None
    ) -> None:
        super().__init__(retention_days=retention_days, redactor=redactor)
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = open_database(self.path, SESSION_TABLES.format(id="INTEGER PRIMARY KEY AUTOINCREMENT"))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
