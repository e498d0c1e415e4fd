"""Hand-rolled tool-call loops, with no agent or tool spans, counted as runs of kind ``tool_loop``.

Apps written against the real ``openai`` and ``anthropic`` packages loop ``while the model asks
for tools: run them, call again`` against the local fake provider, inside their own request
span; their spans (llmpulse's instrumentation, then the official GenAI OpenAI instrumentation,
which writes only ``gen_ai.response.finish_reasons``) go over OTLP/HTTP to a real ``llmpulse
serve``, whose ``/metrics`` must show the exact runs, calls, tool calls, tokens and cost, and
the looping app as runaway with its trace as exemplar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import llmpulse
from llmpulse.processor.agents import metric_names as N
from llmpulse.processor.metrics import names as M
from llmpulse.testing.fake_provider import FakeProvider, FakeReply, RecordedRequest
from llmpulse.testing.polling import wait_until
from llmpulse.testing.script import last_user_message
from tests.agents.test_agents_serve import Samples, _get, _samples, serve_with_agents

OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
    }
]
ANTHROPIC_TOOLS = [{"name": "search", "input_schema": {"type": "object", "properties": {}}}]
LOOPER_CALLS = 7  # the looping app gives up after this many calls, without a final answer
FAST_LOOPS = "run_grace_s = 0.1\ntick_s = 0.1\ntrace_idle_s = 1.0\n"  # [agents]: counted within a second


def _runs_counted(scrape: str, runs: int, message: str) -> Samples:
    """The processor's samples once it has counted ``runs`` runs in all."""

    def counted() -> Samples | None:
        samples = _samples(scrape)
        total = sum(v for (name, _), v in samples.items() if name == N.AGENT_RUNS_TOTAL)
        return samples if total >= runs else None

    return wait_until(counted, timeout=30, interval=0.2, message=message)


def _tool_results(body: dict[str, Any]) -> int:
    results = 0
    for message in body.get("messages", []):
        if message.get("role") == "tool":
            results += 1
        content = message.get("content")
        if isinstance(content, list):
            results += sum(1 for b in content if isinstance(b, dict) and b.get("type") == "tool_result")
    return results


def _reply(request: RecordedRequest) -> FakeReply:
    """The model: asks for tools until it has the results it wants; the looper's never has."""
    body = request.body if isinstance(request.body, dict) else {}
    # the question: the first user message (the last one may hold only tool results)
    question, results = last_user_message({"messages": body.get("messages", [])[:1]}), _tool_results(body)
    if "weather" in question:  # two tools at once, then one more, then the answer
        if results == 0:
            calls = tuple({"name": "get_weather", "arguments": {"city": c}} for c in ("Paris", "Rome"))
            return FakeReply(text="", tool_calls=calls, input_tokens=20, output_tokens=10)
        if results == 2:
            calls = ({"name": "get_time", "arguments": {"city": "Paris"}},)
            return FakeReply(text="", tool_calls=calls, input_tokens=30, output_tokens=5)
        return FakeReply(text="Sunny in both.", input_tokens=40, output_tokens=8)
    if "research" in question:
        if results == 0:
            calls = ({"name": "search", "arguments": {"q": "otel"}},)
            return FakeReply(text="", tool_calls=calls, input_tokens=15, output_tokens=6)
        return FakeReply(text="Found it.", input_tokens=25, output_tokens=9)
    if "loop" in question:  # the same tool with the same arguments, for ever
        calls = ({"name": "lookup", "arguments": {"id": 1}},)
        return FakeReply(text="", tool_calls=calls, input_tokens=5, output_tokens=3)
    return FakeReply(text="Hello.", input_tokens=4, output_tokens=2)


def openai_loop(client: openai.OpenAI, question: str, max_calls: int = 10) -> str | None:
    """The hand-rolled loop: call, run the tools the model asked for, call again."""
    messages: list[Any] = [{"role": "user", "content": question}]
    for _ in range(max_calls):
        response = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=OPENAI_TOOLS)  # type: ignore[arg-type]
        choice = response.choices[0]
        if choice.finish_reason != "tool_calls":
            return choice.message.content
        messages.append(choice.message.model_dump(exclude_none=True))
        for tool_call in choice.message.tool_calls or ():
            messages.append({"role": "tool", "tool_call_id": tool_call.id, "content": "18 C"})
    return None  # gave up


def anthropic_loop(client: anthropic.Anthropic, question: str) -> None:
    """The same loop with the anthropic package, streamed."""
    messages: list[Any] = [{"role": "user", "content": question}]
    while True:
        with client.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=100,
            messages=messages,
            tools=ANTHROPIC_TOOLS,  # type: ignore[arg-type]
        ) as stream:
            message = stream.get_final_message()
        if message.stop_reason != "tool_use":
            return
        messages.append({"role": "assistant", "content": [b.model_dump() for b in message.content]})
        asked = [b for b in message.content if b.type == "tool_use"]
        results = [{"type": "tool_result", "tool_use_id": b.id, "content": "ok"} for b in asked]
        messages.append({"role": "user", "content": results})


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        provider.set_handler(_reply)
        yield provider


def _tracer_provider(http_port: int, service: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/traces")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _in_request_span(tracer: trace.Tracer, run: Callable[[], Any]) -> bytes:
    """Run ``run`` inside the app's own request span; its trace id."""
    with tracer.start_as_current_span("POST /ask") as span:
        run()
        return span.get_span_context().trace_id.to_bytes(16, "big")


def test_hand_rolled_tool_loops_are_runs_and_a_looping_app_is_runaway(
    tmp_path: Path, fake_provider: FakeProvider
) -> None:
    agents = f"{FAST_LOOPS}[agents.agent_caps.looper]\nllm_calls = 4\n"
    with serve_with_agents(tmp_path, agents) as (http, scrape):
        oai = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="test", max_retries=0)
        claude = anthropic.Anthropic(base_url=fake_provider.base_url, api_key="test", max_retries=0)

        # llmpulse's instrumentation
        provider = _tracer_provider(http, "shop")
        tracer = provider.get_tracer("app")
        llmpulse.instrument(tracer_provider=provider)
        try:
            with llmpulse.context(feature="weather"):
                assert _in_request_span(tracer, lambda: openai_loop(oai, "weather in Paris and Rome?")) != b""
            with llmpulse.context(feature="research"):
                _in_request_span(tracer, lambda: anthropic_loop(claude, "research otel"))
            with llmpulse.context(feature="chat"):
                _in_request_span(tracer, lambda: openai_loop(oai, "hello"))
            with llmpulse.context(feature="looper"):
                looper_trace = _in_request_span(tracer, lambda: openai_loop(oai, "loop", LOOPER_CALLS))
        finally:
            llmpulse.uninstrument()
            provider.shutdown()

        # the official GenAI OpenAI instrumentation: only gen_ai.response.finish_reasons says
        # the model asked for tools
        peer = _tracer_provider(http, "peer")
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=peer)
        try:
            _in_request_span(peer.get_tracer("app"), lambda: openai_loop(oai, "weather in Paris and Rome?"))
        finally:
            instrumentor.uninstrument()
            peer.shutdown()

        s = _runs_counted(scrape, 4, "the four tool loops were never counted")

        loop = {"kind": N.KIND_TOOL_LOOP, "outcome": "ok"}
        weather = {"service": "shop", "deployment_environment": "", "agent": "weather"}
        assert _get(s, N.AGENT_RUNS_TOTAL, **weather, **loop) == 1
        assert _get(s, N.AGENT_RUN_LLM_CALLS + "_sum", **weather) == 3
        assert _get(s, N.AGENT_RUN_TOOL_CALLS + "_sum", **weather) == 3  # two at once, then one
        assert _get(s, N.AGENT_RUN_TOKENS + "_sum", **weather) == 20 + 10 + 30 + 5 + 40 + 8
        assert _get(s, N.AGENT_RUN_DURATION + "_count", **weather) == 1
        for feature, agent in (("weather", weather), ("research", {**weather, "agent": "research"})):
            priced = sum(
                v
                for (name, labels), v in s.items()
                if name == M.COST_USD_TOTAL
                and ("feature", feature) in labels
                and ("service", "shop") in labels
            )
            assert priced > 0, feature
            assert _get(s, N.AGENT_RUN_COST + "_sum", **agent) == pytest.approx(priced, rel=1e-12)

        research = {**weather, "agent": "research"}
        assert _get(s, N.AGENT_RUNS_TOTAL, **research, **loop) == 1
        assert _get(s, N.AGENT_RUN_LLM_CALLS + "_sum", **research) == 2
        assert _get(s, N.AGENT_RUN_TOOL_CALLS + "_sum", **research) == 1
        assert _get(s, N.AGENT_RUN_TOKENS + "_sum", **research) == 15 + 6 + 25 + 9

        # a plain call is no run
        assert not [k for k in s if k[0] == N.AGENT_RUNS_TOTAL and ("agent", "chat") in k[1]]

        # the looper: runaway at its 5th call (its own cap of 4 LLM calls, and the same tool with
        # the same arguments a 5th time), counted once each; the run itself when it went idle
        looper = {**weather, "agent": "looper"}
        assert _get(s, N.AGENT_RUNAWAY_RUNS_TOTAL, **looper, reason=N.RUNAWAY_LLM_CALLS) == 1
        assert _get(s, N.AGENT_RUNAWAY_RUNS_TOTAL, **looper, reason=N.RUNAWAY_REPEATED_TOOL_CALL) == 1
        assert _get(s, N.AGENT_RUNAWAY_RUNS_TOTAL, **looper, reason=N.RUNAWAY_TOOL_CALLS) is None
        assert _get(s, N.AGENT_RUNS_TOTAL, **looper, **loop) == 1
        assert _get(s, N.AGENT_RUN_LLM_CALLS + "_sum", **looper) == LOOPER_CALLS
        assert _get(s, N.AGENT_RUN_TOOL_CALLS + "_sum", **looper) == LOOPER_CALLS
        openmetrics = httpx.get(
            f"http://{scrape}/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        ).text
        (line,) = [
            line
            for line in openmetrics.splitlines()
            if line.startswith(N.AGENT_RUNAWAY_RUNS_TOTAL)
            and 'agent="looper"' in line
            and "llm_calls" in line
        ]
        assert f'trace_id="{looper_trace.hex()}"' in line
        status = httpx.get(f"http://{scrape}/api/status").json()["agents"]
        runaway = [r for r in status["runaway_recent"] if r["agent"] == "looper"]
        assert sorted((r["reason"], r["trace_id"], r["llm_calls"], r["open"]) for r in runaway) == [
            (reason, looper_trace.hex(), 5, True)
            for reason in (N.RUNAWAY_LLM_CALLS, N.RUNAWAY_REPEATED_TOOL_CALL)
        ]
        assert status["open_tool_loops"] == 0

        # the peer's spans: one tool call counted per call that asked (finish_reasons only)
        peer_run = {"service": "peer", "deployment_environment": "", "agent": "unknown"}
        assert _get(s, N.AGENT_RUNS_TOTAL, **peer_run, **loop) == 1
        assert _get(s, N.AGENT_RUN_LLM_CALLS + "_sum", **peer_run) == 3
        assert _get(s, N.AGENT_RUN_TOOL_CALLS + "_sum", **peer_run) == 2
        assert _get(s, N.AGENT_RUN_TOKENS + "_sum", **peer_run) == 113
        assert _get(s, N.AGENT_EVICTIONS_TOTAL, reason=N.EVICT_LOOP_CAP) == 0


def _step(client: openai.OpenAI, messages: list[Any]) -> bool:
    """One call of a hand-rolled loop that appends the SDK's message object as returned (no
    model_dump); whether the model asked for more."""
    response = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=OPENAI_TOOLS)  # type: ignore[arg-type]
    choice = response.choices[0]
    if choice.finish_reason != "tool_calls":
        return False
    messages.append(choice.message)
    for tool_call in choice.message.tool_calls or ():
        messages.append({"role": "tool", "tool_call_id": tool_call.id, "content": "18 C"})
    return True


def test_loops_of_a_script_with_no_span_around_them_are_runs(
    tmp_path: Path, fake_provider: FakeProvider
) -> None:
    """A script's loops, each call the root of a trace of its own: grouped by llmpulse.tool_loop.id,
    also when two loops of one feature advance in turn and the messages are the SDK's objects."""
    with serve_with_agents(tmp_path, FAST_LOOPS) as (http, scrape):
        oai = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="test", max_retries=0)
        claude = anthropic.Anthropic(base_url=fake_provider.base_url, api_key="test", max_retries=0)
        provider = _tracer_provider(http, "script")
        llmpulse.instrument(tracer_provider=provider)
        try:
            with llmpulse.context(feature="weather"):
                first: list[Any] = [{"role": "user", "content": "weather in Paris and Rome?"}]
                second: list[Any] = [{"role": "user", "content": "weather in Oslo and Bergen?"}]
                going = [first, second]
                while going:  # the two loops in turn: call 1 of each, then call 2 of each, ...
                    going = [messages for messages in going if _step(oai, messages)]
            with llmpulse.context(feature="research"):
                anthropic_loop(claude, "research otel")
            with llmpulse.context(feature="chat"):
                openai_loop(oai, "hello")
        finally:
            llmpulse.uninstrument()
            provider.shutdown()

        s = _runs_counted(scrape, 3, "the script's tool loops were never counted")
        loop = {"kind": N.KIND_TOOL_LOOP, "outcome": "ok"}
        weather = {"service": "script", "deployment_environment": "", "agent": "weather"}
        assert _get(s, N.AGENT_RUNS_TOTAL, **weather, **loop) == 2
        assert _get(s, N.AGENT_RUN_LLM_CALLS + "_sum", **weather) == 6
        assert _get(s, N.AGENT_RUN_TOOL_CALLS + "_sum", **weather) == 6
        assert _get(s, N.AGENT_RUN_TOKENS + "_sum", **weather) == 2 * (20 + 10 + 30 + 5 + 40 + 8)
        research = {**weather, "agent": "research"}
        assert _get(s, N.AGENT_RUNS_TOTAL, **research, **loop) == 1
        assert _get(s, N.AGENT_RUN_LLM_CALLS + "_sum", **research) == 2
        assert _get(s, N.AGENT_RUN_TOOL_CALLS + "_sum", **research) == 1
        assert not [k for k in s if k[0] == N.AGENT_RUNS_TOTAL and ("agent", "chat") in k[1]]
        assert sum(v for (name, _), v in s.items() if name == N.AGENT_RUNS_TOTAL) == 3
