"""An open-loop OTLP/HTTP sender in a process of its own, for the overload tests.

Run as ``python -m tests.hostile.open_loop_http PORT CALLS INTERVAL TIMEOUT SPANS [json]``: POSTs
``CALLS`` protobuf (or, with ``json``, OTLP/JSON) requests of ``SPANS`` LLM spans each to
``/v1/traces``, one every
``INTERVAL`` seconds whatever the answers, each given ``TIMEOUT`` s, then prints one JSON list
with, per request, ``[outcome, seconds to the answer, Retry-After or null]``; the outcome is the
HTTP status as text ("200", "429", ...), or "timeout" or "error: ..." without an answer. The
requests cycle through :data:`~tests.hostile.open_loop.BODIES` distinct bodies, as the gRPC
sender's do (see :mod:`tests.hostile.open_loop` for why in a process of its own).

HTTP/1.1 carries one request at a time per connection, so a request goes out on an idle
keep-alive connection or a new one (no cap: waiting for a connection would be the client's
delay, not the server's), as many exporters, each with its own connection, would send.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llmpulse.processor.ingest.otlp_json import encode_request
from tests.hostile.open_loop import BODIES, parse_args, request_bytes

MEDIA = {"protobuf": "application/x-protobuf", "json": "application/json"}


async def send(
    port: int, calls: int, interval: float, timeout: float, spans: int, *, encoding: str = "protobuf"
) -> list[list[Any]]:
    """Send the open loop; per request ``[outcome, seconds, Retry-After]`` in sending order."""
    bodies = [request_bytes(1_000_000 + n * spans, spans) for n in range(min(calls, BODIES))]
    if encoding == "json":
        bodies = [encode_request(ExportTraceServiceRequest.FromString(body)) for body in bodies]
    headers = {"Content-Type": MEDIA[encoding]}
    url = f"http://127.0.0.1:{port}/v1/traces"
    answers: list[list[Any]] = [[] for _ in range(calls)]
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(n: int) -> None:
            started = time.monotonic()
            try:
                async with session.post(
                    url,
                    data=bodies[n % len(bodies)],
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                ) as response:
                    await response.read()
                    retry = response.headers.get("Retry-After")
                    answers[n] = [str(response.status), time.monotonic() - started, retry and float(retry)]
            except TimeoutError:
                answers[n] = ["timeout", time.monotonic() - started, None]
            except aiohttp.ClientError as exc:
                answers[n] = [f"error: {type(exc).__name__}", time.monotonic() - started, None]

        tasks = []
        begin = time.monotonic()
        for n in range(calls):
            tasks.append(asyncio.ensure_future(one(n)))
            await asyncio.sleep(max(0.0, begin + (n + 1) * interval - time.monotonic()))
        await asyncio.gather(*tasks)
    return answers


def main(argv: list[str]) -> None:
    encoding = argv.pop() if argv[-1:] == ["json"] else "protobuf"
    port, calls, interval, timeout, spans = parse_args("tests.hostile.open_loop_http", argv)
    print(json.dumps(asyncio.run(send(port, calls, interval, timeout, spans, encoding=encoding))))


if __name__ == "__main__":
    main(sys.argv[1:])
