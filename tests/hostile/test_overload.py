"""Overload answers with refusals, not latency: the queue is bounded by its time to drain, a
request waits in it at most ``queue_max_delay``, and a request that outlived its client's deadline
in the queue is not counted (its retry is)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from llmpulse.processor.extension import Extension
from llmpulse.processor.metrics import names as M
from llmpulse.processor.pipeline.records import Feedback, LLMCall
from llmpulse.processor.settings import resolve
from llmpulse.testing.otlp import llm_attributes, make_request, make_span
from llmpulse.testing.polling import wait_until_async
from tests.processor.conftest import ServiceFactory, grpc_export


def _request(first: int, n: int) -> bytes:
    spans = [
        make_span(
            llm_attributes(), trace_id=(first + i).to_bytes(16, "big"), span_id=(first + i).to_bytes(8, "big")
        )
        for i in range(n)
    ]
    return make_request(spans).SerializeToString()


async def _call(port: int, body: bytes, timeout: float) -> grpc.StatusCode:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    async with channel:
        call = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=None,
        )
        try:
            await call(body, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK


async def test_a_request_queued_past_its_deadline_is_not_counted(make_service: ServiceFactory) -> None:
    service = await make_service()
    service.pipeline.pause()
    code = await _call(service.grpc.port, _request(1, 50), timeout=0.5)
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    service.pipeline.resume()
    a = service.accounting
    await wait_until_async(lambda: a.refused_spans[M.RECEIVER_GRPC, M.REFUSE_DEADLINE_EXCEEDED] == 50)
    assert a.accepted[M.ACCEPTED_LLM] == 0
    # the client's retry is the one that counts
    await grpc_export(service.grpc.port, _request(1, 50))
    assert a.accepted[M.ACCEPTED_LLM] == 50


async def test_the_queue_is_bounded_by_its_time_to_drain(make_service: ServiceFactory) -> None:
    service = await make_service()
    for n in range(5):  # the worker measures its drain rate on real requests
        await grpc_export(service.grpc.port, _request(1000 * (n + 1), 500))
    service.pipeline.max_delay = 0.001  # only now: a loaded machine can take a millisecond to start one
    assert service.pipeline.expected_wait == 0.0
    service.pipeline.pause()
    first = asyncio.ensure_future(_call(service.grpc.port, _request(10_000, 500), timeout=10))
    await wait_until_async(lambda: service.pipeline.queued_spans == 500)
    # far below the 65,536-span capacity, but 500 spans take longer than 1 ms to drain
    assert (service.pipeline.expected_wait or 0) > 0.001
    refused = await _call(service.grpc.port, _request(20_000, 10), timeout=10)
    assert refused == grpc.StatusCode.RESOURCE_EXHAUSTED
    accepted = service.accounting.accepted[M.ACCEPTED_LLM]
    service.pipeline.resume()
    # and the first one, queued longer than 1 ms, is refused too when the worker comes to it
    assert await first == grpc.StatusCode.RESOURCE_EXHAUSTED
    a = service.accounting
    assert a.refused_requests[M.RECEIVER_GRPC, M.REFUSE_QUEUE_FULL] == 2
    assert a.refused_spans[M.RECEIVER_GRPC, M.REFUSE_QUEUE_FULL] == 500  # the second one, undecoded
    assert a.accepted[M.ACCEPTED_LLM] == accepted


async def test_a_request_queued_past_the_delay_is_refused_with_a_retry_hint_and_not_counted(
    make_service: ServiceFactory,
) -> None:
    service = await make_service(queue_max_delay=0.2, retry_after=3.0)
    service.pipeline.pause()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}")
    async with channel:
        call = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        pending = asyncio.ensure_future(call(_request(1, 50), timeout=10))
        await wait_until_async(lambda: service.pipeline.queued_spans == 50)
        await asyncio.sleep(0.3)  # the worker is paused: the request cannot have started
        service.pipeline.resume()
        try:
            await pending
            raise AssertionError("the request was processed after waiting past queue_max_delay")
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert _retry_delay(exc.trailing_metadata()) == 3.0
    a = service.accounting
    assert a.refused_spans[M.RECEIVER_GRPC, M.REFUSE_QUEUE_FULL] == 50
    assert a.accepted[M.ACCEPTED_LLM] == 0
    await grpc_export(service.grpc.port, _request(1, 50))  # the retry counts, once
    assert a.accepted[M.ACCEPTED_LLM] == 50


EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _retry_delay(trailers: Any) -> float | None:
    """The ``google.rpc.RetryInfo`` delay in a call's ``grpc-status-details-bin`` trailer."""
    for key, value in trailers or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    return info.retry_delay.ToNanoseconds() / 1e9
    return None


@dataclass(frozen=True)
class _Totals:
    accepted: int
    received: int
    refused_requests: int
    refused_spans: int


class _SlowEngine:
    """A listener that holds the event loop for ``per_call`` seconds per call, as a heavy engine
    does on a busy machine (sleeping rather than spinning, so the test costs no CPU)."""

    def __init__(self, per_call: float) -> None:
        self.per_call = per_call

    def on_call(self, call: LLMCall, span: Any | None) -> None:
        time.sleep(self.per_call)

    def on_feedback(self, feedback: Feedback, span: Any | None) -> None:
        """Feedback costs nothing."""


def _open_loop(port: int, bodies: list[bytes], interval: float, timeout: float) -> list[tuple[Any, Any]]:
    """Send ``bodies`` at one per ``interval`` s from a thread with synchronous gRPC clients (so
    the sending does not wait on the event loop under test); (code, trailers) of each answer."""
    channels = [grpc.insecure_channel(f"127.0.0.1:{port}") for _ in range(8)]
    calls = [c.unary_unary(EXPORT, request_serializer=None, response_deserializer=None) for c in channels]
    try:
        futures: list[Future[Any]] = []
        begin = time.monotonic()
        for n, body in enumerate(bodies):
            futures.append(calls[n % len(calls)].future(body, timeout=timeout))
            time.sleep(max(0.0, begin + (n + 1) * interval - time.monotonic()))
        answers = []
        for future in futures:
            try:
                future.result()
                answers.append((grpc.StatusCode.OK, None))
            except grpc.RpcError as exc:
                answers.append((exc.code(), exc.trailing_metadata()))  # type: ignore[attr-defined]
        return answers
    finally:
        for channel in channels:
            channel.close()


async def test_overload_is_answered_inside_a_short_deadline_and_counted_exactly(
    make_service: ServiceFactory,
) -> None:
    """Four times what a slow engine can take, for two seconds: every call is answered before a
    3 s deadline (before, calls waited until the exporters' 10 s timeout), refusals carry a
    retry hint, and the processor counts exactly the spans the client saw accepted."""
    spans, per_call = 200, 0.0005  # 0.1 s of loop time per request: ~10 requests/s sustainable
    slow = Extension("slow", listeners=[_SlowEngine(per_call)])
    service = await make_service(extensions=[slow], queue_max_delay=0.5)
    for n in range(3):  # the worker measures its drain rate
        await grpc_export(service.grpc.port, _request(100_000 + 1000 * n, spans))
    a = service.accounting
    before = _Totals(
        a.accepted[M.ACCEPTED_LLM],
        a.received[M.RECEIVER_GRPC],
        sum(a.refused_requests.values()),
        sum(a.refused_spans.values()),
    )
    bodies = [_request(1000 * (n + 1), spans) for n in range(80)]
    result: list[Any] = []
    sender = threading.Thread(
        target=lambda: result.extend(_open_loop(service.grpc.port, bodies, 0.025, timeout=3.0))
    )
    sender.start()
    while sender.is_alive():
        await asyncio.sleep(0.05)
    sender.join()
    codes = [code for code, _ in result]
    assert len(codes) == 80
    assert grpc.StatusCode.DEADLINE_EXCEEDED not in codes, Counter(c.name for c in codes)
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, Counter(
        c.name for c in codes
    )
    refused = [trailers for code, trailers in result if code == grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert refused, "four times the sustainable rate was all accepted"
    assert all(_retry_delay(t) == service.settings.retry_after for t in refused)
    ok = codes.count(grpc.StatusCode.OK)
    await wait_until_async(lambda: service.pipeline.queued_spans == 0)
    # every call once: accepted ones counted whole, refused ones (before or after decoding) not
    assert a.accepted[M.ACCEPTED_LLM] - before.accepted == ok * spans
    assert sum(a.refused_requests.values()) - before.refused_requests == len(refused)
    received = a.received[M.RECEIVER_GRPC] - before.received
    assert received == ok * spans + sum(a.refused_spans.values()) - before.refused_spans


def test_the_delay_comes_from_the_environment() -> None:
    assert resolve({}, {"LLMPULSE_QUEUE_MAX_DELAY": "0.5"}).queue_max_delay == 0.5
