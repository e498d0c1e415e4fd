"""Replays the hostile corpus (tests/hostile/corpus.py, >= 300 requests) against a running
processor over OTLP/HTTP, and its protobuf bodies over OTLP/gRPC: every request is answered
(no reset, no 5xx), every refusal carries a google.rpc.Status, every span is accounted for, and
the processor is healthy and scrapable afterwards."""

from __future__ import annotations

import gzip
import json
import logging
import random

import grpc
import httpx
import pytest
from google.rpc import status_pb2
from prometheus_client.parser import text_string_to_metric_families

from llmpulse.processor.metrics import names as M
from llmpulse.testing.polling import wait_until_async
from tests.hostile.corpus import JSON, MAX_REQUEST_BYTES, PROTOBUF, corpus, valid_request
from tests.processor.conftest import ServiceFactory, grpc_export

ANSWERS = {200, 400, 404, 405, 413, 415}


def _status_of(response: httpx.Response) -> status_pb2.Status:
    media = response.headers.get("content-type", "")
    if media.startswith(JSON):
        document = json.loads(response.content)
        return status_pb2.Status(code=document.get("code", 0), message=document.get("message", ""))
    assert media.startswith(PROTOBUF), f"{response.status_code} answered {media!r}: {response.content[:80]!r}"
    return status_pb2.Status.FromString(response.content)


async def test_the_hostile_corpus_is_answered_and_accounted(
    make_service: ServiceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    requests = corpus()
    assert len(requests) >= 300
    service = await make_service(max_request_bytes=MAX_REQUEST_BYTES)
    answers: dict[str, set[int]] = {}
    undecodable = 0
    grpc_codes: set[grpc.StatusCode] = set()
    with caplog.at_level(logging.WARNING):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http.port}", timeout=30) as client:
            for hostile in requests:
                response = await client.request(
                    hostile.method, hostile.path, content=hostile.body, headers=hostile.headers
                )
                answers.setdefault(hostile.category, set()).add(response.status_code)
                assert response.status_code in ANSWERS, (
                    hostile.category,
                    response.status_code,
                    response.text[:200],
                )
                if response.status_code != 200:
                    status = _status_of(response)
                    assert status.code != 0 and status.message, (hostile.category, status)
                    # one clear line, not a value echoed whole or a chain of parser frames
                    assert "\n" not in status.message and len(status.message) < 400, status.message
                    undecodable += response.status_code == 400
                plain = hostile.headers == {"Content-Type": PROTOBUF} and hostile.method == "POST"
                if plain and hostile.path == "/v1/traces" and len(hostile.body) <= MAX_REQUEST_BYTES:
                    try:
                        await grpc_export(service.grpc.port, hostile.body)
                        grpc_codes.add(grpc.StatusCode.OK)
                    except grpc.aio.AioRpcError as exc:
                        grpc_codes.add(exc.code())
        admin = f"http://127.0.0.1:{service.admin.port}"
        async with httpx.AsyncClient(base_url=admin) as client:
            metrics = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
            status = await client.get("/api/status")
            health = await client.get("/healthz")
    assert metrics.status_code == status.status_code == health.status_code == 200
    families = list(text_string_to_metric_families(metrics.text.replace("# EOF\n", "")))
    assert any(f.name == M.SPANS_REJECTED_TOTAL.removesuffix("_total") for f in families)
    assert grpc_codes <= {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
    # what each category must get
    assert answers["gzip-bomb"] == {413} and answers["too-large"] == {413}
    assert answers["gzip-two-members"] == {200} and answers["media-type"] <= {200, 400, 415}
    assert answers["method"] == {405} and 404 in answers["path"]
    assert answers["poison-values"] <= {200}
    assert answers["json-malformed"] == {400} and answers["json-poison"] == {200}
    assert answers["json-gzip-bomb"] == {413}
    a = service.accounting
    await wait_until_async(
        lambda: sum(a.received.values()) == sum(a.accepted.values()) + sum(a.rejected.values())
    )
    assert a.rejected[M.REJECT_INVALID_ID] > 0 and a.rejected[M.REJECT_INVALID_TOKENS] > 0
    assert a.rejected[M.REJECT_INVALID_COST] > 0
    refused = sum(a.refused_requests.values())
    assert refused > 0
    # every 400 counted by its reason (the gRPC replay counts its own on its receiver)
    assert a.refused_requests[M.RECEIVER_HTTP, M.REFUSE_UNDECODABLE] == undecodable > 0
    # nothing a client sent was logged as a crash
    crashes = [
        r
        for r in caplog.records
        if r.exc_info or "Traceback" in r.getMessage() or "RecursionError" in r.getMessage()
    ]
    assert not crashes, [r.getMessage() for r in crashes[:3]]


async def test_a_two_member_gzip_body_counts_every_span(make_service: ServiceFactory) -> None:
    rng = random.Random(5)
    service = await make_service()
    body = gzip.compress(valid_request(rng, 2)) + gzip.compress(valid_request(rng, 2))
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"http://127.0.0.1:{service.http.port}/v1/traces",
            content=body,
            headers={"Content-Type": PROTOBUF, "Content-Encoding": "gzip"},
        )
    assert response.status_code == 200
    await wait_until_async(lambda: service.accounting.accepted[M.ACCEPTED_LLM] == 4)


async def test_an_oversized_body_gets_its_413_not_a_reset(make_service: ServiceFactory) -> None:
    service = await make_service(max_request_bytes=MAX_REQUEST_BYTES)
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(5):
            response = await client.post(
                f"http://127.0.0.1:{service.http.port}/v1/traces",
                content=b"\0" * (8 * MAX_REQUEST_BYTES),
                headers={"Content-Type": PROTOBUF},
            )
            assert response.status_code == 413
            assert "larger than" in status_pb2.Status.FromString(response.content).message
