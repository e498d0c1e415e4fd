"""A deterministic corpus of malformed requests: no crash, right status, every span accounted."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import grpc
import httpx

from llmpulse.contract import attributes as A
from llmpulse.processor.metrics import names as M
from llmpulse.processor.pipeline.normalize import _KEYS
from llmpulse.processor.service import ProcessorService
from llmpulse.testing.otlp import llm_attributes, make_request, make_span
from tests.processor.conftest import grpc_export, llm_labels

CORPUS_SIZE = 150
_VALUES: list[Any] = [
    -1, 0, 1, 2**62, -(2**62), 0.5, -0.5, math.nan, math.inf, -math.inf, "", "x", "12", "stop", "Ω" * 50,
    True, False, b"\xff", [], ["stop"], [1, "a"], [[1]], "__other__",
]  # fmt: skip


def _random_span(rng: random.Random) -> Any:
    attrs: dict[str, Any] = {}
    for key in rng.sample(_KEYS, rng.randint(0, 12)):
        attrs[key] = rng.choice(_VALUES)
    if rng.random() < 0.5:
        attrs[A.SPAN_KIND] = rng.choice(["llm", "step", "feedback", "", "bogus"])
    span = make_span(
        attrs,
        trace_id=rng.randbytes(rng.choice([0, 3, 16])),
        span_id=rng.randbytes(rng.choice([0, 8])),
        duration_s=rng.uniform(-1, 100),
        status_code=rng.choice([0, 1, 2, 7]),
    )
    if rng.random() < 0.1:
        span.end_time_unix_nano = 0
    return span


def corpus(seed: int = 20261125) -> list[bytes]:
    """Malformed and hostile request bodies, the same on every run."""
    rng = random.Random(seed)
    valid = make_request([make_span(llm_attributes())]).SerializeToString()
    bodies: list[bytes] = []
    for i in range(CORPUS_SIZE):
        kind = i % 5
        if kind == 0:
            bodies.append(rng.randbytes(rng.randint(0, 300)))
        elif kind == 1:
            bodies.append(valid[: rng.randint(0, len(valid) - 1)])
        elif kind == 2:
            flipped = bytearray(valid)
            for _ in range(rng.randint(1, 8)):
                flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            bodies.append(bytes(flipped))
        else:
            spans = [_random_span(rng) for _ in range(rng.randint(1, 6))]
            bodies.append(make_request(spans).SerializeToString())
    return bodies


def json_corpus(seed: int = 7) -> list[bytes]:
    """Malformed OTLP/JSON bodies."""
    rng = random.Random(seed)
    documents: list[Any] = [
        None, 1, "x", [], {"resourceSpans": None}, {"resourceSpans": [None]},
        {"resourceSpans": [{"scopeSpans": 3}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 5}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": "llmpulse.span.kind"}]}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]},
    ]  # fmt: skip
    bodies = [json.dumps(d).encode() for d in documents]
    bodies += [rng.randbytes(rng.randint(1, 100)) for _ in range(20)]
    bodies.append(b"[" * 5000 + b"]" * 5000)
    return bodies


async def test_fuzzed_requests_never_break_the_processor(service: ProcessorService) -> None:
    grpc_codes: set[grpc.StatusCode] = set()
    http_codes: set[int] = set()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http.port}") as client:
        for body in corpus():
            try:
                await grpc_export(service.grpc.port, body)
                grpc_codes.add(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as exc:
                grpc_codes.add(exc.code())
            response = await client.post(
                "/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}
            )
            http_codes.add(response.status_code)
        for body in json_corpus():
            response = await client.post(
                "/v1/traces", content=body, headers={"Content-Type": "application/json"}
            )
            http_codes.add(response.status_code)
        # still healthy, and still counting correctly
        await grpc_export(
            service.grpc.port, make_request([make_span(llm_attributes(**{A.FEATURE: "after"}))])
        )
        assert (await client.get(f"http://127.0.0.1:{service.admin.port}/metrics")).status_code == 200
    assert grpc_codes <= {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
    assert grpc.StatusCode.INVALID_ARGUMENT in grpc_codes and grpc.StatusCode.OK in grpc_codes
    assert http_codes <= {200, 400}
    labels = {**llm_labels(feature="after"), "finish_reason": "stop", "outcome": "ok"}
    assert service.registry.get_sample_value(M.REQUESTS_TOTAL, labels) == 1
    a = service.accounting
    assert sum(a.received.values()) == sum(a.accepted.values()) + sum(a.rejected.values())
    assert sum(a.rejected.values()) > 0
