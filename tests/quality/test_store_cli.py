"""Flagged samples through a processor restart, then triage, label, export and spc reset by CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.registry import CollectorRegistry

from llmpulse.contract.attributes import UNKNOWN_SERVICE
from llmpulse.processor.quality import cli as quality_cli
from llmpulse.processor.quality.chart_store import ChartStore
from llmpulse.processor.quality.engine import QualityEngine
from llmpulse.processor.quality.judge import LLMJudge
from llmpulse.processor.quality.settings import JudgeSettings, QualitySettings, SpcSettings
from llmpulse.processor.quality.store import FlaggedRecord, FlaggedStore
from llmpulse.processor.quality.types import QualitySample
from llmpulse.testing.fake_provider import FakeProvider, FakeReply

GOOD = '{"correctness": 5, "completeness": 5, "tone": 5, "explanation": "Fine."}'
BAD = '{"correctness": 1, "completeness": 3, "tone": 4, "explanation": "Invents a refund policy."}'
Factory = Callable[..., QualitySample]


MakeEngine = Callable[[Path, CollectorRegistry], QualityEngine]


@pytest.fixture
def make_engine(
    judge_settings: JudgeSettings,
    judge_client: httpx.AsyncClient,
    fake_sleep: Callable[[float], Awaitable[None]],
) -> MakeEngine:
    """Engines on the given database that store every judged sample (audit rate 1)."""

    def make(db: Path, registry: CollectorRegistry) -> QualityEngine:
        settings = QualitySettings(
            judge=judge_settings,
            db_path=str(db),
            audit_rate=1.0,
            spc=SpcSettings(warmup_windows=3, requests_per_window=5),
        )
        judge = LLMJudge(judge_settings, sleep=fake_sleep, client=judge_client)
        return QualityEngine(settings, registry=registry, judge=judge, tick_s=3600)

    return make


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = quality_cli.main(list(argv))
    return code, capsys.readouterr().out


async def test_round_trip_through_restart_triage_label_and_export(
    tmp_path: Path,
    provider: FakeProvider,
    make_engine: MakeEngine,
    sample_factory: Factory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = tmp_path / "state" / "quality.db"
    now = time.time()
    provider.enqueue(FakeReply(text=BAD), FakeReply(text=GOOD), FakeReply(text=BAD))
    engine = make_engine(db, CollectorRegistry())
    await engine.start()
    refund = sample_factory(
        feature="billing", output_text="Mail a@b.example.com: refunds within 365 days", timestamp=now - 60
    )
    fine = sample_factory(feature="billing", timestamp=now - 50)
    other = sample_factory(feature="search", timestamp=now - 40)
    for sample in (refund, fine, other):
        await engine.judge_one(sample)
    engine.observe(sample_factory(feature="billing", output_text="", timestamp=now - 30))  # empty: check flag
    engine.observe(sample_factory(feature="billing", timestamp=now - 7200))  # ok, and too old for triage
    engine.observe(sample_factory(feature="billing", output_text="", timestamp=now - 7200))
    await engine.stop()

    # The processor is gone; the CLI reads the store it left behind.
    code, out = _cli(
        capsys, "triage", "--db", str(db), "--feature", "billing", "--since", "1h", "--limit", "20"
    )
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split() == [
        "ID",
        "TIME",
        "(UTC)",
        "SERVICE",
        "FEATURE",
        "MODEL",
        "SOURCE",
        "REASONS",
        "SCORES",
        "LABEL",
        "OUTPUT",
    ]
    assert len(lines) == 3  # the empty answer and the refund; not the audit sample, search or the old one
    assert "empty_output" in lines[1] and "check" in lines[1]
    assert "judge" in lines[2] and "low_correctness" in lines[2] and "corr=1" in lines[2]
    assert "[REDACTED:email]" in lines[2] and "a@b.example.com" not in out
    refund_id = int(lines[2].split()[0])
    code, out = _cli(capsys, "triage", "--db", str(db), "--since", "1h", "--include-audit", "--json")
    cases = [json.loads(line) for line in out.splitlines()]
    assert {c["feature"] for c in cases} == {"billing", "search"} and len(cases) == 4
    audit_id = next(c["id"] for c in cases if c["sources"] == ["audit"] and c["feature"] == "billing")

    assert _cli(capsys, "label", "--db", str(db), str(refund_id), "bad", "--note", "no such policy")[0] == 0
    assert _cli(capsys, "label", "--db", str(db), str(audit_id), "bad", "--note", "judge missed it")[0] == 0
    code = quality_cli.main(["label", "--db", str(db), "999", "good"])
    assert code == 1 and "no sample with id 999" in capsys.readouterr().err

    # A restarted processor turns the labels into the judge-agreement metric.
    registry = CollectorRegistry()
    restarted = make_engine(db, registry)
    await restarted.start()
    await restarted.tick()
    assert (
        registry.get_sample_value(
            "llmpulse_judge_human_labelled_samples", {"service": UNKNOWN_SERVICE, "feature": "billing"}
        )
        == 2
    )
    assert (
        registry.get_sample_value(
            "llmpulse_judge_human_agreement_ratio", {"service": UNKNOWN_SERVICE, "feature": "billing"}
        )
        == 0.5
    )
    await restarted.stop()

    out_file = tmp_path / "cases.jsonl"
    assert _cli(capsys, "export", "--db", str(db), "--out", str(out_file), "--include-audit")[0] == 0
    exported = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [c["id"] for c in exported] == [refund_id, audit_id]
    assert exported[0]["label"] == "bad" and exported[0]["note"] == "no such policy"
    assert exported[0]["input"] == refund.input_messages
    assert exported[0]["scores"] == {"correctness": 1.0, "completeness": 3.0, "tone": 4.0}
    assert exported[0]["trace_id"] == refund.trace_id.hex()


def test_cli_runs_as_a_module_and_resets_spc_baselines(tmp_path: Path) -> None:
    db = tmp_path / "quality.db"
    with ChartStore(db) as store:
        store.save_charts(
            {
                ("shop", "billing", "error_rate"): {"version": 1},
                ("shop", "billing", "judge_score"): {"version": 1},
                ("blog", "billing", "error_rate"): {"version": 1},
                ("shop", "search", "error_rate"): {"version": 1},
            }
        )
    run = [sys.executable, "-m", "llmpulse.processor.quality.cli", "spc"]
    result = subprocess.run(
        [
            *run,
            "--db",
            str(db),
            "reset",
            "--feature",
            "billing",
            "--service",
            "shop",
            "--statistic",
            "error_rate",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == (
        "SPC baseline reset for service shop feature billing (error_rate); 1 saved chart(s) removed"
    )
    with ChartStore(db) as store:
        assert set(store.load_charts()) == {
            ("shop", "billing", "judge_score"),
            ("blog", "billing", "error_rate"),  # the other service's chart of the same feature stays
            ("shop", "search", "error_rate"),
        }
        assert store.take_resets() == [("shop", "billing", "error_rate")]
        assert store.take_resets() == []


def test_a_missing_database_is_an_error_not_a_new_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo.db"
    assert quality_cli.main(["triage", "--db", str(missing)]) == 2
    assert "no quality database at" in capsys.readouterr().err
    assert not missing.exists()


def test_retention_drops_old_and_excess_rows(tmp_path: Path) -> None:
    with FlaggedStore(tmp_path / "q.db", retention_days=1, retention_rows=3) as store:
        for age_h in (50, 5, 4, 3, 2, 1):
            store.add(
                FlaggedRecord(
                    "f", "m", b"\x01" * 16, ("check",), ("empty_output",), created=1e9 - age_h * 3600
                )
            )
        assert store.prune(now=1e9) == 3
        assert [round((1e9 - s.record.created) / 3600) for s in store.query(limit=None)] == [1, 2, 3]


def test_since_parsing() -> None:
    assert quality_cli.parse_since("90m", now=10_000.0) == 10_000.0 - 5400
    assert quality_cli.parse_since("2026-11-25T00:00") == 1_795_564_800.0
    with pytest.raises(Exception, match="duration like 30m"):
        quality_cli.parse_since("yesterday")


def _llmpulse(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmpulse.cli", *argv], capture_output=True, text=True, timeout=60
    )


def test_a_bad_since_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    db = tmp_path / "quality.db"
    FlaggedStore(db).close()
    result = _llmpulse("triage", "--db", str(db), "--since", "2x")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "llmpulse triage: --since '2x': use a duration like 30m, 1h, 2d or an ISO time like 2026-11-25T10:00"
    ]


def test_triage_json_into_a_closed_pipe_ends_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "quality.db"
    with FlaggedStore(db) as store:
        for n in range(400):  # ~400 KB of JSON lines: far more than a pipe holds
            store.add(
                FlaggedRecord(
                    "billing",
                    "gpt-4o-mini",
                    n.to_bytes(16, "big"),
                    ("check",),
                    ("x",),
                    created=time.time() - 60,
                    output="y" * 1000,
                )
            )
    err = tmp_path / "stderr.txt"
    triage = f"{sys.executable} -m llmpulse.cli triage --db {db} --since 1d --limit 1000 --json"
    command = f"{triage} 2>{err} | head -n 1"
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)
    assert result.stdout.count("\n") == 1 and json.loads(result.stdout)["feature"] == "billing"
    assert err.read_text() == ""


def test_spc_show_says_when_there_are_no_charts_and_formats_the_numbers(tmp_path: Path) -> None:
    db = tmp_path / "quality.db"
    ChartStore(db).close()
    empty = _llmpulse("spc", "--db", str(db), "show")
    assert empty.returncode == 0 and empty.stdout.startswith(f"no SPC charts saved in {db} yet")
    with ChartStore(db) as store:
        store.save_charts(
            {
                ("shop", "billing", "cost_per_request_usd"): {
                    "baseline": {"mean": 0.000123456789, "sigma": 1.5e-05, "source": "sample", "L": 3.0104},
                    "ewma": 0.00012987654321,
                    "index": 42,
                },
                ("shop", "billing", "error_rate"): {"warmup_values": [0.1, 0.2], "warmup": 20, "index": 2},
            }
        )
    shown = _llmpulse("spc", "--db", str(db), "show").stdout.splitlines()
    assert shown[0].split() == [
        "SERVICE",
        "FEATURE",
        "STATISTIC",
        "STATE",
        "MEAN",
        "SIGMA",
        "L",
        "EWMA",
        "POINTS",
    ]
    assert shown[1].split() == ["shop", "billing", "cost_per_request_usd", "monitoring", "0.0001235",
                                "1.5e-05", "(sample)", "3.01", "0.0001299", "42"]  # fmt: skip
    assert shown[2].split() == [
        "shop",
        "billing",
        "error_rate",
        "warming",
        "up",
        "2/20",
        "-",
        "-",
        "-",
        "-",
        "2",
    ]
    other = _llmpulse("spc", "--db", str(db), "show", "--service", "blog")
    assert other.stdout.startswith(f"no SPC charts saved for service blog in {db} yet")
