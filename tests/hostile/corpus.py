"""A deterministic corpus of hostile OTLP/HTTP requests, the same on every run.

Each entry is one request (method, path, headers, body) and the span count a well-behaved
processor must account for when it accepts the body (0 for bodies it cannot decode). The
categories follow what an adversarial probe of ``llmpulse serve`` tried: random and truncated
bytes, flipped bits, poison numbers, ids of the wrong length, deeply nested values and content,
gzip bombs, truncated and multi-member gzip, wrong media types, encodings, paths and methods,
bodies over the size limit, and junk headers.
"""

from __future__ import annotations

import gzip
import math
import random
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from llmpulse.contract import attributes as A
from llmpulse.testing.otlp import llm_attributes, make_request, make_span

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_REQUEST_BYTES = 1024 * 1024  # the suite's processor runs with this limit


@dataclass(frozen=True, slots=True)
class Hostile:
    """One hostile request."""

    category: str
    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": PROTOBUF})
    method: str = "POST"
    path: str = "/v1/traces"


def _ids(rng: random.Random) -> dict[str, bytes]:
    return {"trace_id": rng.randbytes(16), "span_id": rng.randbytes(8)}


def valid_request(rng: random.Random, n: int = 2, **attrs: Any) -> bytes:
    """A well-formed request of ``n`` LLM spans with fresh ids (``attrs`` override attributes)."""
    spans = [make_span(llm_attributes(**attrs), **_ids(rng)) for _ in range(n)]
    return make_request(spans).SerializeToString()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _nested_request(rng: random.Random, depth: int) -> bytes:
    """A request whose one LLM span carries an attribute nested ``depth`` arrays deep, built as
    bytes (the protobuf runtime refuses to build what it would refuse to parse)."""
    value = AnyValue(string_value="leaf").SerializeToString()
    for _ in range(depth):
        value = _field(5, _field(1, value))  # AnyValue.array_value -> ArrayValue.values
    span = make_span(llm_attributes(), **_ids(rng)).SerializeToString()
    span += _field(9, _field(1, b"deep") + _field(2, value))  # Span.attributes: KeyValue(key, value)
    return _field(1, _field(2, _field(2, span)))  # resource_spans.scope_spans.spans


def _nested_json(depth: int) -> str:
    return "[" * depth + '"x"' + "]" * depth


POISON: list[dict[str, Any]] = [
    {A.GEN_AI_USAGE_INPUT_TOKENS: 1.7e308},
    {A.GEN_AI_USAGE_OUTPUT_TOKENS: 2**62},
    {A.GEN_AI_USAGE_INPUT_TOKENS: -5},
    {A.GEN_AI_USAGE_INPUT_TOKENS: 0.5},
    {A.COST_USD: 1e308},
    {A.COST_USD: math.inf},
    {A.COST_USD: math.nan},
    {A.COST_USD: -1.0},
    {A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 1e300},
    {A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: -1.0},
    {A.FEATURE: 12},
    {A.GEN_AI_REQUEST_MODEL: True},
    {A.FEATURE: "f" * 10_000},
    {A.GEN_AI_RESPONSE_FINISH_REASONS: [1, 2]},
    {A.GEN_AI_INPUT_MESSAGES: _nested_json(5000)},
    {A.GEN_AI_OUTPUT_MESSAGES: _nested_json(2000)},
    {A.GEN_AI_INPUT_MESSAGES: "[" + '{"role":"user","parts":[' * 800},
]


def corpus(seed: int = 20261202) -> list[Hostile]:
    """At least 300 hostile requests."""
    rng = random.Random(seed)
    valid = valid_request(rng)
    out: list[Hostile] = []
    for _ in range(40):
        out.append(Hostile("random-bytes", rng.randbytes(rng.randint(0, 400))))
    for _ in range(40):
        out.append(Hostile("truncated", valid[: rng.randint(1, len(valid) - 1)]))
    for _ in range(40):
        flipped = bytearray(valid)
        for _ in range(rng.randint(1, 6)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        out.append(Hostile("bit-flips", bytes(flipped)))
    for _ in range(2):
        for attrs in POISON:
            out.append(Hostile("poison-values", valid_request(rng, 1, **attrs)))
    for length in (0, 1, 8, 15, 17, 32, 300):
        spans = [make_span(llm_attributes(), trace_id=rng.randbytes(length), span_id=rng.randbytes(8))]
        out.append(Hostile("bad-trace-id", make_request(spans).SerializeToString()))
        spans = [make_span(llm_attributes(), trace_id=rng.randbytes(16), span_id=rng.randbytes(length))]
        out.append(Hostile("bad-span-id", make_request(spans).SerializeToString()))
    for depth in (10, 40, 45, 60, 200, 2000, 20_000):
        out.append(Hostile("nested-anyvalue", _nested_request(rng, depth)))
    for depth in (10, 40, 100, 1000, 100_000):
        out.append(Hostile("nested-json", _nested_json_request(depth).encode(), {"Content-Type": JSON}))
    out.append(Hostile("nested-json", b"[" * 100_000 + b"]" * 100_000, {"Content-Type": JSON}))
    for size in (MAX_REQUEST_BYTES + 1, 4 * MAX_REQUEST_BYTES, 64 * MAX_REQUEST_BYTES):
        out.append(
            Hostile(
                "gzip-bomb",
                gzip.compress(b"\0" * size),
                {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"},
            )
        )
    for _ in range(10):
        out.append(
            Hostile(
                "gzip-truncated",
                gzip.compress(valid)[: rng.randint(1, 20)],
                {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"},
            )
        )
    for _ in range(5):
        first, second = valid_request(rng), valid_request(rng)
        out.append(
            Hostile(
                "gzip-two-members",
                gzip.compress(first) + gzip.compress(second),
                {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"},
            )
        )
    for media in (
        "text/plain",
        "application/xml",
        "",
        "application/x-protobuf; charset=utf-8",
        "APPLICATION/JSON",
    ):
        out.append(Hostile("media-type", valid, {"Content-Type": media} if media else {}))
    for encoding in ("br", "deflate", "zstd", "gzip, gzip", "identity"):
        out.append(Hostile("encoding", valid, {"Content-Type": PROTOBUF, "Content-Encoding": encoding}))
    for path in ("/", "/v1/metrics", "/v1/logs", "/v1/traces/", "/v1/traces?x=1", "/%00", "/v1/../v1/traces"):
        out.append(Hostile("path", valid, path=path))
    for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS"):
        out.append(Hostile("method", valid, method=method))
    for size in (MAX_REQUEST_BYTES + 1, 3 * MAX_REQUEST_BYTES):
        out.append(Hostile("too-large", rng.randbytes(size)))
    for _ in range(20):
        junk = {f"X-Junk-{i}": "j" * rng.randint(1, 2000) for i in range(rng.randint(1, 20))}
        out.append(Hostile("junk-headers", valid, {"Content-Type": PROTOBUF, **junk}))
    for _ in range(60):
        spans = [
            make_span(llm_attributes(**rng.choice(POISON)), **_ids(rng)) for _ in range(rng.randint(1, 5))
        ]
        spans += [make_span(llm_attributes(), **_ids(rng)) for _ in range(rng.randint(0, 3))]
        out.append(Hostile("mixed-batch", make_request(spans).SerializeToString()))
    return out


def _nested_json_request(depth: int) -> str:
    """An OTLP/JSON request with one attribute nested ``depth`` arrays deep (built as text)."""
    value = '{"arrayValue":{"values":[' * depth + '{"stringValue":"leaf"}' + "]}}" * depth
    attributes = (
        f'[{{"key":"{A.SPAN_KIND}","value":{{"stringValue":"llm"}}}},{{"key":"deep","value":{value}}}]'
    )
    span = f'{{"traceId":"{"ab" * 16}","spanId":"{"cd" * 8}","name":"chat","attributes":{attributes}}}'
    return f'{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{span}]}}]}}]}}'
