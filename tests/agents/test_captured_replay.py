"""Agent and session spans captured from the real instrumentation packages, replayed through the
processor: the metrics are exact.

The fixtures in tests/fixtures/agents/ were written by tests/fixtures/agents/capture.py (the
versions used are in each file): an openai-agents 0.24.0 app, agent ``weather`` with a tool
``get_weather``, two turns of one conversation against llmpulse's fake provider (each turn: a
model call asking for the tool, the tool, a model call answering; turn 2's tool call fails),
instrumented by OpenInference (``openinference-instrumentation-openai-agents``), OpenLLMetry
(``opentelemetry-instrumentation-openai-agents``) and the official OpenTelemetry GenAI
instrumentation (``opentelemetry-instrumentation-openai-agents-v2``). Each wraps the turns in
its own way: a root span for ``trace("weather workflow")`` (an AGENT span for OpenInference, an
``invoke_agent`` span without an agent name for the official one) or an ``Agent Workflow``
workflow span (OpenLLMetry), intermediate spans (OpenInference ``turn`` chains, the official
``unknown`` spans) between the agent span and its calls, and only OpenInference carries the
conversation (``session.id``, from ``using_session``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from prometheus_client.registry import CollectorRegistry

from llmpulse.processor.agents import AgentEngine, AgentSettings, agents_extension
from llmpulse.processor.agents import metric_names as N
from llmpulse.processor.agents.metrics import AgentsCollector
from llmpulse.processor.agents.settings import AgentCap
from llmpulse.processor.service import ProcessorService
from llmpulse.processor.settings import Settings
from llmpulse.testing.otlp import make_request, make_span

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "agents"
TOKENS_PER_TURN = (40 + 8) + (60 + 10)  # the fake provider's usage: tool call, then answer


def _spans(fixture: dict[str, Any]) -> tuple[list[Span], dict[str, Any], str]:
    spans = []
    for s in fixture["spans"]:
        spans.append(
            make_span(
                s["attributes"],
                trace_id=bytes.fromhex(s["trace_id"]),
                span_id=bytes.fromhex(s["span_id"]),
                parent_span_id=bytes.fromhex(s["parent_span_id"]),
                name=s["name"],
                kind=Span.SpanKind.Value("SPAN_KIND_" + s["kind"]),
                start_ns=s["start_time_unix_nano"],
                end_ns=s["end_time_unix_nano"],
                status_code=Status.StatusCode.Value("STATUS_CODE_" + s["status"]),
            )
        )
    first = fixture["spans"][0]
    return spans, first["resource"], first["scope"]


def _replay(producer: str) -> tuple[AgentEngine, CollectorRegistry, str]:
    fixture = json.loads((FIXTURES / f"{producer}.json").read_text())
    assert fixture["versions"]["openai-agents"] == "0.24.0"
    now = [1000.0]
    engine = AgentEngine(AgentSettings(), clock=lambda: now[0])
    service = ProcessorService(
        Settings(grpc_port=0, http_port=0, admin_port=0), extensions=[agents_extension(engine, tick=3600)]
    )
    spans, resource, scope = _spans(fixture)
    result = service.pipeline.process(make_request(spans, scope, resource=resource))
    assert result.rejected == 0, result.message
    now[0] += 300  # past every run's grace and the session timeout
    engine.tick()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentsCollector(engine.metrics))
    list(registry.collect())  # a new series shows 0 on its first scrape
    return engine, registry, resource["service.name"]


@pytest.mark.parametrize(
    ("producer", "workflow", "workflow_kind"),
    [
        ("openinference", "weather workflow", "agent"),
        ("openllmetry", "Agent Workflow", "workflow"),
        ("official", "weather workflow", "agent"),
    ],
)
def test_captured_agent_runs_replay_exactly(producer: str, workflow: str, workflow_kind: str) -> None:
    engine, registry, service = _replay(producer)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"service": service, "deployment_environment": "", **labels})

    # the agent's own runs hold every call: the workflow span above it counts none of them
    assert value(N.AGENT_RUNS_TOTAL, agent="weather", kind="agent", outcome="ok") == 2
    assert value(N.AGENT_RUN_LLM_CALLS + "_sum", agent="weather") == 4
    assert value(N.AGENT_RUN_TOOL_CALLS + "_sum", agent="weather") == 2
    assert value(N.AGENT_RUN_TOKENS + "_sum", agent="weather") == 2 * TOKENS_PER_TURN
    assert value(N.AGENT_RUNS_TOTAL, agent=workflow, kind=workflow_kind, outcome="ok") == 2
    assert value(N.AGENT_RUN_LLM_CALLS + "_sum", agent=workflow) == 0
    assert sorted(labels[2] for labels in engine.metrics.runs) == sorted(["weather", workflow])
    assert value(N.TOOL_CALLS_TOTAL, tool="get_weather") == 2
    assert value(N.TOOL_ERRORS_TOTAL, tool="get_weather") == 1
    assert value(N.AGENT_RUNAWAY_RUNS_TOTAL, agent="weather", reason="llm_calls") is None
    assert engine.metrics.unattributed == dict.fromkeys(N.UNATTRIBUTED_REASONS, 0)
    assert engine.metrics.pending_traces == 0


def test_captured_openinference_session_replays_exactly() -> None:
    _engine, registry, service = _replay("openinference")
    labels = {"service": service, "deployment_environment": "", "feature": "unknown"}
    assert registry.get_sample_value(N.SESSIONS_TOTAL, labels) == 1
    assert registry.get_sample_value(N.SESSION_TURNS + "_sum", labels) == 2
    assert registry.get_sample_value(N.SESSIONS_ABANDONED_TOTAL, labels) == 0
    # the producers without a conversation id make no session
    for producer in ("openllmetry", "official"):
        other, _, _ = _replay(producer)
        assert other.metrics.sessions == {}, producer


def _is_run(span: dict[str, Any]) -> bool:
    """An agent or workflow span: what the producers end last, after the run's calls."""
    attrs = span["attributes"]
    return (
        attrs.get("gen_ai.operation.name") == "invoke_agent"
        or attrs.get("openinference.span.kind") == "AGENT"
        or attrs.get("traceloop.span.kind") in ("agent", "workflow")
    )


def _open_runaway(
    fixture: dict[str, Any], settings: AgentSettings | None = None
) -> tuple[dict[str, float], dict[str, float], str]:
    """Replay ``fixture`` with every run span withheld, then send them: the runaway runs counted
    per agent while the runs were open, and in all once their spans were counted."""
    now = [1000.0]
    settings = settings or AgentSettings(max_llm_calls=1)  # 2 LLM calls a run
    engine = AgentEngine(settings, clock=lambda: now[0])
    service = ProcessorService(
        Settings(grpc_port=0, http_port=0, admin_port=0), extensions=[agents_extension(engine, tick=3600)]
    )
    runs = {"spans": [s for s in fixture["spans"] if _is_run(s)]}
    calls = {"spans": [s for s in fixture["spans"] if not _is_run(s)]}

    def runaway() -> dict[str, float]:
        return {
            labels[2]: float(s.runaway[N.RUNAWAY_LLM_CALLS][0])
            for labels, s in engine.metrics.runs.items()
            if N.RUNAWAY_LLM_CALLS in s.runaway
        }

    for part in (calls, runs):
        spans, resource, scope = _spans(part)
        assert service.pipeline.process(make_request(spans, scope, resource=resource)).rejected == 0
        if part is calls:
            engine.tick()  # no run has a span yet: nothing is counted but the runaway
            assert not any(s.runs for s in engine.metrics.runs.values())
            while_open = runaway()
    now[0] += 300
    engine.tick()
    return while_open, runaway(), resource["service.name"]


@pytest.mark.parametrize("producer", ["openinference", "openllmetry", "official"])
def test_a_captured_run_found_runaway_while_open_is_named_only_where_its_calls_name_it(producer: str) -> None:
    fixture = json.loads((FIXTURES / f"{producer}.json").read_text())
    while_open, after, _service = _open_runaway(fixture)
    # OpenInference and OpenLLMetry name the agent on its run span only; the official one writes
    # gen_ai.agent.name on every child, but its placeholder "OpenAI Agent", not the agent's name
    assert while_open == {"unknown": 2}, producer
    assert after == while_open  # each run counted once: not again when its span arrived


def test_a_child_span_that_names_its_agent_names_the_open_run() -> None:
    # the official capture with its children's gen_ai.agent.name a real name, as a producer that
    # names the run's agent on its calls writes it (llmpulse writes llmpulse.agent.name)
    fixture = json.loads((FIXTURES / "official.json").read_text())
    for span in fixture["spans"]:
        if not _is_run(span) and span["attributes"].get("gen_ai.agent.name") == "OpenAI Agent":
            span["attributes"]["gen_ai.agent.name"] = "weather"
    while_open, after, _service = _open_runaway(fixture)
    assert while_open == after == {"weather": 2}
    for span in fixture["spans"]:
        if not _is_run(span):
            span["attributes"].pop("gen_ai.agent.name", None)
            span["attributes"]["llmpulse.agent.name"] = "weather"
    assert _open_runaway(fixture)[:2] == ({"weather": 2}, {"weather": 2})


def test_an_open_run_whose_calls_name_its_agent_is_held_to_that_agent_s_cap() -> None:
    # the default cap is loose and the agent's own is tight: named on its calls, the open run is
    # runaway at its own cap; unnamed, it is held to the largest cap until its span names it
    fixture = json.loads((FIXTURES / "official.json").read_text())
    settings = AgentSettings(max_llm_calls=50, agent_caps={"weather": AgentCap(llm_calls=1, tool_calls=50)})
    assert _open_runaway(fixture, settings)[:2] == ({}, {"weather": 2})
    for span in fixture["spans"]:
        if not _is_run(span):
            span["attributes"].pop("gen_ai.agent.name", None)
            span["attributes"]["llmpulse.agent.name"] = "weather"
    assert _open_runaway(fixture, settings)[:2] == ({"weather": 2}, {"weather": 2})
