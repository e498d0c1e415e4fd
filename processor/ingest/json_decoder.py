"""OTLP/JSON decoding on a thread of its own, its backlog bounded by time.

Decoding an OTLP/JSON request costs far more than processing it: ``json.loads`` and
``json_format.ParseDict`` (pure Python) take about 140 ms for a 512-span request of 580 KB on a
loaded 2-core machine, against about 1 ms to decode the same request as protobuf and about 13 ms
to process it. Decoded on the processor's loop, every such request held the loop (the worker
and every other HTTP request, refusals included) that long, and admission, which looks only at
the queue of decoded spans, found it near empty while requests waited for the loop. Here the
decoding runs on one thread; requests wait for it in a backlog counted in bytes, and the
measured decoding rate (bytes per second of wall time, so with the GIL shared as it is under
load) says how long that backlog takes, so the receiver can refuse a request whose decoding
would end too late before spending anything on it.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llmpulse.processor.ingest.otlp_json import parse_request

__all__ = ["JsonDecoder"]

MIN_MEASURED_BYTES = 16 * 1024
"""Smaller bodies do not update the rate: their fixed costs would overstate the cost per byte."""


def _timed_parse(body: bytes) -> tuple[ExportTraceServiceRequest, float]:
    started = time.perf_counter()
    return parse_request(body), time.perf_counter() - started


class JsonDecoder:
    """Decodes OTLP/JSON bodies one at a time on a thread of its own (started on first use)."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._pending_bytes = 0
        self._rate: float | None = None  # bytes decoded per second (EWMA)

    @property
    def pending_bytes(self) -> int:
        """Bytes handed to the thread and not decoded yet."""
        return self._pending_bytes

    def expected_wait(self, size: int) -> float:
        """Seconds until a body of ``size`` bytes handed over now would be decoded, at the
        measured rate (0.0 until a body was measured)."""
        if self._rate is None:
            return 0.0
        return (self._pending_bytes + size) / self._rate

    async def decode(self, body: bytes) -> ExportTraceServiceRequest:
        """The request in ``body``; raises ``DecodeError`` when it is not one."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="llmpulse-json")
        size = len(body)
        self._pending_bytes += size
        try:
            request, seconds = await asyncio.get_running_loop().run_in_executor(
                self._executor, _timed_parse, body
            )
        finally:
            self._pending_bytes -= size
        if size >= MIN_MEASURED_BYTES and seconds > 0:
            rate = size / seconds
            self._rate = rate if self._rate is None else 0.8 * self._rate + 0.2 * rate
        return request

    def close(self) -> None:
        """Stop the thread once the body in hand is decoded; bodies not started are dropped
        (their requests were cancelled with the server's connections)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
