"""The OTLP/HTTP receiver, driven by the OTel SDK exporter and by raw requests."""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
from pathlib import Path
from typing import Any

import httpx
from google.rpc import code_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace.export import SpanExportResult

from llmpulse.contract import attributes as A
from llmpulse.processor.metrics import names as M
from llmpulse.processor.service import ProcessorService
from llmpulse.testing.otlp import llm_attributes, make_request, make_span, sdk_spans
from llmpulse.testing.polling import wait_until_async
from tests.processor.conftest import ServiceFactory, llm_labels

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
TRACE_HEX = "5b8efff798038103d269b633813fc60c"


def url(service: ProcessorService) -> str:
    return f"http://127.0.0.1:{service.http.port}/v1/traces"


def otlp_json(attributes: list[list[dict[str, Any]]], trace_id: str = TRACE_HEX) -> bytes:
    """An OTLP/JSON request with one span per attribute list."""
    spans = [
        {
            "traceId": trace_id,
            "spanId": f"{i + 1:016x}",
            "name": "chat gpt-4o",
            "kind": 3,
            "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": "1700000002000000000",
            "attributes": attrs,
        }
        for i, attrs in enumerate(attributes)
    ]
    return json.dumps(
        {"resourceSpans": [{"scopeSpans": [{"scope": {"name": "x"}, "spans": spans}]}]}
    ).encode()


OI_ATTRIBUTES = [
    {"key": A.OPENINFERENCE_SPAN_KIND, "value": {"stringValue": "LLM"}},
    {"key": A.OPENINFERENCE_PROVIDER, "value": {"stringValue": "openai"}},
    {"key": A.OPENINFERENCE_MODEL_NAME, "value": {"stringValue": "gpt-4o"}},
    {"key": A.OPENINFERENCE_TOKEN_COUNT_PROMPT, "value": {"intValue": "12"}},
    {"key": A.OPENINFERENCE_TOKEN_COUNT_COMPLETION, "value": {"intValue": 4}},
    {"key": A.FEATURE, "value": {"stringValue": "support"}},
]


async def test_sdk_http_exporter_protobuf_and_gzip(service: ProcessorService) -> None:
    spans = sdk_spans([(llm_attributes(), 0.3), (llm_attributes(), 0.7)])
    for compression in (Compression.NoCompression, Compression.Gzip):
        exporter = OTLPSpanExporter(endpoint=url(service), compression=compression)
        try:
            assert await asyncio.to_thread(exporter.export, spans) == SpanExportResult.SUCCESS
        finally:
            exporter.shutdown()
    get = service.registry.get_sample_value
    app = llm_labels(service="app")
    assert get(M.REQUESTS_TOTAL, {**app, "finish_reason": "stop", "outcome": "ok"}) == 4
    assert get(M.TOKENS_TOTAL, {**app, "token_type": "output"}) == 80
    assert get(M.SPANS_RECEIVED_TOTAL, {"receiver": "http"}) == 4


async def test_openinference_json_with_exemplar(service: ProcessorService) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(url(service), content=otlp_json([OI_ATTRIBUTES]), headers=JSON)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {}
        for _ in range(2):  # the first scrape shows the new series at zero (metrics.exposition)
            scrape = await client.get(
                f"http://127.0.0.1:{service.admin.port}/metrics",
                headers={"Accept": "application/openmetrics-text; version=1.0.0"},
            )
    get = service.registry.get_sample_value
    assert get(M.REQUESTS_TOTAL, {**llm_labels(), "finish_reason": "none", "outcome": "ok"}) == 1
    assert get(M.TOKENS_TOTAL, {**llm_labels(), "token_type": "input"}) == 12
    assert get(M.OPERATION_DURATION + "_sum", llm_labels()) == 2.0
    assert f'trace_id="{TRACE_HEX}"' in scrape.text


async def test_json_partial_success(service: ProcessorService) -> None:
    bad = [*OI_ATTRIBUTES[:3], {"key": A.OPENINFERENCE_TOKEN_COUNT_PROMPT, "value": {"intValue": "-3"}}]
    async with httpx.AsyncClient() as client:
        response = await client.post(url(service), content=otlp_json([OI_ATTRIBUTES, bad]), headers=JSON)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert "invalid_tokens=1" in partial["errorMessage"]
    assert service.registry.get_sample_value(M.SPANS_ACCEPTED_TOTAL, {"kind": "llm"}) == 1


async def test_protobuf_partial_success(service: ProcessorService) -> None:
    request = make_request([make_span(llm_attributes()), make_span(llm_attributes(**{A.COST_USD: "x"}))])
    async with httpx.AsyncClient() as client:
        response = await client.post(url(service), content=request.SerializeToString(), headers=PROTOBUF)
    assert response.status_code == 200
    body = ExportTraceServiceResponse.FromString(response.content)
    assert body.partial_success.rejected_spans == 1


async def test_bad_requests_get_the_right_status(service: ProcessorService) -> None:
    cases: list[tuple[str, str, dict[str, str], bytes, int]] = [
        ("POST", "/v1/traces", PROTOBUF, b"\x0a\xff\xff\xff\xff\x0f", 400),
        ("POST", "/v1/traces", JSON, b"{not json", 400),
        ("POST", "/v1/traces", JSON, b"[1, 2]", 400),
        ("POST", "/v1/traces", JSON, otlp_json([OI_ATTRIBUTES], trace_id="zz"), 400),
        ("POST", "/v1/traces", JSON, b'{"resourceSpans": 5}', 400),
        ("POST", "/v1/traces", {**PROTOBUF, "Content-Encoding": "gzip"}, b"not gzip", 400),
        ("POST", "/v1/traces", {"Content-Type": "text/plain"}, b"hello", 415),
        ("POST", "/v1/traces", {**PROTOBUF, "Content-Encoding": "br"}, b"x", 415),
        ("GET", "/v1/traces", {}, b"", 405),
        ("POST", "/v1/metrics", PROTOBUF, b"", 404),
    ]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http.port}") as client:
        for method, path, headers, body, status in cases:
            response = await client.request(method, path, headers=headers, content=body)
            assert response.status_code == status, (path, headers, body, response.text)
            if status == 400 and headers.get("Content-Type") == "application/json":
                assert response.json()["code"] == code_pb2.INVALID_ARGUMENT
            elif status == 400:
                assert status_pb2.Status.FromString(response.content).code == code_pb2.INVALID_ARGUMENT
    get = service.registry.get_sample_value
    assert get(M.REQUESTS_REFUSED_TOTAL, {"receiver": "http", "reason": "undecodable"}) == 6
    assert get(M.REQUESTS_REFUSED_TOTAL, {"receiver": "http", "reason": "unsupported_media_type"}) == 2
    assert get(M.SPANS_RECEIVED_TOTAL, {"receiver": "http"}) == 0


async def test_too_large_bodies(make_service: ServiceFactory) -> None:
    service = await make_service(max_request_bytes=4096)
    bomb = gzip.compress(b"\x00" * 100_000)
    async with httpx.AsyncClient() as client:
        plain = await client.post(url(service), content=b"\x00" * 5000, headers=PROTOBUF)
        zipped = await client.post(
            url(service), content=bomb, headers={**PROTOBUF, "Content-Encoding": "gzip"}
        )
    assert plain.status_code == 413
    assert zipped.status_code == 413
    labels = {"receiver": "http", "reason": "too_large"}
    assert service.registry.get_sample_value(M.REQUESTS_REFUSED_TOTAL, labels) == 2


async def test_chunked_body_is_accepted(service: ProcessorService) -> None:
    data = make_request([make_span(llm_attributes())]).SerializeToString()

    async def chunks() -> Any:
        yield data[:10]
        yield data[10:]

    async with httpx.AsyncClient() as client:
        response = await client.post(url(service), content=chunks(), headers=PROTOBUF)
    assert response.status_code == 200
    assert service.registry.get_sample_value(M.SPANS_ACCEPTED_TOTAL, {"kind": "llm"}) == 1


async def test_bearer_token(make_service: ServiceFactory) -> None:
    service = await make_service(auth_token="s3cret")
    body = make_request([make_span(llm_attributes())]).SerializeToString()
    async with httpx.AsyncClient() as client:
        denied = await client.post(url(service), content=body, headers=PROTOBUF)
        allowed = await client.post(
            url(service), content=body, headers={**PROTOBUF, "Authorization": "Bearer s3cret"}
        )
    assert denied.status_code == 401
    assert status_pb2.Status.FromString(denied.content).code == code_pb2.UNAUTHENTICATED
    assert allowed.status_code == 200
    labels = {"receiver": "http", "reason": "unauthenticated"}
    assert service.registry.get_sample_value(M.REQUESTS_REFUSED_TOTAL, labels) == 1
    assert service.registry.get_sample_value(M.SPANS_ACCEPTED_TOTAL, {"kind": "llm"}) == 1


async def test_full_queue_429_and_shutdown_503(make_service: ServiceFactory) -> None:
    service = await make_service(queue_spans=2, retry_after=2.5, queue_max_delay=60.0)
    service.pipeline.pause()
    body = make_request(
        [make_span(llm_attributes(), span_id=bytes([i]) * 8) for i in (1, 2)]
    ).SerializeToString()
    async with httpx.AsyncClient() as client:
        first = asyncio.create_task(client.post(url(service), content=body, headers=PROTOBUF))
        await wait_until_async(lambda: service.pipeline.queued_spans == 2)
        full = await client.post(url(service), content=body, headers=PROTOBUF)
        assert full.status_code == 429
        assert full.headers["retry-after"] == "3"
        assert status_pb2.Status.FromString(full.content).code == code_pb2.RESOURCE_EXHAUSTED
        service.pipeline.resume()
        assert (await first).status_code == 200
        service.pipeline.close()
        closing = await client.post(url(service), content=body, headers=PROTOBUF)
        assert closing.status_code == 503
        assert closing.headers["retry-after"] == "3"
    get = service.registry.get_sample_value
    # both refused before decoding (queue at capacity, then closed): requests counted, spans unseen
    assert get(M.REQUESTS_REFUSED_TOTAL, {"receiver": "http", "reason": "queue_full"}) == 1
    assert get(M.REQUESTS_REFUSED_TOTAL, {"receiver": "http", "reason": "shutting_down"}) == 1
    assert get(M.SPANS_RECEIVED_TOTAL, {"receiver": "http"}) == 2
    assert get(M.SPANS_ACCEPTED_TOTAL, {"kind": "llm"}) == 2


async def test_tls(make_service: ServiceFactory, tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    service = await make_service(tls_cert=cert, tls_key=key)
    context = ssl.create_default_context(cafile=str(cert))
    body = make_request([make_span(llm_attributes())]).SerializeToString()
    async with httpx.AsyncClient(verify=context) as client:
        response = await client.post(
            f"https://localhost:{service.http.port}/v1/traces", content=body, headers=PROTOBUF
        )
    assert response.status_code == 200
    assert service.registry.get_sample_value(M.SPANS_ACCEPTED_TOTAL, {"kind": "llm"}) == 1


async def test_a_request_queued_past_the_delay_is_429_and_not_counted(make_service: ServiceFactory) -> None:
    service = await make_service(queue_max_delay=0.2, retry_after=2.5)
    service.pipeline.pause()
    body = make_request([make_span(llm_attributes())]).SerializeToString()
    async with httpx.AsyncClient() as client:
        pending = asyncio.create_task(client.post(url(service), content=body, headers=PROTOBUF))
        await wait_until_async(lambda: service.pipeline.queued_spans == 1)
        await asyncio.sleep(0.3)  # paused: the request cannot have started
        service.pipeline.resume()
        refused = await pending
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "3"
    assert status_pb2.Status.FromString(refused.content).code == code_pb2.RESOURCE_EXHAUSTED
    get = service.registry.get_sample_value
    assert get(M.SPANS_REFUSED_TOTAL, {"receiver": "http", "reason": "queue_full"}) == 1
    assert get(M.SPANS_ACCEPTED_TOTAL, {"kind": "llm"}) == 0
