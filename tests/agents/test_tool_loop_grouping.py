"""How the agents engine groups LLM calls into tool-call loops, through the processor's pipeline.

Consecutive loops under one parent, a plain call, a new question that ends a loop, traces that
have agent or tool spans (their runs count the calls, never a loop as well), the captured peers'
spans with and without their agent spans, and the bound on open loops (evictions counted).
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmpulse.contract import attributes as A
from llmpulse.processor.agents import AgentEngine
from llmpulse.processor.agents import metric_names as N
from llmpulse.processor.service import ProcessorService
from llmpulse.testing.otlp import T0, llm_attributes, make_request, make_span
from tests.agents.test_bad_trees import Clock
from tests.agents.test_bad_trees import _engine as _engine_on_a_clock
from tests.agents.test_captured_replay import FIXTURES, _replay, _spans

TRACE = (7).to_bytes(16, "big")
PARENT = (1).to_bytes(8, "big")


def _engine(**settings: Any) -> tuple[AgentEngine, ProcessorService, Clock]:
    return _engine_on_a_clock(3600, **settings)  # the test ticks the engine itself


def _process(service: ProcessorService, spans: list[Span]) -> None:
    result = service.pipeline.process(make_request(spans))
    assert result.rejected == 0, result.message


def _tool_span() -> Span:
    """An execute_tool span under PARENT in TRACE."""
    return make_span(
        {A.GEN_AI_OPERATION_NAME: "execute_tool", A.GEN_AI_TOOL_NAME: "lookup"},
        trace_id=TRACE,
        span_id=(50).to_bytes(8, "big"),
        parent_span_id=PARENT,
    )


def _call(
    n: int, *, asks: int = 0, results: int | None = None, trace: bytes = TRACE, hashes: tuple[str, ...] = ()
) -> Span:
    """An llmpulse LLM span under PARENT: ``asks`` tool calls requested, ``results`` carried."""
    extra: dict[str, Any] = {A.GEN_AI_USAGE_INPUT_TOKENS: 10 * n, A.GEN_AI_USAGE_OUTPUT_TOKENS: n}
    if asks:
        extra[A.FINISH_REASON] = A.FINISH_TOOL_CALLS
        extra[A.GEN_AI_RESPONSE_FINISH_REASONS] = ["tool_calls"]
        extra[A.TOOL_CALLS_COUNT] = asks
        extra[A.TOOL_CALLS_HASHES] = list(hashes or (f"h{n}-{i}" for i in range(asks)))
    if results is not None:
        extra[A.TOOL_RESULTS_COUNT] = results
    return make_span(
        llm_attributes(**extra),
        trace_id=trace,
        span_id=(100 + n).to_bytes(8, "big"),
        parent_span_id=PARENT,
        start_ns=T0 + n * 10**9,
    )


def _request(trace: bytes = TRACE) -> Span:
    """The app's own request span, PARENT: it ends, and so arrives, after its calls."""
    return make_span({"http.route": "/ask"}, trace_id=trace, span_id=PARENT, name="POST /ask")


def _loops(engine: AgentEngine) -> dict[tuple[str, str, str], Any]:
    return {labels: s for labels, s in engine.metrics.runs.items() if (N.KIND_TOOL_LOOP, "ok") in s.runs}


def test_consecutive_loops_under_one_parent_are_separate_runs_and_plain_calls_are_none() -> None:
    engine, service, clock = _engine()
    _process(service, [_call(1)])  # a plain call: no loop
    _process(service, [_call(2, asks=2), _call(3, asks=1, results=2), _call(4, results=3)])
    _process(service, [_call(5, asks=1), _call(6, results=1)])  # the next question, another loop
    _process(service, [_call(7, asks=1), _call(8)])  # asked, then a new question without results
    clock.now += 3
    engine.tick()
    assert _loops(engine) == {}  # closed, but waiting for their parent: it could be an agent's span
    _process(service, [_request()])
    clock.now += 3
    engine.tick()
    (series,) = _loops(engine).values()
    assert series.runs[(N.KIND_TOOL_LOOP, "ok")] == 2
    assert series.llm_calls.sum == 3 + 2
    assert series.tool_calls.sum == 3 + 1
    assert series.tokens.sum == sum(11 * n for n in (2, 3, 4, 5, 6))
    assert engine.loops.open_loops == 0


def test_a_trace_with_agent_or_tool_spans_counts_its_calls_in_its_run_only() -> None:
    engine, service, clock = _engine()
    tool = _tool_span()
    agent = {A.GEN_AI_OPERATION_NAME: "invoke_agent", A.GEN_AI_AGENT_NAME: "planner"}
    run = make_span(agent, trace_id=TRACE, span_id=PARENT)
    _process(service, [_call(1, asks=1), tool, _call(2, results=1), run])
    clock.now += 3
    engine.tick()
    assert _loops(engine) == {}
    (planner,) = engine.metrics.runs.values()
    assert planner.runs == {("agent", "ok"): 1} and planner.llm_calls.sum == 2


def test_captured_peers_make_no_loop_beside_their_runs_and_openllmetry_calls_alone_make_loops() -> None:
    for producer in ("official", "openinference", "openllmetry"):
        engine, _registry, _service = _replay(producer)
        assert _loops(engine) == {}, producer
    # OpenLLMetry's Responses spans, without the agent and tool spans: each turn's first call
    # says ["stop", "tool_call"], its second ["stop"]: two loops of two calls and one tool call
    spans, resource, scope = _spans(json.loads((FIXTURES / "openllmetry.json").read_text()))
    calls = [s for s in spans if s.name == "openai.response"]
    assert len(calls) == 4
    engine, service, clock = _engine()
    result = service.pipeline.process(make_request(calls, scope, resource=resource))
    assert result.rejected == 0
    clock.now += 3
    engine.tick()
    assert _loops(engine) == {}  # their parents never come: counted trace_idle_s after they closed
    clock.now += 60
    engine.tick()
    (series,) = _loops(engine).values()
    assert (series.runs[(N.KIND_TOOL_LOOP, "ok")], series.llm_calls.sum, series.tool_calls.sum) == (2, 4, 2)
    assert series.tokens.sum == 2 * ((40 + 8) + (60 + 10))


def test_open_loops_are_bounded_and_the_evicted_ones_counted() -> None:
    engine, service, clock = _engine(max_pending_traces=2)
    for n in range(1, 6):  # five traces whose model asked for a tool and nothing followed
        _process(service, [_call(n, asks=1, trace=(n).to_bytes(16, "big"))])
    assert engine.loops.open_loops == 2
    clock.now += 3
    engine.tick()
    # three open loops closed for room; of those closed, at most two wait: the oldest counted
    assert engine.metrics.evictions[N.EVICT_LOOP_CAP] == 3 + 1
    assert engine.loops.waiting_loops == 2
    assert _loops(engine) == {}  # one call each: no loop was seen
    clock.now += 60
    engine.tick()  # the two evicted ones counted; the two left open close, idle, and wait
    assert (engine.loops.open_loops, engine.loops.waiting_loops) == (0, 2)
    clock.now += 60
    engine.tick()
    assert (engine.loops.open_loops, engine.loops.waiting_loops) == (0, 0)


def test_a_loop_found_runaway_while_open_is_counted_once_with_its_trace() -> None:
    engine, service, clock = _engine(repeated_tool_calls=3)
    same = ("same-hash",)
    _process(
        service,
        [_call(1, asks=1, hashes=same), *(_call(n, asks=1, results=1, hashes=same) for n in (2, 3, 4))],
    )
    (series,) = engine.metrics.runs.values()
    assert series.runaway[N.RUNAWAY_REPEATED_TOOL_CALL][:2] == [1, TRACE]  # at the 3rd request
    _process(service, [_call(5, results=1), _request()])
    clock.now += 3
    engine.tick()
    assert series.runaway[N.RUNAWAY_REPEATED_TOOL_CALL][0] == 1  # not again when it closed
    assert series.runs == {(N.KIND_TOOL_LOOP, "ok"): 1} and series.llm_calls.sum == 5


def test_calls_inside_an_llmpulse_agent_run_are_not_grouped_again() -> None:
    engine, service, clock = _engine()
    named = [_call(1, asks=1), _call(2, results=1)]
    for span in named:  # llmpulse.agent("planner") puts its name on every span inside the run
        span.attributes.add(key=A.RUN_AGENT_NAME).value.string_value = "planner"
    _process(service, [named[0]])
    assert engine.loops.open_loops == 0  # no loop opened, so none can be found runaway beside the run
    agent = {A.GEN_AI_OPERATION_NAME: "invoke_agent", A.GEN_AI_AGENT_NAME: "planner"}
    _process(service, [named[1], make_span(agent, trace_id=TRACE, span_id=PARENT)])
    clock.now += 3
    engine.tick()
    assert _loops(engine) == {} and engine.loops.open_loops == 0
    (planner,) = engine.metrics.runs.values()
    assert planner.runs == {("agent", "ok"): 1} and planner.llm_calls.sum == 2


def test_a_loop_whose_trace_turns_out_to_have_agent_spans_is_dropped_uncounted_when_evicted() -> None:
    engine, service, clock = _engine(max_pending_traces=1)
    tool = _tool_span()
    _process(service, [_call(1, asks=1), tool])  # the call opened a loop before the tool span came
    _process(service, [_call(2, asks=1, trace=(8).to_bytes(16, "big"))])  # room for another
    clock.now += 3
    engine.tick()
    assert engine.metrics.evictions[N.EVICT_LOOP_CAP] == 0
    assert engine.loops.open_loops == 1


def test_a_loop_left_open_in_a_trace_with_tool_spans_is_never_counted_even_after_the_trace_idles() -> None:
    engine, service, clock = _engine()
    tool = _tool_span()
    _process(service, [_call(1, asks=1), _call(2, asks=1, results=1), tool])  # no call after the tool
    for _ in range(3):  # past trace_idle_s (the trace is dropped), then past the grace
        clock.now += 31
        engine.tick()
    engine.flush()
    assert _loops(engine) == {} and engine.loops.open_loops == 0


def test_a_loop_whose_parent_comes_later_as_an_agent_span_counts_for_that_run_only() -> None:
    engine, service, clock = _engine()
    _process(service, [_call(1, asks=1), _call(2, results=1)])  # a peer's agent with no tool spans
    clock.now += 5  # past the grace: its run's span is in the exporter's next batch
    engine.tick()
    agent = {A.GEN_AI_OPERATION_NAME: "invoke_agent", A.GEN_AI_AGENT_NAME: "planner"}
    _process(service, [make_span(agent, trace_id=TRACE, span_id=PARENT)])
    clock.now += 3
    engine.tick()
    assert _loops(engine) == {}
    (planner,) = engine.metrics.runs.values()
    assert planner.runs == {("agent", "ok"): 1} and planner.llm_calls.sum == 2
