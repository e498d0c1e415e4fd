"""``llmpulse judge eval``: the real CLI on a real store, replaying through the local fake provider."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llmpulse.cli import main
from llmpulse.processor.quality.store import FlaggedRecord, FlaggedStore
from llmpulse.testing.fake_provider import FakeProvider, FakeReply, RecordedRequest

BAD_SCORES = {"correctness": 1, "completeness": 2, "tone": 4, "explanation": "Wrong refund window."}
GOOD_SCORES = {"correctness": 5, "completeness": 5, "tone": 5, "explanation": "Right."}


def _record(n: int, output: str, judge: str | None, source: str = "judge") -> FlaggedRecord:
    bad = judge == "bad"
    return FlaggedRecord(
        service="shop",
        feature="support",
        model="gpt-4o-mini",
        trace_id=n.to_bytes(16, "big"),
        sources=(source,),
        reasons=("low_correctness",) if bad else (),
        created=1_800_000_000.0 + n,
        scores={} if judge is None else {"correctness": 1.0 if bad else 5.0},
        judge_verdict=judge,
        input=json.dumps([{"role": "user", "parts": [{"type": "text", "content": f"question {n}"}]}]),
        output=output,
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Labelled samples: the stored judge agrees on 6 of 8 judged ones; a ninth was flagged by a
    user (no verdict); a tenth has no label. Human-bad answers say "wrong"."""
    path = tmp_path / "quality.db"
    rows = [  # (output, judge verdict, human label, source)
        ("wrong: refunds take 90 days", "bad", "bad", "judge"),
        ("wrong: no refunds", "bad", "bad", "judge"),
        ("wrong: ask the bank", "bad", "bad", "judge"),
        ("wrong: 2 years", "bad", "bad", "judge"),
        ("Refunds within 30 days.", "bad", "good", "judge"),
        ("wrong: never", "good", "bad", "audit"),
        ("Refunds within 30 days, from the order page.", "good", "good", "audit"),
        ("Within 30 days.", "good", "good", "audit"),
        ("wrong: call us", None, "bad", "feedback"),
        ("Unlabelled answer.", "bad", None, "judge"),
    ]
    with FlaggedStore(path) as store:
        for n, (output, judge, human, source) in enumerate(rows, 1):
            sample_id = store.add(_record(n, output, judge, source))
            if human:
                store.label(sample_id, human, "checked" if human == "bad" else None)
    return path


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Done]:
    """``llmpulse judge eval ARGS`` through the CLI's entry point, in this process (one import)."""
    for name in [k for k in os.environ if k.startswith("LLMPULSE_JUDGE_")]:
        monkeypatch.delenv(name)

    def run(*args: str, env: dict[str, str] | None = None) -> Done:
        with monkeypatch.context() as m:
            for k, v in (env or {}).items():
                m.setenv(k, v)
            code = main(["judge", "eval", *args])
        out, err = capsys.readouterr()
        return Done(code, out, err)

    return run


def test_the_installed_command_runs(db: Path) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("llmpulse")), "judge", "eval", "--db", str(db), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("LLMPULSE_JUDGE_")},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["labelled"] == 9


def _overall(rows: list[dict[str, Any]]) -> dict[str, Any]:
    (row,) = [r for r in rows if r["dimension"] == "overall"]
    return row


def test_stored_agreement_matches_a_hand_computation(db: Path, cli: Callable[..., Done]) -> None:
    done = cli("--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["labelled"] == 9
    row = _overall(out["stored"])
    # judge bad 5 (human bad 4, good 1); judge good 3 (human bad 1, good 2). n = 8, p_o = 6/8,
    # both raters say bad 5/8: p_e = (5/8)^2 + (3/8)^2 = 0.53125; kappa = 0.21875 / 0.46875.
    assert (row["service"], row["feature"], row["n"]) == ("shop", "support", 8)
    counts = [row[k] for k in ("judge_bad_human_bad", "judge_bad_human_good", "judge_good_human_bad")]
    assert [*counts, row["judge_good_human_good"]] == [4, 1, 1, 2]
    assert row["kappa"] == round(0.21875 / 0.46875, 4) == 0.4667
    assert (row["precision_bad"], row["recall_bad"]) == (0.8, 0.8)
    assert len(row["disagreements"]) == 2
    correctness = next(r for r in out["stored"] if r["dimension"] == "correctness")
    assert correctness["n"] == 8

    text = cli("--db", str(db))
    assert text.returncode == 0, text.stderr
    assert "8 of 9 labelled samples were judged" in text.stdout
    assert "0.4667" in text.stdout and "KAPPA" in text.stdout


def test_replay_with_a_prompt_and_few_shot_examples_measures_the_new_judge(
    db: Path, tmp_path: Path, cli: Callable[..., Done]
) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text('STRICTER JUDGE v2. Score:\n{rubric}\nAnswer with JSON keys {keys}, "explanation".')

    def judge(request: RecordedRequest) -> FakeReply:
        answer = request.body["messages"][1]["content"].rsplit("ANSWER:\n", 1)[1]
        return FakeReply(text=json.dumps(BAD_SCORES if "wrong" in answer else GOOD_SCORES), input_tokens=200)

    with FakeProvider() as provider:
        provider.set_handler(judge)
        done = cli(
            "--db",
            str(db),
            "--json",
            "--replay",
            "--prompt-file",
            str(prompt),
            "--few-shot",
            "2",
            env={"LLMPULSE_JUDGE_BASE_URL": provider.openai_base_url, "LLMPULSE_JUDGE_API_KEY": "k"},
        )
        requests = provider.requests
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    replayed = out["replay"]
    # the oldest bad and the oldest good labelled samples are the examples, left out of the measure
    assert replayed["few_shot_examples"] == [1, 5]
    assert replayed["judged"] == 7 == len(requests) and replayed["errors"] == {}
    assert replayed["input_tokens"] == 1400
    row = _overall(replayed["agreement"])
    assert row["n"] == 7 and row["kappa"] == 1.0 and row["disagreements"] == []
    assert [row[k] for k in ("judge_bad_human_bad", "judge_good_human_good")] == [5, 2]
    assert _overall(out["stored"])["kappa"] == 0.4667  # the stored figures stay beside it
    system = requests[0].body["messages"][0]["content"]
    assert system.startswith("STRICTER JUDGE v2.") and '"correctness"' in system
    assert "EXAMPLE 1 HUMAN LABEL: bad (checked)" in system and "EXAMPLE 2 HUMAN LABEL: good" in system
    assert requests[0].headers["authorization"] == "Bearer k"


def test_bad_invocations_are_one_line(db: Path, tmp_path: Path, cli: Callable[..., Done]) -> None:
    no_url = cli("--db", str(db), "--replay")
    assert no_url.returncode == 2 and "needs a judge endpoint" in no_url.stderr
    assert len(no_url.stderr.strip().splitlines()) == 1
    broken = tmp_path / "broken.txt"
    broken.write_text("Score {rubric} please")
    bad_prompt = cli(
        "--db", str(db), "--replay", "--prompt-file", str(broken), "--judge-url", "http://127.0.0.1:9/v1"
    )
    assert bad_prompt.returncode == 2 and "must contain {keys}" in bad_prompt.stderr
    assert "Traceback" not in bad_prompt.stderr
    without_replay = cli("--db", str(db), "--few-shot", "3")
    assert without_replay.returncode == 2 and "with --replay" in without_replay.stderr
    missing = cli("--db", str(tmp_path / "absent.db"))
    assert missing.returncode == 2 and "no quality database" in missing.stderr
    empty = tmp_path / "empty.db"
    FlaggedStore(empty).close()
    nothing = cli("--db", str(empty))
    assert nothing.returncode == 1 and "no labelled samples yet" in nothing.stderr


def test_an_unreachable_judge_is_reported_not_a_traceback(db: Path, cli: Callable[..., Done]) -> None:
    from llmpulse.stack.components import free_port

    done = cli("--db", str(db), "--replay", "--judge-url", f"http://127.0.0.1:{free_port()}/v1")
    assert done.returncode == 1, done.stderr
    assert "gave no verdict" in done.stderr and "Traceback" not in done.stderr
    assert "errors: transport=9" in done.stdout
