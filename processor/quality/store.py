"""Flagged samples and human labels in an embedded SQLite database.

The processor writes; ``llmpulse triage``, ``label`` and ``export`` read and label from another
process at the same time. WAL journal mode lets readers run beside the writer, and a busy
timeout rides over the short write locks. Content is redacted again before it is stored (the
instrumentation already redacts; a second pass costs little and catches custom producers).
Retention: :meth:`FlaggedStore.prune` drops rows older than the retention age and the oldest
rows past the row cap.

Each :class:`FlaggedStore` owns one connection guarded by a lock, so one instance may be shared
by threads (the engine writes through ``asyncio.to_thread``). The same file also holds the saved
SPC charts, through :class:`~llmpulse.processor.quality.chart_store.ChartStore`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmpulse.contract.attributes import UNKNOWN_SERVICE
from llmpulse.contract.redaction import Redactor
from llmpulse.processor.quality.types import QualitySample, Verdict

__all__ = [
    "AGREEMENT_SQL",
    "INSERT_COLUMNS",
    "INSERT_COUNT",
    "LABELS",
    "SCOPE_COLUMNS",
    "FlaggedRecord",
    "FlaggedStore",
    "StoredSample",
    "iter_jsonl",
    "open_database",
    "query_filter",
    "record_row",
    "sample_from_row",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS flagged (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
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
    labelled_at REAL,
    response_model TEXT,
    prompt_version TEXT,
    app_version TEXT,
    query_category TEXT,
    rag_index_version TEXT
);
CREATE INDEX IF NOT EXISTS flagged_created ON flagged (created);
"""
SCOPE_COLUMNS = ("response_model", "prompt_version", "app_version", "query_category", "rag_index_version")
"""What a flagged sample records about the app around the call, for the incident page's scope."""
# Applied in order to a database whose ``flagged`` table lacks the column: files written before
# flagged samples were kept per service (their rows belong to the default service), and before
# they recorded the scope columns (NULL: not recorded). The PostgreSQL store's numbered
# migrations (processor.store.migrations) add the same columns.
_MIGRATIONS = (
    ("service", "ALTER TABLE flagged ADD COLUMN service TEXT NOT NULL DEFAULT 'unknown_service'"),
    *((column, f"ALTER TABLE flagged ADD COLUMN {column} TEXT") for column in SCOPE_COLUMNS),
)
_INDEXES = """
DROP INDEX IF EXISTS flagged_feature_created;
CREATE INDEX IF NOT EXISTS flagged_service_feature_created ON flagged (service, feature, created);
"""

LABELS = ("good", "bad")

INSERT_COLUMNS = (
    "created, service, feature, model, provider, trace_id, span_id, response_id,"
    " sources, reasons, scores, judge_verdict, explanation, input, system_instructions, output, "
    + ", ".join(SCOPE_COLUMNS)
)
INSERT_COUNT = 16 + len(SCOPE_COLUMNS)
"""Columns (and placeholders) of :data:`INSERT_COLUMNS`."""
AGREEMENT_SQL = (
    "SELECT service, feature, COUNT(*), SUM(CASE WHEN label = judge_verdict THEN 1 ELSE 0 END) FROM flagged"
    " WHERE label IS NOT NULL AND judge_verdict IS NOT NULL GROUP BY service, feature"
)
"""Per (service, feature): labelled judged samples and how many the judge agreed with."""


@dataclass(frozen=True, slots=True)
class FlaggedRecord:
    """What the engine stores for one flagged (or audit) sample."""

    feature: str
    model: str
    trace_id: bytes
    sources: tuple[str, ...]
    """Who flagged it: ``judge``, ``check``, ``feedback``; ``audit`` for an unflagged judged sample."""
    reasons: tuple[str, ...]
    created: float
    provider: str = ""
    span_id: bytes = b""
    response_id: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    judge_verdict: str | None = None
    """``bad`` or ``good`` when judged, so human labels can be compared with the judge."""
    explanation: str | None = None
    input: str | None = None
    system_instructions: str | None = None
    output: str | None = None
    service: str = UNKNOWN_SERVICE
    """The ``service.name`` of the app that made the call."""
    response_model: str | None = None
    prompt_version: str | None = None
    app_version: str | None = None
    query_category: str | None = None
    rag_index_version: str | None = None
    """The scope columns (:data:`SCOPE_COLUMNS`): ``None`` when the call named none."""

    @classmethod
    def from_sample(
        cls,
        sample: QualitySample,
        sources: tuple[str, ...],
        reasons: tuple[str, ...],
        now: float,
        *,
        verdict: Verdict | None = None,
        judge_verdict: str | None = None,
    ) -> FlaggedRecord:
        """A record of ``sample``; ``now`` stands in for a sample without a timestamp."""
        messages = sample.input_messages
        return cls(
            service=sample.service,
            feature=sample.feature,
            model=sample.model,
            provider=sample.provider,
            trace_id=sample.trace_id,
            span_id=sample.span_id,
            response_id=sample.response_id,
            sources=sources,
            reasons=reasons,
            created=sample.timestamp or now,
            scores=dict(verdict.scores) if verdict else {},
            judge_verdict=judge_verdict,
            explanation=verdict.explanation if verdict else None,
            input=None if messages is None else json.dumps(messages, ensure_ascii=False),
            system_instructions=sample.system_instructions,
            output=sample.output_text,
            response_model=sample.response_model,
            prompt_version=sample.prompt_version,
            app_version=sample.app_version,
            query_category=sample.query_category,
            rag_index_version=sample.rag_index_version,
        )


@dataclass(frozen=True, slots=True)
class StoredSample:
    """A row read back from the store."""

    id: int
    record: FlaggedRecord
    label: str | None
    label_note: str | None
    labelled_at: float | None

    def to_eval_case(self) -> dict[str, Any]:
        """A JSON-ready eval-set case: input, output, the human label and the evidence."""
        r = self.record
        return {
            "id": self.id,
            "service": r.service,
            "feature": r.feature,
            "model": r.model,
            **{column: getattr(r, column) for column in SCOPE_COLUMNS if getattr(r, column) is not None},
            "trace_id": r.trace_id.hex(),
            "response_id": r.response_id,
            "created": r.created,
            "input": _maybe_json(r.input),
            "system_instructions": r.system_instructions,
            "output": r.output,
            "label": self.label,
            "note": self.label_note,
            "judge_verdict": r.judge_verdict,
            "scores": r.scores,
            "reasons": list(r.reasons),
            "sources": list(r.sources),
        }


def open_database(path: str, schema: str) -> sqlite3.Connection:
    """A connection to the SQLite file at ``path`` (or ``":memory:"``) with ``schema`` applied.

    Autocommit, WAL, usable from the writer thread; the flagged store and the chart store share
    the file and these settings.
    """
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=10.0, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(schema)
    return db


def _maybe_json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


class FlaggedStore:
    """The SQLite store. ``path`` may be ``":memory:"`` for a throwaway store."""

    def __init__(
        self,
        path: str | Path,
        *,
        retention_days: float = 30.0,
        retention_rows: int = 100_000,
        redactor: Redactor | None = None,
    ) -> None:
        self.path = str(path)
        self.retention_s = retention_days * 86400.0
        self.retention_rows = retention_rows
        self._redact = redactor or Redactor()
        self._lock = threading.Lock()
        self._db = open_database(self.path, _SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(flagged)")}
        for column, statement in _MIGRATIONS:
            if column not in columns:
                self._db.execute(statement)
        self._db.executescript(_INDEXES)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> FlaggedStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _text(self, text: str | None) -> str | None:
        return None if text is None else self._redact(text)

    # --- flagged samples ----------------------------------------------------------------
    _INSERT = f"INSERT INTO flagged ({INSERT_COLUMNS}) VALUES ({', '.join('?' * INSERT_COUNT)})"

    def _row(self, r: FlaggedRecord) -> tuple[Any, ...]:
        return record_row(r, self._text)

    def add(self, record: FlaggedRecord) -> int:
        """Store one record (content redacted); returns its id."""
        row = self._row(record)
        with self._lock:
            cursor = self._db.execute(self._INSERT, row)
            return int(cursor.lastrowid or 0)

    def add_many(self, records: Sequence[FlaggedRecord]) -> None:
        """Store several records in one transaction (content redacted)."""
        rows = [self._row(r) for r in records]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(self._INSERT, rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

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
        """Newest first. ``label`` is ``good``, ``bad``, ``any`` (labelled) or ``none`` (unlabelled)."""
        where, args = query_filter(service, feature, since, label, include_audit)
        sql = f"SELECT * FROM flagged WHERE {where.replace('%s', '?')} ORDER BY created DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            cursor = self._db.execute(sql, args)
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        return [sample_from_row(row) for row in rows]

    def get(self, sample_id: int) -> StoredSample | None:
        """One sample by id."""
        with self._lock:
            cursor = self._db.execute("SELECT * FROM flagged WHERE id = ?", (sample_id,))
            names = [d[0] for d in cursor.description]
            row = cursor.fetchone()
        return None if row is None else sample_from_row(dict(zip(names, row, strict=True)))

    def label(self, sample_id: int, label: str, note: str | None = None, *, now: float | None = None) -> bool:
        """Record a human label (``good`` or ``bad``); False when there is no such sample."""
        if label not in LABELS:
            raise ValueError(f"label must be one of {', '.join(LABELS)}, got {label!r}")
        with self._lock:
            cursor = self._db.execute(
                "UPDATE flagged SET label = ?, label_note = ?, labelled_at = ? WHERE id = ?",
                (label, note, time.time() if now is None else now, sample_id),
            )
            return cursor.rowcount == 1

    def agreement(self) -> dict[tuple[str, str], tuple[int, int]]:
        """Per (service, feature): (judged samples with a human label, of which the judge agreed)."""
        with self._lock:
            rows = self._db.execute(AGREEMENT_SQL).fetchall()
        return {(str(s), str(f)): (int(n), int(agree or 0)) for s, f, n, agree in rows}

    def prune(self, *, now: float | None = None) -> int:
        """Apply the retention policy; returns how many rows were deleted."""
        cutoff = (time.time() if now is None else now) - self.retention_s
        with self._lock:
            deleted = self._db.execute("DELETE FROM flagged WHERE created < ?", (cutoff,)).rowcount
            deleted += self._db.execute(
                "DELETE FROM flagged WHERE id NOT IN (SELECT id FROM flagged ORDER BY created DESC, id DESC"
                " LIMIT ?)",
                (self.retention_rows,),
            ).rowcount
        return int(deleted)

    def count(self) -> int:
        """Rows stored."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM flagged").fetchone()[0])


def record_row(r: FlaggedRecord, text: Callable[[str | None], str | None]) -> tuple[Any, ...]:
    """The ``flagged`` row of ``r`` in :data:`INSERT_COLUMNS` order; ``text`` redacts content."""
    return (
        r.created,
        r.service,
        r.feature,
        r.model,
        r.provider,
        r.trace_id.hex(),
        r.span_id.hex(),
        r.response_id,
        json.dumps(list(r.sources)),
        json.dumps(list(r.reasons)),
        json.dumps(r.scores),
        r.judge_verdict,
        text(r.explanation),
        text(r.input),
        text(r.system_instructions),
        text(r.output),
        *(getattr(r, column) for column in SCOPE_COLUMNS),
    )


def query_filter(
    service: str | None,
    feature: str | None,
    since: float | None,
    label: str | None,
    include_audit: bool,
) -> tuple[str, list[Any]]:
    """The WHERE clause (``%s`` placeholders) and its arguments of :meth:`FlaggedStore.query`."""
    where: list[str] = ["1=1"]
    args: list[Any] = []
    for column, value in (("service", service), ("feature", feature)):
        if value is not None:
            where.append(f"{column} = %s")
            args.append(value)
    if since is not None:
        where.append("created >= %s")
        args.append(since)
    if label in LABELS:
        where.append("label = %s")
        args.append(label)
    elif label == "any":
        where.append("label IS NOT NULL")
    elif label == "none":
        where.append("label IS NULL")
    if not include_audit:
        where.append("sources != '[\"audit\"]'")
    return " AND ".join(where), args


def sample_from_row(row: dict[str, Any]) -> StoredSample:
    """A :class:`StoredSample` from a ``flagged`` row given as column -> value."""
    record = FlaggedRecord(
        service=row["service"],
        feature=row["feature"],
        model=row["model"],
        provider=row["provider"],
        trace_id=bytes.fromhex(row["trace_id"]),
        span_id=bytes.fromhex(row["span_id"]),
        response_id=row["response_id"],
        sources=tuple(json.loads(row["sources"])),
        reasons=tuple(json.loads(row["reasons"])),
        scores=json.loads(row["scores"]),
        judge_verdict=row["judge_verdict"],
        explanation=row["explanation"],
        input=row["input"],
        system_instructions=row["system_instructions"],
        output=row["output"],
        created=row["created"],
        **{column: row.get(column) for column in SCOPE_COLUMNS},
    )
    return StoredSample(row["id"], record, row["label"], row["label_note"], row["labelled_at"])


def iter_jsonl(samples: list[StoredSample]) -> Iterator[str]:
    """One JSON line per sample, as eval-set cases."""
    for sample in samples:
        yield json.dumps(sample.to_eval_case(), ensure_ascii=False, sort_keys=True)
