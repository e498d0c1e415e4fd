"""A SIGKILL keeps the drift references: `llmpulse serve` persists them on change, not only on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

from llmpulse.contract import attributes as A
from llmpulse.processor.drift.persist import read_references
from llmpulse.processor.drift.synthetic import SyntheticStream
from llmpulse.stack import components
from llmpulse.testing.otlp import llm_attributes, make_request, make_span
from llmpulse.testing.polling import wait_until

REFERENCE_SIZE = 40


def _serve(tmp_path: Path, name: str) -> tuple[components.ManagedProcess, str, str]:
    config = tmp_path / "llmpulse.toml"
    config.write_text(
        f"""
[quality]
enabled = false

[drift]
state_path = "{tmp_path / "drift.npz"}"
interval_s = 0.1

[drift.settings]
reference_size = {REFERENCE_SIZE}
min_current = 20
test_every = 20
"""
    )
    grpc, http, admin = (components.free_port() for _ in range(3))
    argv = [sys.executable, "-m", "llmpulse.cli", "serve", "--config", str(config)]
    argv += ["--grpc-port", str(grpc), "--http-port", str(http), "--admin-port", str(admin)]
    process = components.ManagedProcess(
        "processor", argv, f"http://127.0.0.1:{admin}/readyz", tmp_path / f"{name}.log"
    )
    return process, f"http://127.0.0.1:{http}", f"http://127.0.0.1:{admin}"


def _send(http: str, n: int, seed: int) -> None:
    spans = []
    for i, call in enumerate(SyntheticStream(seed).calls(n)):
        messages = [{"role": "user", "parts": [{"type": "text", "content": call.text}]}]
        attrs = llm_attributes(**{A.GEN_AI_INPUT_MESSAGES: json.dumps(messages)})
        spans.append(
            make_span(
                attrs, trace_id=(seed * 1000 + i + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big")
            )
        )
    body = make_request(spans).SerializeToString()
    response = httpx.post(
        f"{http}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}
    )
    assert response.status_code == 200, response.text


def _support(admin: str) -> dict[str, Any] | None:
    features = httpx.get(f"{admin}/api/drift").json()["features"]
    return next((f for f in features if f["feature"] == "support"), None)


def test_a_sigkill_after_the_reference_froze_keeps_it(tmp_path: Path) -> None:
    process, http, admin = _serve(tmp_path, "first")
    with process:
        _send(http, REFERENCE_SIZE + 5, seed=31)
        frozen = wait_until(
            lambda: (f := _support(admin)) is not None and f["state"] == "monitoring" and f,
            interval=0.1,
            message="the drift engine never froze the reference",
        )
        # persisted within the persist interval (1 s), without any stop
        wait_until(
            (tmp_path / "drift.npz").exists,
            interval=0.1,
            timeout=10,
            message="no drift.npz after the freeze",
        )
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        process.stop()
    [(arrays, meta)] = read_references(tmp_path / "drift.npz", "hashed", None)
    assert meta["feature"] == "support" and len(arrays["reference"]) == REFERENCE_SIZE
    assert meta["frozen_at"] == frozen["reference_frozen_at"]

    restarted, _http, admin = _serve(tmp_path, "second")
    with restarted:
        after = _support(admin)
    assert after is not None and after["state"] == "monitoring"
    assert after["reference_frozen_at"] == frozen["reference_frozen_at"]
    assert after["reference_samples"] == REFERENCE_SIZE
