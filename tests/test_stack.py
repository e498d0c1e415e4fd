"""`llmpulse up` / `down`: the README's run command starts a working stack and stops it."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from llmpulse.stack.local import Stack, StackPorts, components
from llmpulse.testing.polling import wait_until

pytestmark = pytest.mark.components

APP = """
import openai, llmpulse
client = openai.OpenAI(base_url="{base_url}", api_key="test", max_retries=0)
with llmpulse.context(feature="stack-test"):
    for _ in range(3):
        with llmpulse.step("retrieval"):
            pass
        client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}])
"""


def _free_ports() -> StackPorts:
    return StackPorts(**{f.name: components.free_port() for f in dataclasses.fields(StackPorts)})


def test_up_runs_a_working_stack_and_down_stops_it(tmp_path: Path) -> None:
    ports = _free_ports()
    stack = Stack(tmp_path / "state", ports)
    lines: list[str] = []
    try:
        assert stack.up(lines.append) == 0, "\n".join(lines)
        services = stack.running()
        assert [s.name for s in services] == [
            "fake-provider",
            "webhook-sink",
            "alertmanager",
            "processor",
            "prometheus",
            "collector",
        ]
        again: list[str] = []
        assert stack.up(again.append) == 0
        assert "already up" in again[0]

        # An app instrumented by the environment variable alone, through the collector.
        env = {
            **os.environ,
            "LLMPULSE_ENABLED": "1",
            "OTEL_SERVICE_NAME": "stack-test",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{ports.collector_grpc}",
        }
        app = APP.format(base_url=f"http://127.0.0.1:{ports.fake_provider}/v1")
        result = subprocess.run(
            [sys.executable, "-c", app], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr

        def scraped() -> float | None:
            response = httpx.get(
                f"http://127.0.0.1:{ports.prometheus}/api/v1/query",
                params={"query": 'sum(llmpulse_requests_total{feature="stack-test"})'},
            ).json()
            series = response["data"]["result"]
            return float(series[0]["value"][1]) if series else None

        assert (
            wait_until(
                scraped,
                timeout=60,
                interval=0.25,
                message="Prometheus never scraped the processor's request count",
            )
            == 3.0
        ), "Prometheus never scraped the processor's request count"
    finally:
        pids = [s.pid for s in stack.running()]
        stack.down(lines.append)
    assert pids and not any(_alive(pid) for pid in pids)
    assert stack.running() == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes: reap it if it is our child.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0
