"""Benchmark: the processor's hot loop in-process, per span shape, engines on and off.

Where ``bench_processor.py`` loads a whole ``llmpulse serve`` process over gRPC (and so
includes the transport), this runs :meth:`Pipeline.process` of a real
:class:`~llmpulse.processor.service.ProcessorService` (with the quality and drift engines as
``llmpulse serve`` builds them, or without) on requests parsed afresh for every call, as the
gRPC receiver hands them over (a parsed request reused would cache protobuf wrappers and read
about 1.6x too fast). It reports spans per CPU second of the calling thread for:

* ``llmpulse``: llmpulse's own LLM spans (15 attributes, feature and cost set), one step span
  in eight;
* ``peer``: spans shaped as the official GenAI OpenAI instrumentation writes them (16 semconv
  attributes, no feature, no cost: the processor prices every call);
* ``agent``: agent runs of that shape, 3 chat and 2 ``execute_tool`` spans under an
  ``invoke_agent`` span with a conversation id (the agents engine's worst ordinary case);

plus, as a same-run floor, the cost of parsing the requests and of touching every attribute of
every span (``parse + walk``), which any Python consumer of OTLP pays.

Usage: ``python benchmarks/bench_pipeline.py [--requests N] [--repeat K]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otlp_load

from llmpulse.processor.engines import build_engines
from llmpulse.processor.service import ProcessorService
from llmpulse.processor.settings import Settings


def _walk(raw: list[bytes], requests: int) -> float:
    """Spans per CPU second to parse each request and read every attribute's key and value."""
    started = time.thread_time()
    for i in range(requests):
        request = ExportTraceServiceRequest.FromString(raw[i % len(raw)])
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    for kv in span.attributes:
                        _ = kv.key, kv.value
    return requests * otlp_load.SPANS_PER_REQUEST / (time.thread_time() - started)


ENGINES = ("as shipped", "agents off", "metrics only")


async def _pipeline(raw: list[bytes], requests: int, *, engines: str) -> float:
    """Spans per CPU second through ``Pipeline.process`` (parse included); ``engines`` is one of
    :data:`ENGINES`: quality, drift and agents as ``llmpulse serve`` builds them, the same
    without agents, or none."""
    state = Path(tempfile.mkdtemp(prefix="llmpulse-bench-"))
    off = {"enabled": False}
    tables: dict[str, dict[str, Any]] = {
        "quality": {"db_path": str(state / "quality.db")} if engines != "metrics only" else off,
        "drift": {} if engines != "metrics only" else off,
        "agents": {} if engines == "as shipped" else off,
        "canary": {},
    }
    service = ProcessorService(Settings(), extensions=build_engines(tables, {}))
    pipeline = service.pipeline
    for body in raw[:4]:  # warm up: series, charts and windows exist
        pipeline.process(ExportTraceServiceRequest.FromString(body))
    started = time.thread_time()
    for i in range(requests):
        pipeline.process(ExportTraceServiceRequest.FromString(raw[i % len(raw)]))
    return requests * otlp_load.SPANS_PER_REQUEST / (time.thread_time() - started)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: print one table of medians over ``--repeat`` runs."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=100, help="512-span requests per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (median reported)")
    args = parser.parse_args(argv)
    print(f"spans per CPU second of the calling thread, median of {args.repeat} runs")
    print(f"{'shape':<10} {'as shipped':>11} {'agents off':>11} {'metrics only':>13} {'parse + walk':>13}")
    for shape in otlp_load.SHAPES:
        raw = otlp_load.build_requests(16, shape=shape)
        rows = [
            [asyncio.run(_pipeline(raw, args.requests, engines=engines)) for _ in range(args.repeat)]
            for engines in ENGINES
        ]
        rows.append([_walk(raw, args.requests) for _ in range(args.repeat)])
        shipped, no_agents, off, walk = (statistics.median(row) for row in rows)
        print(f"{shape:<10} {shipped:>11.0f} {no_agents:>11.0f} {off:>13.0f} {walk:>13.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
