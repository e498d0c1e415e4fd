"""SIGKILL at a random moment during load, ten times: what was durable is still there.

One real ``llmpulse serve`` (quality and drift on, every call flagged by a check) learns its
drift reference and SPC baselines, then is SIGKILLed under load and restarted ten times at
random moments (fixed seed). After each kill:

* the quality database (flagged samples and SPC charts) passes ``PRAGMA integrity_check``;
* the drift reference and the SPC baselines are the ones learnt before the first kill;
* every flagged sample the processor acknowledged as stored (``llmpulse_quality_flagged_stored_total``,
  counted after the commit, scraped just before the kill) is in the store.

docs/processor.md ("What survives a kill") says what is durable when.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import httpx

from llmpulse.contract import attributes as A
from llmpulse.processor.drift.persist import read_references
from llmpulse.processor.drift.synthetic import SyntheticStream
from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.chart_store import ChartStore
from llmpulse.stack import components
from llmpulse.testing.otlp import llm_attributes, make_request, make_span
from llmpulse.testing.polling import wait_until

KILLS = 10
SEED = 13
REFERENCE_SIZE = 40
BATCH = 100


class _Serve:
    """``llmpulse serve`` with quality and drift state in ``tmp_path``, restartable."""

    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "quality.db"
        self.drift = tmp_path / "drift.npz"
        config = tmp_path / "llmpulse.toml"
        config.write_text(
            f"""
[quality]
db_path = "{self.db}"
judge_rate = 0.0
audit_rate = 0.0
check_samples_per_minute = 1000000
[quality.judge]
enabled = false
[quality.spc]
warmup_windows = 3
requests_per_window = 10
[quality.default_rules]
min_chars = 1000

[drift]
state_path = "{self.drift}"
interval_s = 0.1
[drift.settings]
reference_size = {REFERENCE_SIZE}
min_current = 20
test_every = 20
"""
        )
        self.tmp_path = tmp_path
        self.config = config
        self.runs = 0

    def start(self) -> components.ManagedProcess:
        grpc, http, admin = (components.free_port() for _ in range(3))
        argv = [sys.executable, "-m", "llmpulse.cli", "serve", "--config", str(self.config)]
        argv += ["--grpc-port", str(grpc), "--http-port", str(http), "--admin-port", str(admin)]
        self.runs += 1
        self.http, self.admin = f"http://127.0.0.1:{http}", f"http://127.0.0.1:{admin}"
        process = components.ManagedProcess(
            "processor", argv, f"{self.admin}/readyz", self.tmp_path / f"run-{self.runs}.log"
        )
        return process.start(timeout=60)


class _Load:
    """Posts batches of flagged LLM spans with content from a thread until stopped."""

    def __init__(self, http: str, seed: int) -> None:
        self._http = http
        self._seed = seed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.accepted = 0

    def send(self, n: int) -> None:
        spans = []
        for i, call in enumerate(SyntheticStream(self._seed).calls(n)):
            self._seed += 1
            messages = [{"role": "user", "parts": [{"type": "text", "content": call.text}]}]
            answer = [{"role": "assistant", "parts": [{"type": "text", "content": "too short"}]}]
            attrs = llm_attributes(
                **{
                    A.GEN_AI_INPUT_MESSAGES: json.dumps(messages),
                    A.GEN_AI_OUTPUT_MESSAGES: json.dumps(answer),
                }
            )
            trace = (self._seed * 1000 + i + 1).to_bytes(16, "big")
            spans.append(make_span(attrs, trace_id=trace, span_id=(i + 1).to_bytes(8, "big")))
        body = make_request(spans).SerializeToString()
        response = httpx.post(
            f"{self._http}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}
        )
        if response.status_code == 200:
            self.accepted += n

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.send(BATCH)
            except httpx.HTTPError:
                return  # the processor was killed
            self._stop.wait(0.02)

    def __enter__(self) -> _Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _stored_ack(admin: str) -> float:
    text = httpx.get(f"{admin}/metrics").text
    for line in text.splitlines():
        if line.startswith(Q.FLAGGED_STORED_TOTAL + " "):
            return float(line.split()[1])
    raise AssertionError(f"{Q.FLAGGED_STORED_TOTAL} not on /metrics")


def _rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM flagged").fetchone()[0])


def _integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def _baselines(db: Path) -> dict[Any, Any]:
    with ChartStore(db) as store:
        return {key: state["baseline"] for key, state in store.load_charts().items() if state["baseline"]}


def _reference(path: Path) -> tuple[str, int]:
    [(arrays, meta)] = read_references(path, "hashed", None)
    return str(meta["frozen_at"]), len(arrays["reference"])


def _kill(process: components.ManagedProcess) -> None:
    assert process.pid is not None
    os.kill(process.pid, signal.SIGKILL)
    process.stop()


def test_ten_sigkills_under_load_keep_what_was_durable(tmp_path: Path) -> None:
    serve = _Serve(tmp_path)
    rng = random.Random(SEED)
    # learn: the drift reference freezes at 40 calls, the SPC baselines after 3 windows of 10
    process = serve.start()
    try:
        load = _Load(serve.http, seed=1)
        load.send(REFERENCE_SIZE + 20)
        wait_until(serve.drift.exists, interval=0.1, timeout=15, message="no drift.npz after the freeze")
        wait_until(
            lambda: len(_baselines(serve.db)) >= 3, interval=0.2, timeout=15, message="no SPC baselines"
        )
        reference, baselines = _reference(serve.drift), _baselines(serve.db)
        wait_until(lambda: _stored_ack(serve.admin) >= 1, interval=0.1, timeout=15, message="nothing stored")
    finally:
        _kill(process)
    rows = _rows(serve.db)
    seed = 1000
    for kill in range(KILLS):
        process = serve.start()
        try:
            with _Load(serve.http, seed=seed) as load:
                threading.Event().wait(rng.uniform(0.2, 2.0))
                acked = _stored_ack(serve.admin)
                _kill(process)
        finally:
            process.stop()
        seed += 10_000
        assert _integrity(serve.db) == "ok", f"kill {kill + 1}"
        assert _reference(serve.drift) == reference, f"kill {kill + 1}: the drift reference changed"
        after = _baselines(serve.db)
        assert {key: after.get(key) for key in baselines} == baselines, f"kill {kill + 1}: SPC baselines"
        now = _rows(serve.db)
        assert now >= rows + acked, f"kill {kill + 1}: {rows + acked:.0f} acknowledged, {now} stored"
        print(
            f"\nkill {kill + 1}: {load.accepted} spans accepted in this run, {acked:.0f} flagged samples "
            f"acknowledged as stored, {now - rows} stored (integrity ok, reference and baselines kept)"
        )
        rows = now
