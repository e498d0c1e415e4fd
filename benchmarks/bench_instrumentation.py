"""Added CPU time of the instrumentation: per non-streamed call and per streamed chunk.

Run: ``.venv/bin/python benchmarks/bench_instrumentation.py [--calls 4000] [--block 50]``

One process, one ``openai`` client, four configurations measured in alternating blocks
so drift (other processes, frequency scaling) hits all of them alike:

* ``none``: the uninstrumented client (the baseline);
* ``llmpulse``: ``llmpulse.instrumentation.instrument()``, content off;
* ``llm-noop``: llmpulse with a no-op tracer provider: the cost of llmpulse's own code,
  without the OpenTelemetry SDK's span;
* ``llm-in-run``: ``llmpulse`` with the calls made inside an ``llmpulse.agent(...)`` run (entered
  once per block), so each span also carries the run's ``llmpulse.agent.name`` from the context;
* ``llm-in-step``: the same inside an ``llmpulse.step(...)``: a parent span, no run attributes;
* ``official``: ``opentelemetry-instrumentation-genai-openai``, content off (its default);
* ``sdk-floor``: a hand-written wrapper of the same SDK method that creates the span llmpulse
  creates (same name, kind, the same 14 attribute values set at the same two points, made
  current during the request) from precomputed values: what any instrumentation that records
  this span through the OpenTelemetry Python SDK pays at the least.

The answers come from the fake provider (``llmpulse.testing.fake_provider``): recorded from
it once over HTTP at start-up, then replayed to the client through an ``httpx2``
``MockTransport``. Over a loopback socket, the kernel time of socket calls made the
per-call figure swing by +-200 us between identical runs on a shared 2-core machine; the
replay removes that noise, not any client-side work (the SDK still builds, sends, parses
and decodes SSE exactly as it would).

Both instrumentations get the same SDK ``TracerProvider`` with a ``BatchSpanProcessor`` and an
exporter that drops everything, so the figures include span creation and hand-off but no I/O.
CPU time is the calling thread's (``time.thread_time_ns``). Added time = a configuration's
percentile minus the baseline's. Per chunk, the streams have two lengths and the added time
is the difference of the per-call figures divided by the difference in chunk count, which
cancels the per-call part.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx2
import openai
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider

import llmpulse
from llmpulse.instrumentation import instrument, uninstrument
from llmpulse.testing.fake_provider import FakeProvider, FakeReply

MODEL = "gpt-4o-mini"
MESSAGES: list[Any] = [{"role": "user", "content": "Summarise the benchmark in one sentence."}]
PLAIN = FakeReply(text="A short answer.", input_tokens=20, output_tokens=4)
SHORT_STREAM, LONG_STREAM = 10, 110


class DropExporter(SpanExporter):
    """Accepts and discards spans."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class Config:
    """One configuration: how to switch it on and off."""

    def __init__(self, name: str, on: Callable[[], None], off: Callable[[], None]) -> None:
        self.name = name
        self.on = on
        self.off = off


_SET_AT_START = (
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "server.",
    "gen_ai.request.",
    "llmpulse.span.",
)


def llmpulse_span(call: Callable[[], None]) -> ReadableSpan:
    """The span llmpulse records for ``call`` (content off), from an in-memory exporter."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument(tracer_provider=provider)
    try:
        call()
    finally:
        uninstrument()
        provider.shutdown()
    (span,) = exporter.get_finished_spans()
    return span


def sdk_floor(tracer_provider: TracerProvider, recorded: ReadableSpan) -> Config:
    """The SDK's share alone: llmpulse's span for the benchmark call, with nothing computed."""
    from openai._base_client import SyncAPIClient

    original = SyncAPIClient.__dict__["request"]
    tracer = tracer_provider.get_tracer("sdk-floor")
    name, kind = recorded.name, recorded.kind
    attributes = dict(recorded.attributes or {})
    at_start = {k: v for k, v in attributes.items() if k.startswith(_SET_AT_START)}
    at_end = {k: v for k, v in attributes.items() if k not in at_start}

    def request(self: Any, *args: Any, **kwargs: Any) -> Any:
        span = tracer.start_span(name, kind=kind, attributes=dict(at_start))
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            result = original(self, *args, **kwargs)
        finally:
            otel_context.detach(token)
        span.set_attributes(dict(at_end))
        span.end()
        return result

    def on() -> None:
        SyncAPIClient.request = request  # type: ignore[method-assign]

    def off() -> None:
        SyncAPIClient.request = original  # type: ignore[method-assign]

    return Config("sdk-floor", on, off)


def inside(tracer_provider: TracerProvider, name: str, enclosing: Callable[[], Any]) -> Config:
    """llmpulse, with the calls inside ``enclosing()`` (entered once per block)."""
    active: list[Any] = []

    def on() -> None:
        instrument(tracer_provider=tracer_provider)
        scope = enclosing()
        scope.__enter__()
        active.append(scope)

    def off() -> None:
        active.pop().__exit__(None, None, None)
        uninstrument()

    return Config(name, on, off)


def configs(tracer_provider: TracerProvider, recorded: ReadableSpan) -> list[Config]:
    try:
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor
    except ImportError as exc:
        raise SystemExit("pip install opentelemetry-instrumentation-genai-openai (the bench extra)") from exc
    official = OpenAIInstrumentor()
    return [
        Config("none", lambda: None, lambda: None),
        Config("llmpulse", lambda: instrument(tracer_provider=tracer_provider), uninstrument),
        # llmpulse's own code alone: the same hook with spans that record nothing
        Config("llm-noop", lambda: instrument(tracer_provider=NoOpTracerProvider()), uninstrument),
        # inside an agent run: the run's llmpulse.agent.name/.id ride on every call's span;
        # inside a step: the same parent span without them (the run attributes' same-run baseline)
        inside(tracer_provider, "llm-in-run", lambda: llmpulse.agent("bench-agent", agent_id="bench-1")),
        inside(tracer_provider, "llm-in-step", lambda: llmpulse.step("bench-step")),
        Config(
            "official",
            lambda: official.instrument(tracer_provider=tracer_provider),
            official.uninstrument,
        ),
        sdk_floor(tracer_provider, recorded),
    ]


def cpu_per_call(call: Callable[[], None], n: int) -> list[int]:
    samples = []
    clock = time.thread_time_ns
    for _ in range(n):
        start = clock()
        call()
        samples.append(clock() - start)
    return samples


def pct(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


Recording = dict[tuple[bool, int, bool], tuple[str, bytes]]


def record_provider(provider: FakeProvider) -> Recording:
    """The fake provider's answers, recorded once: (stream, chunks, include_usage) -> body."""
    recorded: Recording = {}
    with httpx2.Client(base_url=provider.openai_base_url) as http:
        provider.set_default(PLAIN)
        answer = http.post("/chat/completions", json={"model": MODEL, "messages": MESSAGES})
        recorded[(False, 0, False)] = (answer.headers["content-type"], answer.content)
        for chunks in (SHORT_STREAM, LONG_STREAM):
            provider.set_default(FakeReply(text="w " * chunks, chunks=chunks, input_tokens=20))
            for usage in (False, True):
                body: dict[str, object] = {"model": MODEL, "messages": MESSAGES, "stream": True}
                if usage:
                    body["stream_options"] = {"include_usage": True}
                answer = http.post("/chat/completions", json=body)
                recorded[(True, chunks, usage)] = (answer.headers["content-type"], answer.content)
    return recorded


def replay_transport(recorded: Recording, chunks: list[int]) -> httpx2.MockTransport:
    """Answers each request with the recorded body that the real provider would have sent."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        stream = bool(body.get("stream"))
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        content_type, content = recorded[(stream, chunks[0] if stream else 0, usage)]
        return httpx2.Response(200, headers={"content-type": content_type}, content=content)

    return httpx2.MockTransport(handle)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000, help="non-streamed calls per configuration")
    parser.add_argument(
        "--block", type=int, default=50, help="calls per block; configurations alternate by block"
    )
    args = parser.parse_args()

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    with FakeProvider() as provider:
        recorded = record_provider(provider)
    stream_len = [SHORT_STREAM]
    http = httpx2.Client(transport=replay_transport(recorded, stream_len))
    client = openai.OpenAI(
        base_url="http://fake-provider/v1", api_key="bench", max_retries=0, http_client=http
    )

    def chat() -> None:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)

    def stream(chunks: int) -> Callable[[], None]:
        def run() -> None:
            stream_len[0] = chunks
            for _ in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
                pass

        return run

    workloads = {
        "call": (chat, 1.0),
        "short": (stream(SHORT_STREAM), 0.25),
        "long": (stream(LONG_STREAM), 0.25),
    }
    all_configs = configs(tracer_provider, llmpulse_span(chat))
    samples: dict[tuple[str, str], list[int]] = {(c.name, w): [] for c in all_configs for w in workloads}
    for config in all_configs:  # warm-up: imports, caches
        config.on()
        for work, _ in workloads.values():
            cpu_per_call(work, 50)
        config.off()
    for _ in range(max(args.calls // args.block, 1)):
        for config in all_configs:
            config.on()
            for name, (work, share) in workloads.items():
                samples[(config.name, name)].extend(cpu_per_call(work, max(int(args.block * share), 1)))
            config.off()
    client.close()
    tracer_provider.shutdown()
    report(samples, [c.name for c in all_configs])


def report(samples: dict[tuple[str, str], list[int]], names: list[str]) -> None:
    us = 1e-3
    print(f"CPU time of the calling thread, microseconds ({len(samples[('none', 'call')])} calls per config)")
    print(f"{'config':10} {'call p50':>10} {'call p99':>10} {'added p50':>10} {'added p99':>10}")
    base50, base99 = pct(samples[("none", "call")], 0.5), pct(samples[("none", "call")], 0.99)
    added: dict[str, float] = {}
    for name in names:
        p50, p99 = pct(samples[(name, "call")], 0.5), pct(samples[(name, "call")], 0.99)
        added[name] = (p50 - base50) * us
        row = (p50, p99, p50 - base50, p99 - base99)
        print(f"{name:10} " + " ".join(f"{value * us:10.1f}" for value in row))
    print()
    print(f"per streamed chunk (slope between {SHORT_STREAM}- and {LONG_STREAM}-chunk streams), microseconds")
    print(f"{'config':10} {'chunk p50':>10} {'chunk p99':>10} {'added p50':>10} {'added p99':>10}")
    span = LONG_STREAM - SHORT_STREAM

    def per_chunk(name: str, q: float) -> float:
        return (pct(samples[(name, "long")], q) - pct(samples[(name, "short")], q)) / span

    for name in names:
        c50, c99 = per_chunk(name, 0.5), per_chunk(name, 0.99)
        a50, a99 = c50 - per_chunk("none", 0.5), c99 - per_chunk("none", 0.99)
        print(f"{name:10} {c50 * us:10.2f} {c99 * us:10.2f} {a50 * us:10.2f} {a99 * us:10.2f}")
    print()
    spread = statistics.pstdev(samples[("none", "call")]) * us
    print(f"baseline per-call standard deviation: {spread:.1f} us")
    if added.get("official"):
        print(f"llmpulse added / official added (p50): {added['llmpulse'] / added['official']:.2f}")
    if "sdk-floor" in added:
        print(f"llmpulse added above the SDK floor (p50): {added['llmpulse'] - added['sdk-floor']:.1f} us")
        print(
            "llmpulse inside an agent run added above the SDK floor (p50):"
            f" {added['llm-in-run'] - added['sdk-floor']:.1f} us"
            " (the floor's span has no parent, no run attributes)"
        )
    print(
        "the run's attributes on a call inside it (llm-in-run minus llm-in-step, p50):"
        f" {added['llm-in-run'] - added['llm-in-step']:.1f} us"
    )


if __name__ == "__main__":
    main()
