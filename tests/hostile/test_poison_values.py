"""Poison numbers are refused at the door, so nothing downstream can overflow: /metrics and
/api/status keep answering, and the largest accepted values leave sums finite."""

from __future__ import annotations

import json
import math

import httpx
from prometheus_client.parser import text_string_to_metric_families

from llmpulse.contract import attributes as A
from llmpulse.processor.metrics import names as M
from llmpulse.processor.pipeline.normalize import MAX_COST_USD_PER_CALL, MAX_TOKENS_PER_CALL
from llmpulse.testing.otlp import llm_attributes, make_request, make_span
from llmpulse.testing.polling import wait_until_async
from tests.processor.conftest import ServiceFactory, grpc_export


def _span(n: int, **attrs: object):  # type: ignore[no-untyped-def]
    return make_span(llm_attributes(**attrs), trace_id=n.to_bytes(16, "big"), span_id=n.to_bytes(8, "big"))


async def _scrape(
    admin_port: int,
) -> tuple[dict[tuple[str, tuple[tuple[str, str], ...]], float], dict[str, object]]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{admin_port}") as client:
        metrics = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        status = await client.get("/api/status")
    assert metrics.status_code == 200, metrics.text[:200]
    assert status.status_code == 200, status.text[:200]
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.text.replace("# EOF\n", ""))
        for s in family.samples
    }
    return samples, json.loads(status.text)


async def test_poison_values_are_rejected_and_the_admin_port_keeps_answering(
    make_service: ServiceFactory,
) -> None:
    service = await make_service()
    poison = [
        _span(1, **{A.GEN_AI_USAGE_INPUT_TOKENS: 1.7e308}),
        _span(2, **{A.GEN_AI_USAGE_INPUT_TOKENS: 1.7e308}),
        _span(3, **{A.GEN_AI_USAGE_OUTPUT_TOKENS: 2**62}),
        _span(4, **{A.COST_USD: 1e308}),
        _span(5, **{A.COST_USD: 1e308}),
        _span(6, **{A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 1e300}),
        make_span(llm_attributes(), trace_id=b"\x07" * 300, span_id=b"\x07" * 8),
        make_span(llm_attributes(), trace_id=b"\x08" * 16, span_id=b"\x08" * 300),
    ]
    await grpc_export(service.grpc.port, make_request(poison))
    await wait_until_async(lambda: sum(service.accounting.rejected.values()) >= len(poison))
    samples, status = await _scrape(service.admin.port)
    rejected = {
        dict(labels)["reason"]: v for (name, labels), v in samples.items() if name == M.SPANS_REJECTED_TOTAL
    }
    assert rejected[M.REJECT_INVALID_TOKENS] == 3
    assert rejected[M.REJECT_INVALID_COST] == 2
    assert rejected[M.REJECT_INVALID_TIME_TO_FIRST_CHUNK] == 1
    assert rejected[M.REJECT_INVALID_ID] == 2
    assert status["state"] == "running"


async def test_the_largest_accepted_values_keep_every_sum_finite(make_service: ServiceFactory) -> None:
    service = await make_service()
    biggest = [
        _span(n, **{A.GEN_AI_USAGE_INPUT_TOKENS: MAX_TOKENS_PER_CALL, A.COST_USD: MAX_COST_USD_PER_CALL})
        for n in range(1, 1001)
    ]
    await grpc_export(service.grpc.port, make_request(biggest))
    await wait_until_async(lambda: sum(service.accounting.accepted.values()) >= len(biggest))
    await _scrape(service.admin.port)  # a new series is exposed at zero on its first scrape
    samples, _status = await _scrape(service.admin.port)
    tokens = [v for (name, _), v in samples.items() if name == M.TOKENS_TOTAL]
    assert tokens and all(math.isfinite(v) for v in tokens)
    assert sum(tokens) >= len(biggest) * MAX_TOKENS_PER_CALL
    cost = sum(v for (name, _), v in samples.items() if name == M.COST_USD_TOTAL)
    assert cost == len(biggest) * MAX_COST_USD_PER_CALL
