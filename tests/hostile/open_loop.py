"""An open-loop OTLP/gRPC sender in a process of its own, for the overload tests.

Run as ``python -m tests.hostile.open_loop PORT CALLS INTERVAL TIMEOUT SPANS``: sends ``CALLS``
export calls of ``SPANS`` LLM spans each, one every ``INTERVAL`` seconds whatever the answers
(as many exporters would), each with a ``TIMEOUT`` s deadline, then prints one JSON list with,
per call, ``[status code name, seconds to the answer, RetryInfo delay or null]``. The calls
cycle through :data:`BODIES` distinct requests (OpenAI-provider spans are never
de-duplicated, so a repeated one counts again; building one per call would take longer than
sending them).

A process of its own so that the sending is not held up by the processor under test: in the
test's process the processor's worker holds the GIL most of the time, and a sender thread there
would slow down with it, offering less than the load it was asked for.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from llmpulse.testing.otlp import llm_attributes, make_request, make_span

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
CHANNELS = 16
BODIES = 8


def request_bytes(first: int, n: int) -> bytes:
    """One request of ``n`` LLM spans whose trace and span ids count up from ``first``."""
    spans = [
        make_span(
            llm_attributes(), trace_id=(first + i).to_bytes(16, "big"), span_id=(first + i).to_bytes(8, "big")
        )
        for i in range(n)
    ]
    return make_request(spans).SerializeToString()


def retry_delay(trailers: Any) -> float | None:
    """The ``google.rpc.RetryInfo`` delay in a call's ``grpc-status-details-bin`` trailer."""
    for key, value in trailers or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    return float(info.retry_delay.ToNanoseconds() / 1e9)
    return None


def send(port: int, calls: int, interval: float, timeout: float, spans: int) -> list[list[Any]]:
    """Send the open loop; per call ``[code name, seconds, retry delay]`` in sending order."""
    bodies = [request_bytes(1_000_000 + n * spans, spans) for n in range(min(calls, BODIES))]
    channels = [grpc.insecure_channel(f"127.0.0.1:{port}") for _ in range(CHANNELS)]
    stubs = [c.unary_unary(EXPORT, request_serializer=None, response_deserializer=None) for c in channels]
    answers: list[list[Any]] = [[] for _ in range(calls)]
    done = threading.Semaphore(0)

    def record(n: int, started: float, future: Any) -> None:
        seconds = time.monotonic() - started
        try:
            future.result()
            answers[n] = [grpc.StatusCode.OK.name, seconds, None]
        except grpc.RpcError as exc:
            answers[n] = [exc.code().name, seconds, retry_delay(exc.trailing_metadata())]
        done.release()

    try:
        for channel in channels:
            grpc.channel_ready_future(channel).result(timeout=10)
        begin = time.monotonic()
        for n in range(calls):
            started = time.monotonic()
            future = stubs[n % CHANNELS].future(bodies[n % len(bodies)], timeout=timeout)
            future.add_done_callback(lambda f, n=n, started=started: record(n, started, f))
            time.sleep(max(0.0, begin + (n + 1) * interval - time.monotonic()))
        for _ in range(calls):
            done.acquire()
        return answers
    finally:
        for channel in channels:
            channel.close()


def parse_args(module: str, argv: list[str]) -> tuple[int, int, float, float, int]:
    """``PORT CALLS INTERVAL TIMEOUT SPANS``, as both senders take them."""
    if len(argv) != 5:
        sys.exit(f"usage: python -m {module} PORT CALLS INTERVAL TIMEOUT SPANS")
    return int(argv[0]), int(argv[1]), float(argv[2]), float(argv[3]), int(argv[4])


def main(argv: list[str]) -> None:
    port, calls, interval, timeout, spans = parse_args("tests.hostile.open_loop", argv)
    print(json.dumps(send(port, calls, interval, timeout, spans)))


if __name__ == "__main__":
    main(sys.argv[1:])
