"""Bad span trees cost bounded memory and are counted by reason: missing parents, parent-id
cycles, 10^5 tool calls in one run, too many pending traces, late spans, runs that never end,
a conversation id per call. Spans go through the processor's pipeline; the clock is the test's."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmpulse.contract import attributes as A
from llmpulse.processor.agents import AgentEngine, AgentSettings, agents_extension
from llmpulse.processor.agents import metric_names as N
from llmpulse.processor.agents.settings import AgentCap
from llmpulse.processor.service import ProcessorService
from llmpulse.processor.settings import Settings
from llmpulse.testing.otlp import llm_attributes, make_request, make_span
from tests.agents.producers import semconv_agent_run

TRACE = (7).to_bytes(16, "big")


def _id(n: int) -> bytes:
    """Span id ``n``; 0 is no parent (a root span)."""
    return n.to_bytes(8, "big") if n else b""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _engine(tick: float | None = None, **settings: Any) -> tuple[AgentEngine, ProcessorService, Clock]:
    """An engine on a clock the test moves, in a service whose pipeline the test feeds; ``tick``
    seconds between the extension's own passes (default: the settings')."""
    clock = Clock()
    engine = AgentEngine(AgentSettings(**settings), clock=clock)
    service = ProcessorService(
        Settings(grpc_port=0, http_port=0, admin_port=0), extensions=[agents_extension(engine, tick=tick)]
    )
    return engine, service, clock


def _process(service: ProcessorService, spans: list[Span]) -> None:
    result = service.pipeline.process(make_request(spans))
    assert result.rejected == 0, result.message


def _call(span_id: int, parent: int, trace: bytes = TRACE, **extra: Any) -> Span:
    return make_span(
        llm_attributes(**extra), trace_id=trace, span_id=_id(span_id), parent_span_id=_id(parent)
    )


def _tool(span_id: int, parent: int, arguments: str = '{"q": 1}', trace: bytes = TRACE) -> Span:
    attrs = {A.GEN_AI_OPERATION_NAME: "execute_tool", A.GEN_AI_TOOL_NAME: "lookup"}
    attrs[A.GEN_AI_TOOL_CALL_ARGUMENTS] = arguments
    return make_span(attrs, trace_id=trace, span_id=_id(span_id), parent_span_id=_id(parent), duration_s=0.01)


def _run(span_id: int, agent: str = "planner", parent: int | None = None, trace: bytes = TRACE) -> Span:
    attrs = {A.GEN_AI_OPERATION_NAME: "invoke_agent", A.GEN_AI_AGENT_NAME: agent}
    return make_span(
        attrs,
        trace_id=trace,
        span_id=_id(span_id),
        parent_span_id=_id(parent) if parent else b"",
        duration_s=2.0,
    )


def _other(span_id: int, parent: int) -> Span:
    return make_span(
        {"http.route": "/chat"}, trace_id=TRACE, span_id=_id(span_id), parent_span_id=_id(parent)
    )


def _run_series(engine: AgentEngine, agent: str = "planner") -> Any:
    return engine.metrics.runs[("unknown_service", "", agent)]


def test_calls_under_a_span_of_another_kind_count_for_the_run_and_a_missing_parent_is_counted() -> None:
    engine, service, clock = _engine()
    # run 1 > http span 2 > call 3 (bridged), and call 4 under span 99 that never arrives
    _process(service, [_call(3, 2), _call(4, 99), _other(2, 1), _run(1)])
    clock.now += 3
    engine.tick()
    assert _run_series(engine).llm_calls.sum == 1
    assert engine.metrics.unattributed[N.UNATTRIBUTED_MISSING_PARENT] == 0  # span 99 may still come
    clock.now += engine.settings.trace_idle_s
    engine.tick()
    assert engine.metrics.unattributed[N.UNATTRIBUTED_MISSING_PARENT] == 1
    assert engine.metrics.pending_traces == 0


def test_parent_id_cycles_are_counted_not_followed_forever() -> None:
    engine, service, clock = _engine()
    # span 5 <-> span 6 loop, span 8 is its own parent; run 1 has one real call
    _process(
        service, [_call(10, 5), _call(11, 8), _call(12, 1), _other(5, 6), _other(6, 5), _other(8, 8), _run(1)]
    )
    clock.now += 3
    engine.tick()
    assert _run_series(engine).llm_calls.sum == 1
    assert engine.metrics.unattributed[N.UNATTRIBUTED_CYCLE] == 2


def test_a_hundred_thousand_tool_calls_in_one_run_stay_within_the_caps() -> None:
    engine, service, clock = _engine(max_links_per_trace=1000, max_tool_keys_per_run=100)
    n = 100_000
    for start in range(0, n, 5000):
        _process(service, [_tool(10 + i, 1, json.dumps({"page": i})) for i in range(start, start + 5000)])
    trace = engine.runs._traces[TRACE]
    assert len(trace.parents) == 1000  # links capped
    assert len(trace.pending) == 1  # one contribution per parent, however many calls
    assert len(trace.pending[_id(1)].repeats) == 100
    _process(service, [_run(1)])
    clock.now += 3
    engine.tick()
    series = _run_series(engine)
    assert series.tool_calls.sum == n
    # found runaway while the run was open (its span not there yet: agent "unknown"), counted once
    (open_run,) = [s for labels, s in engine.metrics.runs.items() if labels[2] == "unknown"]
    assert (
        open_run.runaway[N.RUNAWAY_TOOL_CALLS][0] == 1 and open_run.runaway[N.RUNAWAY_TOOL_CALLS][1] == TRACE
    )
    assert N.RUNAWAY_TOOL_CALLS not in series.runaway  # not counted again when the run ended
    assert N.RUNAWAY_REPEATED_TOOL_CALL not in open_run.runaway  # every call had new arguments
    assert engine.metrics.evictions[N.EVICT_LINKS_CAP] == 1
    assert engine.metrics.evictions[N.EVICT_TOOL_KEYS_CAP] == 1
    assert engine.metrics.tools[("unknown_service", "", "lookup")].calls == n


def test_the_same_tool_with_the_same_arguments_is_a_runaway_run_with_its_trace_as_exemplar() -> None:
    engine, service, clock = _engine(repeated_tool_calls=4)
    _process(service, [_tool(10 + i, 1, '{"q": "same"}') for i in range(4)] + [_run(1)])
    other = (8).to_bytes(16, "big")
    _process(
        service, [_tool(10 + i, 1, '{"q": "same"}', trace=other) for i in range(3)] + [_run(1, trace=other)]
    )
    clock.now += 3
    engine.tick()
    # found at the 4th repeat, before the run's span arrived (agent "unknown"), and only once
    (open_run,) = [s for labels, s in engine.metrics.runs.items() if labels[2] == "unknown"]
    assert open_run.runaway[N.RUNAWAY_REPEATED_TOOL_CALL][:2] == [1, TRACE]
    assert N.RUNAWAY_REPEATED_TOOL_CALL not in _run_series(engine).runaway
    status = engine.status()
    assert status["runaway_recent"][0]["max_repeated_tool_calls"] == 4
    assert [r["open"] for r in status["runaway_recent"]] == [True]


def test_per_agent_caps_and_the_default_cap() -> None:
    engine, service, clock = _engine(
        max_llm_calls=5, agent_caps={"planner": AgentCap(llm_calls=2, tool_calls=50)}
    )
    _process(service, [*(_call(10 + i, 1) for i in range(3)), _run(1, "planner")])
    other = (9).to_bytes(16, "big")
    _process(service, [*(_call(10 + i, 1, trace=other) for i in range(3)), _run(1, "writer", trace=other)])
    clock.now += 3
    engine.tick()
    assert _run_series(engine, "planner").runaway[N.RUNAWAY_LLM_CALLS][0] == 1
    assert _run_series(engine, "writer").runaway == {}


def test_a_sub_agent_s_calls_count_for_the_sub_agent_and_late_calls_are_counted() -> None:
    engine, service, clock = _engine()
    _process(
        service,
        [_call(10, 2), _call(11, 2), _run(2, "researcher", parent=1), _call(12, 1), _run(1, "planner")],
    )
    clock.now += 3
    engine.tick()
    assert _run_series(engine, "researcher").llm_calls.sum == 2
    assert _run_series(engine, "planner").llm_calls.sum == 1
    _process(service, [_call(13, 1)])  # after its run was counted
    engine.tick()
    assert engine.metrics.unattributed[N.UNATTRIBUTED_LATE] == 1
    assert _run_series(engine, "planner").llm_calls.sum == 1


def test_pending_traces_are_capped_and_evictions_counted() -> None:
    engine, service, _clock = _engine(max_pending_traces=10)
    for t in range(20):
        _process(service, [_tool(10, 1, trace=(100 + t).to_bytes(16, "big"))])
    engine.tick()
    assert engine.metrics.pending_traces == 10
    assert engine.metrics.evictions[N.EVICT_PENDING_CAP] == 10
    assert engine.metrics.unattributed[N.UNATTRIBUTED_EVICTED] == 10


def test_a_run_that_never_ends_times_out_and_is_counted() -> None:
    engine, service, clock = _engine(trace_idle_s=30)
    _process(service, [_tool(10 + i, 1) for i in range(3)])
    clock.now += 29
    engine.tick()
    assert engine.metrics.evictions[N.EVICT_TIMEOUT] == 0
    clock.now += 1
    engine.tick()
    assert engine.metrics.evictions[N.EVICT_TIMEOUT] == 1
    assert engine.metrics.pending_traces == 0


def test_plain_calls_without_agents_cost_no_state_and_count_nothing() -> None:
    engine, service, clock = _engine()
    _process(service, [_call(1, 0)])  # a root call: no run can hold it
    assert engine.runs.pending_traces == 0
    _process(service, [_call(3, 2), _other(2, 0)])  # under a web request span, no agent
    clock.now += 100
    engine.tick()
    assert sum(engine.metrics.unattributed.values()) == 0
    assert sum(engine.metrics.evictions.values()) == 0
    assert engine.metrics.runs == {}


def test_sessions_close_after_the_inactivity_timeout_and_are_capped() -> None:
    engine, service, clock = _engine(max_sessions=5)
    _process(service, semconv_agent_run(1, conversation="c-1"))
    clock.now += 179
    engine.tick()
    assert engine.metrics.sessions == {}
    _process(service, semconv_agent_run(2, conversation="c-1", llm_calls=1))
    clock.now += 179
    engine.tick()
    assert engine.metrics.sessions == {}  # active again 179 s ago
    clock.now += 1
    engine.tick()
    series = engine.metrics.sessions[("unknown_service", "", "unknown")]
    assert (series.sessions, series.abandoned, series.turns.sum) == (1, 0, 2)
    # a conversation id per call: bounded by max_sessions, each early close counted
    _process(
        service,
        [
            _call(10 + i, 0, trace=(500 + i).to_bytes(16, "big"), **{A.GEN_AI_CONVERSATION_ID: f"x{i}"})
            for i in range(20)
        ],
    )
    engine.tick()
    assert engine.metrics.sessions_active == 5
    assert engine.metrics.evictions[N.EVICT_SESSION_CAP] == 15
    one_call = engine.metrics.sessions[("unknown_service", "", "support")]
    assert (one_call.sessions, one_call.abandoned) == (15, 15)


def test_a_session_with_one_failed_answer_is_not_abandoned() -> None:
    engine, service, clock = _engine()
    _process(service, [_call(1, 0, **{A.GEN_AI_CONVERSATION_ID: "c", A.ERROR_TYPE: "500"})])
    clock.now += 180
    engine.tick()
    series = engine.metrics.sessions[("unknown_service", "", "support")]
    assert (series.sessions, series.abandoned) == (1, 0)
