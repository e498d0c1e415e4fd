"""OTLP/gRPC load generator: pre-serialized batches of realistic LLM and step spans.

Run by ``bench_processor.py`` in its own process (so its CPU is not charged to the target):

    python benchmarks/otlp_load.py --target 127.0.0.1:4317 --spans 2000000

Requests are built once before the clock starts (the OTel SDK encodes far too slowly to load
a receiver) and sent with ``--concurrency`` calls in flight. A request refused with
RESOURCE_EXHAUSTED or UNAVAILABLE is resent after the server's retry delay and counted once.
Prints one JSON object: spans sent, spans the target reported rejected, retries, seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmpulse.contract import attributes as A
from llmpulse.processor.ingest.otlp_json import encode_request
from llmpulse.testing.otlp import make_request, make_span

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
SPANS_PER_REQUEST = 512
STEP_EVERY = 8  # one span in 8 is a pipeline step
FEATURES = ("support", "search", "summarize", "translate", "code-review", "onboarding", "billing", "triage")
MODELS = (
    ("openai", "gpt-4o", "gpt-4o-2024-08-06"),
    ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
    ("anthropic", "claude-sonnet-4", "claude-sonnet-4-20250514"),
    ("anthropic", "claude-haiku-4", "claude-haiku-4-20250601"),
    ("gcp.gemini", "gemini-2.5-flash", "gemini-2.5-flash"),
    ("openai", "text-embedding-3-small", "text-embedding-3-small"),
)
FINISH = ("stop", "stop", "stop", "stop", "length", "tool_calls", "content_filter")
STEPS = ("retrieval", "rerank", "execute_tool")


def llm_span(rng: random.Random, trace_id: bytes, start_ns: int) -> Span:
    """An LLM span with 15 attributes, as the llmpulse instrumentation writes it."""
    provider, model, response_model = rng.choice(MODELS)
    embeddings = model.startswith("text-embedding")
    duration_ns = int(rng.lognormvariate(0.0, 0.8) * 1e9)
    finish = rng.choice(FINISH)
    attrs = [
        (A.SPAN_KIND, A.SPAN_KIND_LLM),
        (A.GEN_AI_OPERATION_NAME, "embeddings" if embeddings else "chat"),
        (A.GEN_AI_PROVIDER_NAME, provider),
        (A.GEN_AI_REQUEST_MODEL, model),
        (A.GEN_AI_RESPONSE_MODEL, response_model),
        (A.GEN_AI_RESPONSE_ID, f"resp_{rng.getrandbits(64):016x}"),
        (A.GEN_AI_USAGE_INPUT_TOKENS, rng.randint(50, 4000)),
        (A.GEN_AI_USAGE_OUTPUT_TOKENS, 0 if embeddings else rng.randint(5, 800)),
        (A.GEN_AI_RESPONSE_FINISH_REASONS, [finish]),
        (A.FINISH_REASON, finish),
        (A.COST_USD, round(rng.uniform(0.0001, 0.05), 6)),
        (A.FEATURE, rng.choice(FEATURES)),
        (A.GEN_AI_REQUEST_TEMPERATURE, 0.2),
        (A.SERVER_ADDRESS, "api.example.com"),
        (A.SERVER_PORT, 443),
    ]
    return make_span(
        dict(attrs),
        trace_id=trace_id,
        span_id=rng.randbytes(8),
        name=f"chat {model}",
        kind=Span.SPAN_KIND_CLIENT,
        start_ns=start_ns,
        end_ns=start_ns + duration_ns,
        status_code=None,
    )


PEER_MODELS = (
    ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
    ("openai", "gpt-4.1", "gpt-4.1-2025-04-14"),
)
PEER_FINISH = ("stop", "stop", "stop", "length", "tool_calls")


def peer_span(rng: random.Random, trace_id: bytes, start_ns: int) -> Span:
    """An LLM span shaped as the official GenAI OpenAI instrumentation writes it: semconv keys
    only (16 attributes, no llmpulse feature, no cost: the processor prices it)."""
    provider, model, response_model = rng.choice(PEER_MODELS)
    duration_ns = int(rng.lognormvariate(0.0, 0.8) * 1e9)
    attrs = {
        A.GEN_AI_OPERATION_NAME: "chat",
        A.GEN_AI_PROVIDER_NAME: provider,
        A.GEN_AI_REQUEST_MODEL: model,
        A.GEN_AI_RESPONSE_MODEL: response_model,
        A.GEN_AI_RESPONSE_ID: f"chatcmpl-{rng.getrandbits(64):016x}",
        A.GEN_AI_USAGE_INPUT_TOKENS: rng.randint(50, 4000),
        A.GEN_AI_USAGE_OUTPUT_TOKENS: rng.randint(5, 800),
        A.GEN_AI_RESPONSE_FINISH_REASONS: [rng.choice(PEER_FINISH)],
        A.GEN_AI_REQUEST_TEMPERATURE: 0.2,
        "gen_ai.request.max_tokens": 1024,
        "gen_ai.request.top_p": 1.0,
        "gen_ai.request.seed": 7,
        "gen_ai.openai.request.service_tier": "auto",
        "openai.response.system_fingerprint": "fp_44709d6fcb",
        A.SERVER_ADDRESS: "api.openai.com",
        A.SERVER_PORT: 443,
    }
    return make_span(
        attrs,
        trace_id=trace_id,
        span_id=rng.randbytes(8),
        name=f"chat {model}",
        kind=Span.SPAN_KIND_CLIENT,
        start_ns=start_ns,
        end_ns=start_ns + duration_ns,
        status_code=None,
    )


SHAPES = ("llmpulse", "peer", "agent")
AGENT_LLM_CALLS = 3
AGENT_TOOL_CALLS = 2
AGENT_TOOLS = ("search", "get_weather", "lookup_order")


def agent_trace(rng: random.Random, trace_id: bytes, start_ns: int) -> list[Span]:
    """One agent run as the GenAI conventions write it: peer-shaped chat spans and
    ``execute_tool`` spans (with arguments) under an ``invoke_agent`` span, children first."""
    run_id = rng.randbytes(8)
    spans = []
    for _ in range(AGENT_LLM_CALLS):
        span = peer_span(rng, trace_id, start_ns)
        span.parent_span_id = run_id
        spans.append(span)
    for _ in range(AGENT_TOOL_CALLS):
        tool = rng.choice(AGENT_TOOLS)
        spans.append(
            make_span(
                {
                    A.GEN_AI_OPERATION_NAME: A.OP_EXECUTE_TOOL,
                    A.GEN_AI_TOOL_NAME: tool,
                    A.GEN_AI_TOOL_CALL_ID: f"call_{rng.getrandbits(48):012x}",
                    A.GEN_AI_TOOL_TYPE: "function",
                    A.GEN_AI_TOOL_CALL_ARGUMENTS: f'{{"q": "{rng.getrandbits(20)}"}}',
                },
                trace_id=trace_id,
                span_id=rng.randbytes(8),
                parent_span_id=run_id,
                name=f"execute_tool {tool}",
                start_ns=start_ns,
                end_ns=start_ns + int(rng.uniform(0.01, 0.3) * 1e9),
                status_code=None,
            )
        )
    spans.append(
        make_span(
            {
                A.GEN_AI_OPERATION_NAME: A.OP_INVOKE_AGENT,
                A.GEN_AI_PROVIDER_NAME: "openai",
                A.GEN_AI_AGENT_NAME: rng.choice(("planner", "support")),
                A.GEN_AI_CONVERSATION_ID: f"conv-{rng.getrandbits(20)}",
            },
            trace_id=trace_id,
            span_id=run_id,
            name="invoke_agent",
            kind=Span.SPAN_KIND_CLIENT,
            start_ns=start_ns,
            end_ns=start_ns + 5_000_000_000,
            status_code=None,
        )
    )
    return spans


def step_span(rng: random.Random, trace_id: bytes, start_ns: int) -> Span:
    """A pipeline step span."""
    step = rng.choice(STEPS)
    span_id = rng.randbytes(8)
    end_ns = start_ns + int(rng.uniform(0.001, 0.4) * 1e9)
    attributes = {
        A.SPAN_KIND: A.SPAN_KIND_STEP,
        A.STEP_NAME: step,
        A.FEATURE: rng.choice(FEATURES),
        A.STEP_DOCUMENT_COUNT: rng.randint(1, 20),
    }
    return make_span(
        attributes,
        trace_id=trace_id,
        span_id=span_id,
        name=f"step {step}",
        start_ns=start_ns,
        end_ns=end_ns,
        status_code=None,
    )


def build_requests(count: int, seed: int = 42, shape: str = "llmpulse") -> list[bytes]:
    """``count`` distinct serialized requests of :data:`SPANS_PER_REQUEST` spans each: llmpulse's
    own LLM spans with one step span in :data:`STEP_EVERY` (``shape="llmpulse"``), spans of
    the official GenAI instrumentation's shape only (``shape="peer"``), or agent runs of that
    shape, 3 chat and 2 tool spans under an ``invoke_agent`` span (``shape="agent"``)."""
    rng = random.Random(seed)
    start = time.time_ns()
    out: list[bytes] = []
    for _ in range(count):
        spans = []
        while shape == "agent" and len(spans) < SPANS_PER_REQUEST:
            spans.extend(agent_trace(rng, rng.randbytes(16), start))
        del spans[SPANS_PER_REQUEST:]
        for i in range(SPANS_PER_REQUEST if shape != "agent" else 0):
            trace_id = rng.randbytes(16)
            if shape == "peer":
                make = peer_span
            else:
                make = step_span if i % STEP_EVERY == STEP_EVERY - 1 else llm_span
            spans.append(make(rng, trace_id, start))
        scope = "llmpulse" if shape == "llmpulse" else "opentelemetry.instrumentation.genai.openai"
        request = make_request(spans, scope, resource={"service.name": "bench-app"})
        out.append(request.SerializeToString())
    return out


def build_json_requests(count: int, seed: int = 42, shape: str = "llmpulse") -> list[bytes]:
    """The requests of :func:`build_requests` as OTLP/JSON bodies (hex ids, integer enums)."""
    return [
        encode_request(ExportTraceServiceRequest.FromString(body))
        for body in build_requests(count, seed, shape)
    ]


async def run(
    target: str, spans: int, concurrency: int, pool: int, shape: str = "llmpulse"
) -> dict[str, object]:
    """Send ``spans`` spans (rounded up to whole requests) and report what happened."""
    requests = build_requests(pool, shape=shape)
    total_requests = -(-spans // SPANS_PER_REQUEST)
    counters = {"sent_spans": 0, "rejected_spans": 0, "retries": 0, "requests": 0}
    next_index = 0
    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=30)
        call = channel.unary_unary(
            EXPORT, request_serializer=None, response_deserializer=ExportTraceServiceResponse.FromString
        )

        async def worker() -> None:
            nonlocal next_index
            while next_index < total_requests:
                body = requests[next_index % len(requests)]
                next_index += 1
                while True:
                    try:
                        response = await call(body, timeout=60)
                        break
                    except grpc.aio.AioRpcError as exc:
                        if exc.code() not in (
                            grpc.StatusCode.RESOURCE_EXHAUSTED,
                            grpc.StatusCode.UNAVAILABLE,
                        ):
                            raise
                        counters["retries"] += 1
                        await asyncio.sleep(0.05)
                counters["requests"] += 1
                counters["sent_spans"] += SPANS_PER_REQUEST
                counters["rejected_spans"] += response.partial_success.rejected_spans

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {**counters, "seconds": elapsed, "request_bytes": len(requests[0])}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: print the result as one JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", required=True, help="host:port of an OTLP/gRPC receiver")
    parser.add_argument("--spans", type=int, default=2_000_000)
    parser.add_argument("--concurrency", type=int, default=8, help="export calls in flight")
    parser.add_argument("--pool", type=int, default=16, help="distinct pre-built requests to cycle through")
    parser.add_argument(
        "--shape", choices=SHAPES, default="llmpulse", help="span shape (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.target, args.spans, args.concurrency, args.pool, args.shape))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
