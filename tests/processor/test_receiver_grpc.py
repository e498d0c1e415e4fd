"""The OTLP/gRPC receiver, driven by the OTel SDK exporter and by raw calls."""

from __future__ import annotations

import asyncio

import grpc
import httpx
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc import Compression
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from llmpulse.contract import attributes as A
from llmpulse.processor.metrics import names as M
from llmpulse.processor.service import ProcessorService
from llmpulse.testing.otlp import llm_attributes, make_request, make_span, sdk_spans
from llmpulse.testing.polling import wait_until_async
from tests.processor.conftest import ServiceFactory, grpc_export, llm_labels

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


async def test_sdk_grpc_exporter_spans_become_exact_metrics(service: ProcessorService) -> None:
    spans = sdk_spans(
        [
            (llm_attributes(), 0.3),
            (llm_attributes(**{A.GEN_AI_USAGE_INPUT_TOKENS: 1000, A.COST_USD: 0.5}), 12.0),
            (
                {
                    A.GEN_AI_OPERATION_NAME: "chat",
                    A.GEN_AI_PROVIDER_NAME: "openai",
                    A.GEN_AI_REQUEST_MODEL: "gpt-4o",
                    A.GEN_AI_USAGE_INPUT_TOKENS: 5,
                    A.GEN_AI_USAGE_OUTPUT_TOKENS: 6,
                    A.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
                },
                0.1,
            ),
        ]
    )
    exporter = OTLPSpanExporter(endpoint=f"localhost:{service.grpc.port}", insecure=True)
    try:
        assert await asyncio.to_thread(exporter.export, spans) == SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    get = service.registry.get_sample_value
    app = llm_labels(service="app")
    assert get(M.REQUESTS_TOTAL, {**app, "finish_reason": "stop", "outcome": "ok"}) == 2
    gzipped = OTLPSpanExporter(
        endpoint=f"localhost:{service.grpc.port}", insecure=True, compression=Compression.Gzip
    )
    try:
        assert await asyncio.to_thread(gzipped.export, spans[:1]) == SpanExportResult.SUCCESS
    finally:
        gzipped.shutdown()
    assert get(M.REQUESTS_TOTAL, {**app, "finish_reason": "stop", "outcome": "ok"}) == 3
    assert get(M.TOKENS_TOTAL, {**app, "token_type": "input"}) == 1200
    reported = {**app, "pricing_version": "reported"}
    assert get(M.COST_USD_TOTAL, reported) == 0.0025 + 0.5 + 0.0025  # summed in arrival order
    official = llm_labels(service="app", feature="unknown")
    assert get(M.REQUESTS_TOTAL, {**official, "finish_reason": "stop", "outcome": "ok"}) == 1
    # no cost on the span: priced by the processor at gpt-4o list prices
    priced = {**official, "pricing_version": service.pipeline.pricer.version}
    assert get(M.COST_USD_TOTAL, priced) == pytest.approx(5 * 2.5e-6 + 6 * 10e-6, rel=1e-12)
    assert get(M.UNPRICED_REQUESTS_TOTAL, official) == 0
    assert get(M.SPANS_RECEIVED_TOTAL, {"receiver": "grpc"}) == 4
    slow_trace = format(spans[1].context.trace_id, "032x")
    async with httpx.AsyncClient() as client:
        for _ in range(2):  # the first scrape shows the new series at zero (metrics.exposition)
            scrape = await client.get(
                f"http://127.0.0.1:{service.admin.port}/metrics", headers={"Accept": OPENMETRICS}
            )
    assert scrape.headers["content-type"].startswith("application/openmetrics-text")
    bucket = next(
        line
        for line in scrape.text.splitlines()
        if line.startswith(M.OPERATION_DURATION + "_bucket{")
        and 'feature="support"' in line
        and 'le="20.48"' in line
    )
    assert f'trace_id="{slow_trace}"' in bucket


async def test_partial_success_reports_rejected_spans(service: ProcessorService) -> None:
    request = make_request(
        [
            make_span(llm_attributes()),
            make_span(llm_attributes(**{A.GEN_AI_USAGE_OUTPUT_TOKENS: "lots"})),
            make_span(llm_attributes(**{A.COST_USD: -1.0})),
        ]
    )
    response = await grpc_export(service.grpc.port, request)
    assert response.partial_success.rejected_spans == 2
    assert "invalid_tokens=1" in response.partial_success.error_message
    assert service.registry.get_sample_value(M.SPANS_ACCEPTED_TOTAL, {"kind": "llm"}) == 1


async def test_undecodable_request_is_invalid_argument(service: ProcessorService) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await grpc_export(service.grpc.port, b"\x0a\xff\xff\xff\xff\x0f")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    labels = {"receiver": "grpc", "reason": "undecodable"}
    assert service.registry.get_sample_value(M.REQUESTS_REFUSED_TOTAL, labels) == 1


async def test_full_queue_is_resource_exhausted_with_retry_info(make_service: ServiceFactory) -> None:
    service = await make_service(queue_spans=4, retry_after=3.0, queue_max_delay=60.0)
    service.pipeline.pause()
    three = make_request([make_span(llm_attributes(), span_id=bytes([i]) * 8) for i in range(1, 4)])
    first = asyncio.create_task(grpc_export(service.grpc.port, three))
    await wait_until_async(lambda: service.pipeline.queued_spans == 3)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await grpc_export(service.grpc.port, three)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = dict(caught.value.trailing_metadata() or ())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(details)
    assert status.code == code_pb2.RESOURCE_EXHAUSTED
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry)
    assert retry.retry_delay.seconds == 3
    get = service.registry.get_sample_value
    assert get(M.SPANS_REFUSED_TOTAL, {"receiver": "grpc", "reason": "queue_full"}) == 3
    assert get(M.QUEUE_SPANS) == 3
    service.pipeline.resume()
    assert (await first).partial_success.rejected_spans == 0
    assert get(M.SPANS_ACCEPTED_TOTAL, {"kind": "llm"}) == 3


async def test_shutting_down_is_unavailable(make_service: ServiceFactory) -> None:
    service = await make_service()
    service.pipeline.close()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await grpc_export(service.grpc.port, make_request([make_span(llm_attributes())]))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    labels = {"receiver": "grpc", "reason": "shutting_down"}
    # refused before decoding: the request is counted, its spans were never seen
    assert service.registry.get_sample_value(M.REQUESTS_REFUSED_TOTAL, labels) == 1
    assert service.registry.get_sample_value(M.SPANS_RECEIVED_TOTAL, {"receiver": "grpc"}) == 0


async def test_shutdown_drains_the_queue(make_service: ServiceFactory) -> None:
    service = await make_service(drain_timeout=5.0, queue_max_delay=60.0)
    service.pipeline.pause()
    pending = asyncio.create_task(grpc_export(service.grpc.port, make_request([make_span(llm_attributes())])))
    await wait_until_async(lambda: service.pipeline.queued_spans == 1)
    service.pipeline.resume()
    await service.shutdown()
    assert (await pending).partial_success.rejected_spans == 0
    assert service.registry.get_sample_value(M.SPANS_ACCEPTED_TOTAL, {"kind": "llm"}) == 1


async def test_requests_left_after_the_drain_bound_get_unavailable(make_service: ServiceFactory) -> None:
    service = await make_service(drain_timeout=0.05)
    service.pipeline.pause()
    pending = asyncio.create_task(grpc_export(service.grpc.port, make_request([make_span(llm_attributes())])))
    await wait_until_async(lambda: service.pipeline.queued_spans == 1)
    await service.shutdown()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await pending
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    labels = {"receiver": "grpc", "reason": "shutting_down"}
    assert service.registry.get_sample_value(M.SPANS_REFUSED_TOTAL, labels) == 1
    assert service.registry.get_sample_value(M.SPANS_ACCEPTED_TOTAL, {"kind": "llm"}) == 0


async def test_bearer_token_is_required_when_configured(make_service: ServiceFactory) -> None:
    service = await make_service(auth_token="s3cret")
    request = make_request([make_span(llm_attributes())])
    for metadata in ((), (("authorization", "Bearer wrong"),)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await grpc_export(service.grpc.port, request, metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await grpc_export(service.grpc.port, request, metadata=(("authorization", "Bearer s3cret"),))
    get = service.registry.get_sample_value
    assert get(M.REQUESTS_REFUSED_TOTAL, {"receiver": "grpc", "reason": "unauthenticated"}) == 2
    assert get(M.SPANS_ACCEPTED_TOTAL, {"kind": "llm"}) == 1


async def test_oversized_request_is_refused(make_service: ServiceFactory) -> None:
    service = await make_service(max_request_bytes=2000)
    big = make_request([make_span(llm_attributes(), span_id=bytes([i]) * 8) for i in range(1, 20)])
    assert big.ByteSize() > 2000
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await grpc_export(service.grpc.port, big)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert service.registry.get_sample_value(M.SPANS_RECEIVED_TOTAL, {"receiver": "grpc"}) == 0


async def test_tls(make_service: ServiceFactory, tls_files: tuple[object, object]) -> None:
    cert, key = tls_files
    service = await make_service(tls_cert=cert, tls_key=key)
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())  # type: ignore[attr-defined]
    await grpc_export(service.grpc.port, make_request([make_span(llm_attributes())]), credentials=credentials)
    assert service.registry.get_sample_value(M.SPANS_ACCEPTED_TOTAL, {"kind": "llm"}) == 1
