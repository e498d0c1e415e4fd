"""A deterministic corpus of hostile OTLP/HTTP requests, the same on every run.

Each entry is one request (method, path, headers, body) and the span count a well-behaved
processor must account for when it accepts the body (0 for bodies it cannot decode). The
categories follow what an adversarial probe of ``llmpulse serve`` tried: random and truncated
bytes, flipped bits, poison numbers, ids of the wrong length, deeply nested values and content,
gzip bombs, truncated and multi-member gzip, wrong media types, encodings, paths and methods,
bodies over the size limit, and junk headers; and for OTLP/JSON (:func:`json_corpus`): deep
nesting, numbers out of range, wrong types, ids that are not hex, repeated keys, ``NaN`` and
``Infinity`` literals, byte order marks and other encodings than UTF-8, invalid UTF-8, truncated
and trailing text (each a 400), poison values in well-formed JSON (200, the spans rejected) and
gzip bombs of JSON (413).
"""

from __future__ import annotations

import gzip
import json
import math
import random
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from llmpulse.contract import attributes as A
from llmpulse.processor.ingest.otlp_json import encode_request
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
    return out + json_corpus(rng)


def _as_json(body: bytes) -> bytes:
    return encode_request(ExportTraceServiceRequest.FromString(body))


def _json_span(document: dict[str, Any]) -> dict[str, Any]:
    """The first span of an OTLP/JSON document (to spoil in place)."""
    span: dict[str, Any] = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    return span


def _spoiled(rng: random.Random, spoil: Any) -> bytes:
    """A one-span OTLP/JSON request whose span ``spoil(span)`` changed."""
    document = json.loads(_as_json(valid_request(rng, 1)))
    spoil(_json_span(document))
    return json.dumps(document).encode()


def _with_value(value: Any) -> Any:
    return lambda span: span["attributes"].append({"key": "hostile", "value": value})


def _nested_kvlist(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(depth):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    return value


BAD_JSON_SPANS: list[Any] = [
    # numbers out of range, in strings or as literals
    _with_value({"intValue": "9" * 30}),
    _with_value({"intValue": "9" * 5000}),
    _with_value({"intValue": "-9223372036854775809"}),
    _with_value({"intValue": "1e400"}),
    _with_value({"intValue": 1.5}),
    _with_value({"intValue": 1e300}),
    lambda span: span.update(startTimeUnixNano="-1"),
    lambda span: span.update(endTimeUnixNano="1e30"),
    # wrong types
    _with_value({"stringValue": 5}),
    _with_value({"boolValue": "yes"}),
    _with_value({"doubleValue": "lots"}),
    _with_value({"arrayValue": {"values": "x"}}),
    _with_value({"kvlistValue": [1, 2]}),
    lambda span: span.update(attributes={"a": 1}),
    lambda span: span.update(name=["chat"]),
    lambda span: span.update(startTimeUnixNano="soon"),
    lambda span: span.update(status={"code": "kaput-ish", "message": 3}),
    lambda span: span.update(traceId=5),
    # ids that are not hex
    lambda span: span.update(traceId="abc"),
    lambda span: span.update(traceId="zz" * 16),
    lambda span: span.update(traceId="W47/95gDgQPSabYzgT/GDA=="),  # base64, as proto3 JSON would write it
    lambda span: span.update(spanId="0x" + "ab" * 7),
    lambda span: span.update(parentSpanId="ab" * 7 + "é"),
    # nested past what protobuf decodes
    _with_value(_nested_kvlist(60)),
    _with_value(_nested_kvlist(150)),  # json.dumps itself cannot write much deeper
]


def _json_text(rng: random.Random) -> bytes:
    return _as_json(valid_request(rng, 1))


def json_corpus(rng: random.Random) -> list[Hostile]:
    """Hostile OTLP/JSON requests."""
    as_json = {"Content-Type": JSON}
    out = [Hostile("json-malformed", _spoiled(rng, spoil), as_json) for spoil in BAD_JSON_SPANS]
    good = _json_text(rng)
    head, _, tail = good.partition(b'"traceId":')
    texts = [
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b'{"resourceSpans":' * 50_000,
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"k","value":{"intValue":'
        + b"9" * 5000
        + b"}}]}]}]}]}",
        # repeated keys: in the request, in a span, in an attribute
        good[:-1] + b',"resourceSpans":[]}',
        head + b'"traceId":"' + b"ab" * 16 + b'","traceId":' + tail,
        good.replace(b'{"key":', b'{"key":"shadow","key":', 1),
        # non-standard literals
        good.replace(b'"attributes":[', b'"attributes":[{"key":"x","value":{"doubleValue":NaN}},', 1),
        good.replace(b'"attributes":[', b'"attributes":[{"key":"x","value":{"doubleValue":Infinity}},', 1),
        good.replace(b'"attributes":[', b'"attributes":[{"key":"x","value":{"doubleValue":-Infinity}},', 1),
        # encodings
        b"\xef\xbb\xbf" + good,
        good.decode().encode("utf-16"),
        good.decode().encode("utf-32"),
        good.replace(b'"name":"', b'"name":"\xff\xfe', 1),
        good.replace(b'"name":"', b'"name":"\\ud800', 1),  # a lone surrogate, escaped
        # not one JSON object
        b"",
        b"   ",
        b"null",
        b'"resourceSpans"',
        b"[" + good + b"]",
        good + b"x",
        good + good,
    ]
    texts += [good[: rng.randint(1, len(good) - 1)] for _ in range(15)]
    out += [Hostile("json-malformed", text, as_json) for text in texts]
    # well-formed, with values the pipeline must reject (200 with partial_success)
    for attrs in POISON:
        out.append(Hostile("json-poison", _as_json(valid_request(rng, 1, **attrs)), as_json))
    out.append(Hostile("json-poison", _spoiled(rng, lambda span: span.update(traceId="ab" * 300)), as_json))
    out.append(Hostile("json-poison", _spoiled(rng, _with_value({"doubleValue": "NaN"})), as_json))
    for size in (MAX_REQUEST_BYTES + 1, 16 * MAX_REQUEST_BYTES):
        bomb = gzip.compress(b'{"resourceSpans":[' + b" " * size + b"]}")
        out.append(Hostile("json-gzip-bomb", bomb, {"Content-Type": JSON, "Content-Encoding": "gzip"}))
    return out


def _nested_json_request(depth: int) -> str:
    """An OTLP/JSON request with one attribute nested ``depth`` arrays deep (built as text)."""
    value = '{"arrayValue":{"values":[' * depth + '{"stringValue":"leaf"}' + "]}}" * depth
    attributes = (
        f'[{{"key":"{A.SPAN_KIND}","value":{{"stringValue":"llm"}}}},{{"key":"deep","value":{value}}}]'
    )
    span = f'{{"traceId":"{"ab" * 16}","spanId":"{"cd" * 8}","name":"chat","attributes":{attributes}}}'
    return f'{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{span}]}}]}}]}}'
