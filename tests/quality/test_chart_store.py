"""Saved SPC charts live beside the flagged samples in one file, each store on its own connection."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

from llmpulse.processor.quality.chart_store import ChartStore
from llmpulse.processor.quality.store import FlaggedRecord, FlaggedStore

# The schema one FlaggedStore wrote before the chart tables moved to ChartStore.
_COMBINED_SCHEMA = """
CREATE TABLE flagged (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, feature TEXT NOT NULL,
    model TEXT NOT NULL, provider TEXT NOT NULL DEFAULT '', trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL DEFAULT '', response_id TEXT, sources TEXT NOT NULL, reasons TEXT NOT NULL,
    scores TEXT NOT NULL, judge_verdict TEXT, explanation TEXT, input TEXT, system_instructions TEXT,
    output TEXT, label TEXT, label_note TEXT, labelled_at REAL
);
CREATE INDEX flagged_feature_created ON flagged (feature, created);
CREATE INDEX flagged_created ON flagged (created);
CREATE TABLE spc_charts (
    feature TEXT NOT NULL, statistic TEXT NOT NULL, state TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (feature, statistic)
);
CREATE TABLE spc_resets (
    id INTEGER PRIMARY KEY AUTOINCREMENT, feature TEXT NOT NULL, statistic TEXT, requested REAL NOT NULL
);
"""


def _record(feature: str, service: str = "shop") -> FlaggedRecord:
    return FlaggedRecord(
        feature, "gpt-4o", b"\x01" * 16, ("check",), ("empty_output",), 1_700_000_000.0, service=service
    )


def test_a_database_written_before_the_split_reads_the_same(tmp_path: Path) -> None:
    db = tmp_path / "quality.db"
    with contextlib.closing(sqlite3.connect(db)) as old, old:  # closed after the commit
        old.executescript(_COMBINED_SCHEMA)
        old.execute(
            "INSERT INTO spc_charts VALUES (?, ?, ?, ?)",
            ("billing", "error_rate", json.dumps({"version": 1}), 1.0),
        )
        old.execute("INSERT INTO spc_resets (feature, statistic, requested) VALUES ('search', NULL, 1.0)")
        old.execute(
            "INSERT INTO flagged (created, feature, model, trace_id, sources, reasons, scores)"
            " VALUES (1.0, 'billing', 'gpt-4o', '00', '[\"check\"]', '[]', '{}')"
        )
    with ChartStore(db) as charts, FlaggedStore(db) as flagged:
        # charts saved before charts were kept per service: service "" (any), until one takes them over
        assert charts.load_charts() == {("", "billing", "error_rate"): {"version": 1}}
        assert charts.take_resets() == [(None, "search", None)]
        flagged.add(_record("billing"))
        assert [(s.record.service, s.record.feature) for s in flagged.query(limit=None)] == [
            ("shop", "billing"),
            ("unknown_service", "billing"),  # rows from before the service column
        ]
        charts.save_charts({("shop", "billing", "error_rate"): {"version": 2}})
        assert charts.load_charts() == {("shop", "billing", "error_rate"): {"version": 2}}  # legacy row gone


def test_charts_and_samples_share_one_file(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "quality.db"
    with ChartStore(db) as charts:  # creates the folder and its own tables only
        charts.save_charts({("shop", "billing", "judge_score"): {"version": 1}}, now=5.0)
        charts.save_charts({("blog", "billing", "judge_score"): {"version": 1}}, now=5.0)
    with FlaggedStore(db) as flagged:
        flagged.add(_record("billing"))
    with ChartStore(db) as charts, FlaggedStore(db) as flagged:
        assert charts.request_reset("billing", service="blog") == 1
        assert list(charts.load_charts()) == [("shop", "billing", "judge_score")]
        assert charts.request_reset("billing") == 1
        assert charts.load_charts() == {}
        assert charts.take_resets() == [("blog", "billing", None), (None, "billing", None)]
        assert flagged.count() == 1
    with contextlib.closing(sqlite3.connect(db)) as reader:
        tables = {row[0] for row in reader.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"flagged", "spc_charts", "spc_resets"} <= tables


def test_a_file_from_before_owner_epochs_gains_the_column_and_keeps_its_charts(tmp_path: Path) -> None:
    path = tmp_path / "quality.db"
    with contextlib.closing(sqlite3.connect(path)) as db:  # spc_charts as written before owner epochs
        db.executescript(
            "CREATE TABLE spc_charts (service TEXT NOT NULL DEFAULT '', feature TEXT NOT NULL,"
            " statistic TEXT NOT NULL, state TEXT NOT NULL, updated REAL NOT NULL,"
            " PRIMARY KEY (service, feature, statistic));"
            "INSERT INTO spc_charts VALUES ('shop', 'support', 'error_rate', '{\"index\": 4}', 1);"
        )
    with ChartStore(path) as store:
        assert store.load_charts() == {("shop", "support", "error_rate"): {"index": 4}}
        assert store.claim([("shop", "support")]) == {("shop", "support"): 1}
        assert store.save_charts({("shop", "support", "error_rate"): {"index": 5}}) == []
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT state, epoch FROM spc_charts").fetchall() == [('{"index": 5}', 1)]
