"""`llmpulse serve` turns agent traces from every producer into run, tool and session metrics.

A real ``llmpulse serve`` process (``[agents]`` with a short grace and session timeout) gets the
traces over OTLP/HTTP in the shapes the official GenAI conventions, OpenInference and
OpenLLMetry write (:mod:`tests.agents.producers`); the metrics are read from its ``/metrics``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmpulse.processor.agents import metric_names as N
from llmpulse.processor.metrics import names as M
from llmpulse.stack import components
from llmpulse.testing.otlp import make_request
from llmpulse.testing.polling import wait_until
from tests.agents.producers import openinference_agent_run, openllmetry_workflow, semconv_agent_run

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(admin: str) -> Samples:
    text = httpx.get(f"http://{admin}/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _get(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def _send(http: str, spans: list[Any], service: str) -> None:
    body = make_request(spans, resource={"service.name": service, "deployment.environment.name": "prod"})
    response = httpx.post(
        f"http://{http}/v1/traces",
        content=body.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 200, response.text


@contextlib.contextmanager
def serve_with_agents(tmp_path: Path, agents: str) -> Iterator[tuple[int, str]]:
    """A real ``llmpulse serve`` with the agents engine only (quality and drift off) and the
    ``[agents]`` settings in ``agents`` (TOML lines); its OTLP/HTTP port and its admin address."""
    config = tmp_path / "llmpulse.toml"
    config.write_text("[quality]\nenabled = false\n[drift]\nenabled = false\n[agents]\n" + agents)
    grpc, http, admin = components.distinct_free_ports(3)
    argv = [sys.executable, "-m", "llmpulse.cli", "serve", "--config", str(config)]
    argv += ["--grpc-port", str(grpc), "--http-port", str(http), "--admin-port", str(admin)]
    with components.ManagedProcess("processor", argv, f"http://127.0.0.1:{admin}/readyz", tmp_path / "p.log"):
        yield http, f"127.0.0.1:{admin}"


def test_serve_counts_runs_tools_and_sessions_from_three_producers(tmp_path: Path) -> None:
    agents = "run_grace_s = 0.1\ntick_s = 0.1\nsession_timeout_s = 1.5\nrepeated_tool_calls = 2\n"
    with serve_with_agents(tmp_path, agents) as (http, scrape):
        endpoint = f"127.0.0.1:{http}"
        weather = [("get_weather", '{"city": "Paris"}', False), ("get_weather", '{"city": "Paris"}', False)]
        _send(endpoint, semconv_agent_run(1, tools=[*weather, ("search", '{"q": "x"}', True)]), "semconv")
        _send(endpoint, semconv_agent_run(2, llm_calls=1, error=True), "semconv")  # 2nd turn of conv-semconv
        _send(endpoint, openinference_agent_run(3), "openinference")
        _send(endpoint, openllmetry_workflow(4), "openllmetry")
        _samples(scrape)  # new series are exposed at zero on their first scrape

        def sessions_closed() -> Samples | None:
            samples = _samples(scrape)
            closed = sum(v for (name, _), v in samples.items() if name == N.SESSIONS_TOTAL)
            return samples if closed >= 3 else None

        s = wait_until(sessions_closed, interval=0.2, message="three sessions never closed")
        prod = {"deployment_environment": "prod"}

        # the official conventions: two runs of "weather", the second one failed
        weather_run = {"service": "semconv", **prod, "agent": "weather"}
        assert _get(s, N.AGENT_RUNS_TOTAL, **weather_run, kind="agent", outcome="ok") == 1
        assert _get(s, N.AGENT_RUNS_TOTAL, **weather_run, kind="agent", outcome="error") == 1
        assert _get(s, N.AGENT_RUN_LLM_CALLS + "_sum", **weather_run) == 4
        assert _get(s, N.AGENT_RUN_TOOL_CALLS + "_sum", **weather_run) == 3
        assert _get(s, N.AGENT_RUN_TOKENS + "_sum", **weather_run) == 4 * 120
        priced = sum(
            v
            for (name, labels), v in s.items()
            if name == M.COST_USD_TOTAL and ("service", "semconv") in labels
        )
        assert priced > 0
        assert _get(s, N.AGENT_RUN_COST + "_sum", **weather_run) == pytest.approx(priced, rel=1e-12)
        assert _get(s, N.AGENT_RUN_DURATION + "_count", **weather_run) == 2
        # get_weather twice with the same arguments: runaway at repeated_tool_calls = 2, found while
        # the run was still open (before its span named the agent) and counted once, not again at its end
        open_run = {"service": "semconv", **prod, "agent": "unknown"}
        assert _get(s, N.AGENT_RUNAWAY_RUNS_TOTAL, **open_run, reason="repeated_tool_call") == 1
        assert _get(s, N.AGENT_RUNAWAY_RUNS_TOTAL, **weather_run, reason="repeated_tool_call") is None
        assert _get(s, N.AGENT_RUNAWAY_RUNS_TOTAL, **weather_run, reason="llm_calls") is None
        assert _get(s, N.TOOL_CALLS_TOTAL, service="semconv", **prod, tool="get_weather") == 2
        assert _get(s, N.TOOL_ERRORS_TOTAL, service="semconv", **prod, tool="get_weather") == 0
        assert _get(s, N.TOOL_ERRORS_TOTAL, service="semconv", **prod, tool="search") == 1

        # OpenInference: the root CHAIN is a workflow run with nothing directly under it, the
        # AGENT span holds the calls
        oi = {"service": "openinference", **prod}
        assert _get(s, N.AGENT_RUNS_TOTAL, **oi, agent="Agent workflow", kind="workflow", outcome="ok") == 1
        assert _get(s, N.AGENT_RUNS_TOTAL, **oi, agent="Assistant", kind="agent", outcome="ok") == 1
        assert _get(s, N.AGENT_RUN_LLM_CALLS + "_sum", **oi, agent="Assistant") == 2
        assert _get(s, N.AGENT_RUN_TOOL_CALLS + "_sum", **oi, agent="Assistant") == 1
        assert _get(s, N.AGENT_RUN_TOKENS + "_sum", **oi, agent="Assistant") == 540
        assert _get(s, N.AGENT_RUN_LLM_CALLS + "_sum", **oi, agent="Agent workflow") == 0
        assert _get(s, N.TOOL_CALLS_TOTAL, **oi, tool="get_weather") == 1

        # OpenLLMetry: the calls under the task count for the workflow above it
        ollm = {"service": "openllmetry", **prod, "agent": "trip_planner"}
        assert _get(s, N.AGENT_RUNS_TOTAL, **ollm, kind="workflow", outcome="ok") == 1
        assert _get(s, N.AGENT_RUN_LLM_CALLS + "_sum", **ollm) == 2
        assert _get(s, N.AGENT_RUN_TOOL_CALLS + "_sum", **ollm) == 1
        assert _get(s, N.AGENT_RUN_TOKENS + "_sum", **ollm) == 110
        assert _get(s, N.TOOL_ERRORS_TOTAL, service="openllmetry", **prod, tool="search_flights") == 1

        # sessions: conv-semconv had two turns; the other two left after the first answer
        for service, turns, abandoned in (("semconv", 2, 0), ("openinference", 1, 1), ("openllmetry", 1, 1)):
            labels = {"service": service, **prod, "feature": "unknown"}
            assert _get(s, N.SESSIONS_TOTAL, **labels) == 1, service
            assert _get(s, N.SESSION_TURNS + "_sum", **labels) == turns, service
            assert _get(s, N.SESSIONS_ABANDONED_TOTAL, **labels) == abandoned, service
        assert _get(s, N.AGENT_UNATTRIBUTED_TOTAL, reason="missing_parent") == 0
        assert _get(s, M.SPANS_ACCEPTED_TOTAL, kind="agent") == 2 + 2 + 2
        status = httpx.get(f"http://{scrape}/api/status").json()["agents"]
        assert status["agents"]["semconv/weather@prod"]["runs"] == 2
        assert status["runaway_recent"][0]["trace_id"] == (1).to_bytes(16, "big").hex()
        assert status["runaway_recent"][0]["open"] is True
