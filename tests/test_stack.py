"""`llmpulse up` / `down`: the README's run command starts a working stack and stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmpulse.stack.local import FAKE_JUDGE_NOTE, Stack, StackPorts, free_ports
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


JUDGED_APP = """
import openai, llmpulse
client = openai.OpenAI(base_url="{base_url}", api_key="test", max_retries=0)
with llmpulse.context(feature="judged"):
    for n in range(150):
        question = [{{"role": "user", "content": f"question {{n}}: how do refunds work?"}}]
        client.chat.completions.create(model="gpt-4o-mini", messages=question)
"""


def _sample(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _free_ports() -> StackPorts:
    return free_ports()


@pytest.mark.prometheus3
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
            "console",
            "collector",
        ]
        # `up` prints the console's URL, and the console answers there with the stack's sources.
        console_url = f"http://127.0.0.1:{ports.console}"
        assert any(line.split()[:2] == ["console", console_url] for line in lines), lines
        with urllib.request.urlopen(console_url + "/", timeout=10) as response:
            home = response.read().decode()
        assert "Health" in home and f"http://127.0.0.1:{ports.prometheus}" in home
        again: list[str] = []
        assert stack.up(again.append) == 0
        assert "already up" in again[0]

        # A component that died is named and started again; the others keep their processes.
        sink = next(s for s in services if s.name == "webhook-sink")
        os.kill(sink.pid, signal.SIGKILL)
        wait_until(lambda: not _alive(sink.pid), timeout=10, message="the sink did not die")
        healed: list[str] = []
        assert stack.up(healed.append) == 0, "\n".join(healed)
        assert healed[0] == f"llmpulse stack: webhook-sink is down (log: {sink.log}); restarting it"
        assert not any("starting processor" in line for line in healed)
        after = stack.running()
        assert [s.name for s in after] == [s.name for s in services]
        assert {s.name: s.pid for s in after if s.name != "webhook-sink"} == {
            s.name: s.pid for s in services if s.name != "webhook-sink"
        }

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

        # Content from the one setting (sampled), judged by the stack's judge: verdicts, no errors.
        content_env = {
            **env,
            "OTEL_SERVICE_NAME": "stack-judged",
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "sampled",
            "LLMPULSE_SAMPLE_RATE": "1",
        }
        judged = subprocess.run(
            [sys.executable, "-c", JUDGED_APP.format(base_url=f"http://127.0.0.1:{ports.fake_provider}/v1")],
            env=content_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert judged.returncode == 0, judged.stderr
        admin = f"http://127.0.0.1:{ports.processor_admin}"

        def verdicts() -> float | None:
            text = httpx.get(admin + "/metrics").text
            return (
                _sample(text, 'llmpulse_judge_verdicts_total{feature="judged",service="stack-judged"}')
                or None
            )

        def judge_lines() -> str:
            lines = [x for x in httpx.get(admin + "/metrics").text.splitlines() if "llmpulse_judge_" in x]
            return f"the stack's judge gave no verdict in 60 s: {lines}"

        assert wait_until(verdicts, timeout=60, interval=0.5, message=judge_lines)
        metrics = httpx.get(admin + "/metrics").text
        errors = [line for line in metrics.splitlines() if line.startswith("llmpulse_judge_errors_total{")]
        assert errors and all(line.endswith(" 0.0") for line in errors), errors

        # ... and drift scores for it, from the stack's small quick-start windows (150 prompts).
        def drift_tested() -> dict[str, Any] | None:
            document = httpx.get(admin + "/api/drift", params={"feature": "judged"}).json()
            return document if document.get("tests_run", 0) >= 1 else None

        drift = wait_until(
            drift_tested,
            timeout=60,
            interval=0.5,
            message=lambda: f"no drift test: {httpx.get(admin + '/api/drift').json()}",
        )
        assert drift["service"] == "stack-judged", drift
        assert drift["tests"]["input"]["score"] is not None, drift
        quality = httpx.get(admin + "/api/status").json()["quality"]
        assert quality["judge"]["note"] == FAKE_JUDGE_NOTE
        assert quality["services"]["stack-judged"]["judged"]["content"]["state"] == "seen"
        assert quality["services"]["stack-test"]["stack-test"]["content"]["state"] == "capture_off"
        status = subprocess.run(
            [sys.executable, "-m", "llmpulse.cli", "status", "--url", admin],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert (
            f"judge: fake-judge at http://127.0.0.1:{ports.fake_provider}/v1  ({FAKE_JUDGE_NOTE})"
            in status.stdout
        )

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
