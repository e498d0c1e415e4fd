"""The processor with the real components: the built collector in front, Prometheus scraping it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from llmpulse.processor.metrics import names as M
from llmpulse.processor.service import ProcessorService
from llmpulse.testing.otlp import llm_attributes, make_request, make_span, sdk_spans
from llmpulse.testing.polling import wait_until_async
from tests.processor.conftest import grpc_export, llm_labels

pytestmark = pytest.mark.components


async def test_collector_otlp_exporter_feeds_the_processor(
    service: ProcessorService, start_collector: Callable[..., Any]
) -> None:
    handle = await asyncio.to_thread(start_collector, f"127.0.0.1:{service.grpc.port}")
    spans = sdk_spans([(llm_attributes(), 0.2) for _ in range(5)] + [({"http.route": "/"}, 0.01)])
    exporter = OTLPSpanExporter(endpoint=handle.grpc_endpoint, insecure=True)
    try:
        assert await asyncio.to_thread(exporter.export, spans) == SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    get = service.registry.get_sample_value
    await wait_until_async(lambda: (get(M.SPANS_ACCEPTED_TOTAL, {"kind": "llm"}) or 0) >= 5)
    assert get(M.REQUESTS_TOTAL, {**llm_labels(service="app"), "finish_reason": "stop", "outcome": "ok"}) == 5
    assert get(M.TOKENS_TOTAL, {**llm_labels(service="app"), "token_type": "input"}) == 500
    assert get(M.SPANS_ACCEPTED_TOTAL, {"kind": "other"}) == 1


async def test_prometheus_scrapes_metrics_and_exemplars(
    service: ProcessorService, start_prometheus: Callable[[str], Any]
) -> None:
    trace_id = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
    span = make_span(llm_attributes(), trace_id=trace_id, duration_s=3.0)
    span.end_time_unix_nano = time.time_ns()  # exemplars are queried by time
    span.start_time_unix_nano = span.end_time_unix_nano - 3_000_000_000
    await grpc_export(service.grpc.port, make_request([span]))
    config = (
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: llmpulse\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{service.admin.port}']\n"
    )
    _, port = await asyncio.to_thread(start_prometheus, config)
    api = f"http://127.0.0.1:{port}/api/v1"
    query = f'{M.REQUESTS_TOTAL}{{feature="support",outcome="ok"}}'
    async with httpx.AsyncClient() as client:

        async def scraped() -> tuple[list[Any], list[Any]] | None:
            now = time.time()
            found = (await client.get(f"{api}/query", params={"query": query})).json()["data"]["result"]
            ex = (
                await client.get(
                    f"{api}/query_exemplars",
                    params={"query": M.OPERATION_DURATION + "_bucket", "start": now - 600, "end": now + 60},
                )
            ).json()["data"]
            done = found and found[0]["value"][1] == "1" and ex
            return (found, ex) if done else None

        value, exemplars = await wait_until_async(
            scraped, timeout=60, interval=0.1, message="Prometheus has no sample and exemplar of the request"
        )
    assert value and value[0]["value"][1] == "1"
    # the series was scraped at 0 before its first count, so increase() sees that count
    history = await client_range(api, f"{query}[5m]")
    assert [v for _, v in history[0]["values"]][:2] == ["0", "1"]
    labels = [e["labels"] for series in exemplars for e in series["exemplars"]]
    assert {"trace_id": trace_id.hex()} in labels


async def client_range(api: str, selector: str) -> list[Any]:
    """The raw samples of a range selector, evaluated now."""
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{api}/query", params={"query": selector})
    result: list[Any] = answer.json()["data"]["result"]
    return result
