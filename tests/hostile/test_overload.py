"""Overload answers with refusals, not latency: the queue is bounded by its time to drain, and a
request that outlived its client's deadline in the queue is not counted (its retry is)."""

from __future__ import annotations

import asyncio

import grpc

from llmpulse.processor.metrics import names as M
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
    service = await make_service(queue_max_delay=0.001)
    for n in range(5):  # the worker measures its drain rate on real requests
        await grpc_export(service.grpc.port, _request(1000 * (n + 1), 500))
    assert service.pipeline.expected_wait == 0.0
    service.pipeline.pause()
    first = asyncio.ensure_future(_call(service.grpc.port, _request(10_000, 500), timeout=10))
    await wait_until_async(lambda: service.pipeline.queued_spans == 500)
    # far below the 65,536-span capacity, but 500 spans take longer than 1 ms to drain
    assert (service.pipeline.expected_wait or 0) > 0.001
    refused = await _call(service.grpc.port, _request(20_000, 10), timeout=10)
    assert refused == grpc.StatusCode.RESOURCE_EXHAUSTED
    service.pipeline.resume()
    assert await first == grpc.StatusCode.OK
    assert service.accounting.refused_requests[M.RECEIVER_GRPC, M.REFUSE_QUEUE_FULL] == 1


def test_the_delay_comes_from_the_environment() -> None:
    assert resolve({}, {"LLMPULSE_QUEUE_MAX_DELAY": "0.5"}).queue_max_delay == 0.5
