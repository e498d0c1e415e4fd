"""agent() and tool(): semconv invoke_agent / execute_tool spans, parentage, arguments kept as a
digest unless content is captured, host exceptions untouched; and what the processor's agents
engine makes of them."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

import llmpulse
from llmpulse.contract import attributes as A
from llmpulse.instrumentation.agents import arguments_digest
from llmpulse.processor.agents import AgentEngine, AgentSettings, agents_extension
from llmpulse.processor.agents import metric_names as N
from llmpulse.processor.service import ProcessorService
from llmpulse.processor.settings import Settings
from llmpulse.testing.fake_provider import FakeProvider, FakeReply
from llmpulse.testing.polling import wait_until_async

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]


def test_agent_and_tool_spans_follow_the_conventions(spans, oai) -> None:
    with (
        llmpulse.context(feature="trip", conversation_id="conv-1"),
        llmpulse.agent("planner", agent_id="p-1"),
    ):
        oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with llmpulse.tool("get_weather", arguments={"city": "Paris"}, call_id="call_1"):
            pass
    by_name = {s.name: s for s in spans.all()}
    run, tool = by_name["invoke_agent planner"], by_name["execute_tool get_weather"]
    assert run.kind == SpanKind.INTERNAL
    assert dict(run.attributes) == {
        A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_AGENT,
        A.GEN_AI_AGENT_NAME: "planner",
        A.GEN_AI_AGENT_ID: "p-1",
        A.FEATURE: "trip",
        A.GEN_AI_CONVERSATION_ID: "conv-1",
    }
    _, digest = arguments_digest({"city": "Paris"})
    assert dict(tool.attributes) == {
        A.SPAN_KIND: A.SPAN_KIND_STEP,
        A.STEP_NAME: "get_weather",
        A.GEN_AI_OPERATION_NAME: A.OP_EXECUTE_TOOL,
        A.GEN_AI_TOOL_NAME: "get_weather",
        A.GEN_AI_TOOL_TYPE: "function",
        A.GEN_AI_TOOL_CALL_ID: "call_1",
        A.TOOL_ARGUMENTS_HASH: digest,
        A.FEATURE: "trip",
        A.GEN_AI_CONVERSATION_ID: "conv-1",
        # the run's agent, on every span inside it (semconv has gen_ai.agent.* on agent spans only)
        A.RUN_AGENT_NAME: "planner",
        A.RUN_AGENT_ID: "p-1",
    }
    assert len(digest) == 16 and A.GEN_AI_TOOL_CALL_ARGUMENTS not in tool.attributes
    llm = spans.one_llm()
    assert llm.parent.span_id == run.context.span_id == tool.parent.span_id
    assert llm.attributes[A.GEN_AI_CONVERSATION_ID] == "conv-1"
    assert (llm.attributes[A.RUN_AGENT_NAME], llm.attributes[A.RUN_AGENT_ID]) == ("planner", "p-1")
    assert A.GEN_AI_AGENT_NAME not in llm.attributes


def test_spans_inside_a_run_carry_the_nearest_runs_agent(spans, oai) -> None:
    with llmpulse.agent("planner", agent_id="p-1"):
        with llmpulse.step("rank"):
            pass
        with llmpulse.agent("researcher"):  # a sub-agent: its calls are its own
            oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            with llmpulse.tool("search"):
                pass
        with llmpulse.tool("book"):
            pass
    with llmpulse.tool("after"):
        pass
    by_name = {s.name: s.attributes for s in spans.all()}
    assert by_name["rank"][A.RUN_AGENT_NAME] == by_name["execute_tool book"][A.RUN_AGENT_NAME] == "planner"
    assert by_name["execute_tool search"][A.RUN_AGENT_NAME] == "researcher"
    assert A.RUN_AGENT_ID not in by_name["execute_tool search"]
    assert spans.one_llm().attributes[A.RUN_AGENT_NAME] == "researcher"
    inner = by_name["invoke_agent researcher"]  # a run span names itself, not the run around it
    assert inner[A.GEN_AI_AGENT_NAME] == "researcher" and A.RUN_AGENT_NAME not in inner
    assert (
        A.RUN_AGENT_NAME not in by_name["execute_tool after"]
        and A.RUN_AGENT_NAME not in by_name["invoke_agent planner"]
    )


def test_tool_arguments_are_recorded_redacted_only_with_content_on(make_spans) -> None:
    spans = make_spans(content="on")
    with llmpulse.tool("send_mail", arguments={"to": "jane@example.com"}):
        pass
    (span,) = spans.all()
    assert "jane@example.com" not in span.attributes[A.GEN_AI_TOOL_CALL_ARGUMENTS]
    assert json.loads(span.attributes[A.GEN_AI_TOOL_CALL_ARGUMENTS]).keys() == {"to"}


def test_decorated_tools_hash_each_call_and_pass_exceptions_through(spans) -> None:
    @llmpulse.tool("lookup")
    def lookup(key: str, *, exact: bool = True) -> str:
        if key == "boom":
            raise KeyError(key)
        return key.upper()

    @llmpulse.tool("alookup")
    async def alookup(key: str) -> str:
        return key

    @llmpulse.agent("looper")
    def run() -> str:
        return lookup("a") + lookup("a") + lookup("b")

    assert run() == "AAB"
    with pytest.raises(KeyError, match="boom"):
        lookup("boom")
    assert asyncio.run(alookup("x")) == "x"
    tools = [s for s in spans.all() if s.name == "execute_tool lookup"]
    digests = [s.attributes[A.TOOL_ARGUMENTS_HASH] for s in tools]
    assert digests[0] == digests[1] != digests[2]
    failed = tools[-1]
    assert failed.status.status_code == StatusCode.ERROR and failed.attributes[A.ERROR_TYPE] == "KeyError"
    (looper,) = [s for s in spans.all() if s.name == "invoke_agent looper"]
    assert all(t.parent.span_id == looper.context.span_id for t in tools[:3])
    assert [s.name for s in spans.all()].count("execute_tool alookup") == 1


def test_unserialisable_arguments_still_run_the_tool(spans) -> None:
    with llmpulse.tool("odd", arguments={"x": object()}) as tool:
        pass
    assert tool.name == "odd"
    (span,) = spans.all()
    assert A.TOOL_ARGUMENTS_HASH in span.attributes  # default=str serialises the object


async def test_the_processor_counts_a_hand_rolled_agent_loop(make_spans, provider: FakeProvider, oai) -> None:
    now = [1000.0]
    engine = AgentEngine(AgentSettings(repeated_tool_calls=3), clock=lambda: now[0])
    service = ProcessorService(
        Settings(grpc_port=0, http_port=0, admin_port=0), extensions=[agents_extension(engine, tick=3600)]
    )
    await service.startup()
    try:
        spans = make_spans()
        spans.tracer_provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"localhost:{service.grpc.port}", insecure=True))
        )
        provider.enqueue(*(FakeReply(text="ok", input_tokens=30, output_tokens=7) for _ in range(3)))

        run_still_open = threading.Event()

        def loop() -> None:
            with llmpulse.context(feature="trip", conversation_id="conv-9"), llmpulse.agent("planner"):
                for _ in range(3):
                    oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                    with llmpulse.tool("search", arguments={"q": "flights"}):
                        pass
                # the loop is caught while the run is open: its span has not ended (or arrived)
                assert run_still_open.wait(10), "the processor did not count the open run runaway"

        looping = asyncio.create_task(asyncio.to_thread(loop))
        key = ("unknown_service:python", "", "planner")

        def open_runaway() -> int:
            series = engine.metrics.runs.get(key)
            return 0 if series is None else series.runaway.get(N.RUNAWAY_REPEATED_TOOL_CALL, [0])[0]

        try:
            await wait_until_async(open_runaway, timeout=10, message="no runaway counted for planner")
            # named after the run's agent (llmpulse.agent.name on its calls), before its span came
            assert engine.metrics.runs[key].runs == {}
            assert not any(t.runs for t in engine.runs._traces.values())
            assert [(r["agent"], r["open"]) for r in engine.runaway_recent] == [("planner", True)]
        finally:
            run_still_open.set()
            await looping
        await wait_until_async(lambda: any(t.runs for t in engine.runs._traces.values()), timeout=10)
        now[0] += 3
        engine.tick()
        series = engine.metrics.runs[key]
        assert series.runs == {("agent", "ok"): 1}
        assert (series.llm_calls.sum, series.tool_calls.sum, series.tokens.sum) == (3, 3, 3 * 37)
        cost = service.derived.llm
        priced = sum(sum(s.cost.values()) for s in cost.values())
        assert series.cost.sum == pytest.approx(priced, rel=1e-12) and priced > 0
        # counted once (while open), not again when the run span arrived, and never as "unknown"
        assert list(engine.metrics.runs) == [key]
        assert series.runaway[N.RUNAWAY_REPEATED_TOOL_CALL][0] == 1
        now[0] += 180
        engine.tick()
        session = engine.metrics.sessions[("unknown_service:python", "", "trip")]
        assert (session.sessions, session.abandoned, session.turns.sum) == (1, 1, 1)
    finally:
        await service.shutdown()
