"""OTLP/JSON decoding on a thread of its own, its backlog bounded by time.

Decoding an OTLP/JSON request costs far more than processing it: ``json.loads`` and
``json_format.ParseDict`` (pure Python) take about 140 ms for a 512-span request of 580 KB on a
loaded 2-core machine, against about 1 ms to decode the same request as protobuf and about 13 ms
to process it. Decoded on the processor's loop, every such request held the loop (the worker
and every other HTTP request, refusals included) that long, and admission, which looks only at
the queue of decoded spans, found it near empty while requests waited for the loop. Here the
decoding runs on one thread; requests wait for it in a backlog counted in work units, and the
measured decoding rate (units per second of wall time, so with the GIL shared as it is under
load) says how long that backlog takes, so the receiver can refuse a request whose decoding
would end too late before spending anything on it.

A body's work is its count of ``{`` (one per message ``ParseDict`` builds in pure Python: a
span, an attribute's ``KeyValue`` and ``AnyValue``, ...) plus a quarter of its count of ``:``
(one per field) plus one unit per 256 bytes (strings), counted at memchr speed (a few ms for
8 MB). Measured (one process, best of three): 5.3, 5.7, 6.6 and 7.6 us per unit for the
benchmark's 512 LLM spans (579 KB), 100,000 empty spans (300 KB), 30,000 spans of three fields
(2.6 MB) and 20 spans with a 200 KB string each (4 MB), where the cost per byte differed 64-fold
(220, 1,932, 161 and 30 ns): counted in bytes, the body of empty spans looked nine times cheaper
than it was, and the requests admitted behind it waited past their deadline. A ``{`` or ``:``
inside a string only overstates the work.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llmpulse.processor.ingest.otlp_json import parse_request

__all__ = ["JsonDecoder", "work_units"]

MIN_MEASURED_UNITS = 1024
"""Smaller bodies do not update the rate: their fixed costs would overstate the cost per unit."""


def work_units(body: bytes) -> int:
    """The decoding work of an OTLP/JSON ``body``, in the decoder's units (see the module)."""
    return body.count(b"{") + body.count(b":") // 4 + len(body) // 256 + 1


def _timed_parse(body: bytes) -> tuple[ExportTraceServiceRequest, float]:
    started = time.perf_counter()
    return parse_request(body), time.perf_counter() - started


class JsonDecoder:
    """Decodes OTLP/JSON bodies one at a time on a thread of its own (started on first use)."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._pending = 0
        self._rate: float | None = None  # work units decoded per second (EWMA)

    @property
    def pending(self) -> int:
        """Work units handed to the thread and not decoded yet."""
        return self._pending

    def expected_wait(self, units: int) -> float:
        """Seconds until a body of ``units`` (:func:`work_units`) handed over now would be
        decoded, at the measured rate (0.0 until a body was measured)."""
        if self._rate is None:
            return 0.0
        return (self._pending + units) / self._rate

    async def decode(self, body: bytes, units: int) -> ExportTraceServiceRequest:
        """The request in ``body`` (``units`` of work); raises ``DecodeError`` when it is not one."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="llmpulse-json")
        self._pending += units
        try:
            request, seconds = await asyncio.get_running_loop().run_in_executor(
                self._executor, _timed_parse, body
            )
        finally:
            self._pending -= units
        if units >= MIN_MEASURED_UNITS and seconds > 0:
            rate = units / seconds
            self._rate = rate if self._rate is None else 0.8 * self._rate + 0.2 * rate
        return request

    def close(self) -> None:
        """Stop the thread once the body in hand is decoded; bodies not started are dropped
        (their requests were cancelled with the server's connections)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
