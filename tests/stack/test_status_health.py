"""``llmpulse status`` says which components of the local stack are up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmpulse import cli
from llmpulse.stack import local
from llmpulse.testing.fake_provider import FakeProvider


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _state(tmp_path: Path, ready_url: str) -> Path:
    services = [
        {"name": "processor", "pid": _dead_pid(), "url": "processor url", "log": "p.log", "ready_url": ""},
        {"name": "prometheus", "pid": os.getpid(), "url": "prom url", "log": "m.log", "ready_url": ready_url},
        # a state file written before ready_url was recorded
        {"name": "collector", "pid": os.getpid(), "url": "col url", "log": "c.log"},
        {
            "name": "alertmanager",
            "pid": os.getpid(),
            "url": "am url",
            "log": "a.log",
            "ready_url": "http://127.0.0.1:9/",
        },
    ]
    (tmp_path / local.STATE_FILE).write_text(json.dumps({"ports": {}, "services": services}))
    return tmp_path


def test_health_names_what_is_down_and_what_does_not_answer(tmp_path: Path) -> None:
    with FakeProvider() as provider:
        stack = local.Stack(_state(tmp_path, f"{provider.base_url}/healthz"))
        states = {service.name: state for service, state in stack.health()}
    assert states == {"processor": "down", "prometheus": "up", "collector": "up", "alertmanager": "not ready"}


def test_status_starts_with_the_stack_section_even_when_the_processor_is_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(local, "default_state_dir", lambda: _state(tmp_path, ""))
    assert cli.main(["status", "--url", "http://127.0.0.1:9"]) == 1
    out = capsys.readouterr()
    assert out.out.splitlines()[0] == f"local stack: processor, alertmanager not up ({tmp_path})"
    assert "  processor      down       processor url  log: p.log" in out.out
    assert "`llmpulse up` restarts what is down" in out.out
    assert out.err.startswith("llmpulse status: ")


def test_no_stack_no_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(local, "default_state_dir", lambda: tmp_path)
    assert cli.main(["status", "--url", "http://127.0.0.1:9"]) == 1
    assert capsys.readouterr().out == ""
