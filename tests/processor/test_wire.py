"""The C reader of OTLP bytes (``_otlp``) reads every request exactly as upb does, or declines it.

Differential: the same bytes through :func:`wire.records` once as the C reader's
:class:`~llmpulse.processor.pipeline.wire.DecodedRequest` and once as upb's message must give
the same records, services, scopes and span fields; on malformed bytes the C reader may only
decline (upb then decides), never accept what upb refuses.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from benchmarks import otlp_load
from llmpulse.contract import attributes as A
from llmpulse.processor.pipeline import wire
from llmpulse.testing.otlp import llm_attributes, make_request, make_span
from tests.processor.test_fuzz import _random_span, corpus


def _decoded(body: bytes) -> wire.DecodedRequest:
    assert wire.ACCELERATED, (
        "the C reader llmpulse.processor.pipeline._otlp was not built: it needs gcc and the Python "
        "headers (python3-dev); run `make setup` again (and leave LLMPULSE_C_READER unset)"
    )
    decoded = wire.decode_request(body)
    assert type(decoded) is wire.DecodedRequest, "the C reader declined a request it should read"
    return decoded


def _read(request: Any) -> list[tuple[Any, ...]]:
    out = []
    for record, span, service, environment in wire.records(request):
        attributes = [(kv.key, kv.value.SerializeToString()) for kv in span.attributes]
        out.append(
            (
                repr(record),
                bytes(span.trace_id),
                bytes(span.span_id),
                bytes(span.parent_span_id),
                span.name,
                span.start_time_unix_nano,
                span.end_time_unix_nano,
                span.status.code,
                attributes,
                service,
                environment,
            )
        )
    return out


def _same(body: bytes) -> None:
    decoded = _decoded(body)
    message = ExportTraceServiceRequest.FromString(body)
    assert wire.count_spans(decoded) == wire.count_spans(message)
    assert _read(decoded) == _read(message)


def test_the_schema_is_the_one_the_c_reader_knows() -> None:
    # _otlp.c reads these field numbers and declines the rest of the schema's; a new field in
    # opentelemetry-proto must be taught to it (or declined) before this passes again
    expected = {
        trace_pb2.ResourceSpans: {1, 2, 3},
        trace_pb2.ScopeSpans: {1, 2, 3},
        trace_pb2.Span: set(range(1, 17)),
        trace_pb2.Span.Event: {1, 2, 3, 4},
        trace_pb2.Span.Link: {1, 2, 3, 4, 5, 6},
        trace_pb2.Status: {2, 3},
        resource_pb2.Resource: {1, 2, 3},
        common_pb2.InstrumentationScope: {1, 2, 3, 4},
        common_pb2.KeyValue: {1, 2, 3},
        common_pb2.AnyValue: set(range(1, 9)),
        common_pb2.ArrayValue: {1},
        common_pb2.KeyValueList: {1},
        ExportTraceServiceRequest: {1},
    }
    for message, numbers in expected.items():
        assert {f.number for f in message.DESCRIPTOR.fields} == numbers, message.DESCRIPTOR.full_name


@pytest.mark.parametrize("shape", otlp_load.SHAPES)
def test_benchmark_shapes_read_the_same(shape: str) -> None:
    for body in otlp_load.build_requests(2, shape=shape):
        _same(body)


def test_random_attribute_values_read_the_same() -> None:
    rng = random.Random(20261203)
    for _ in range(150):
        spans = [_random_span(rng) for _ in range(rng.randint(1, 6))]
        request = make_request(spans, resource={A.SERVICE_NAME: rng.choice(["shop", "", "blog"])})
        resource_spans = request.resource_spans[0]
        if rng.random() < 0.3:
            kv = resource_spans.resource.attributes.add(key=A.DEPLOYMENT_ENVIRONMENT_NAME)
            kv.value.string_value = rng.choice(["prod", ""])
        if rng.random() < 0.3:
            resource_spans.scope_spans[0].scope.name = A.ANTHROPIC_SDK_SCOPE
        if rng.random() < 0.3:
            extra = request.resource_spans.add()
            extra.scope_spans.add().spans.append(make_span(llm_attributes(feature="other")))
        span = resource_spans.scope_spans[0].spans[0]
        if rng.random() < 0.3:
            event = span.events.add(name="ev")
            event.attributes.add(key="k").value.array_value.values.add().int_value = 3
            span.links.add(trace_id=b"t" * 16, span_id=b"s" * 8).attributes.add(key="x")
        if rng.random() < 0.3:  # a key given twice: the last value counts, as with upb
            again = span.attributes.add(key=A.GEN_AI_USAGE_INPUT_TOKENS)
            again.value.int_value = rng.choice([5, -1])
        _same(request.SerializeToString())


def test_malformed_bytes_are_never_read_where_upb_refuses_them() -> None:
    read = declined = refused = 0
    for body in corpus():
        decoded = wire._otlp.decode(body) if wire._otlp is not None else None
        try:
            message = ExportTraceServiceRequest.FromString(body)
        except DecodeError:
            assert decoded is None, f"the C reader accepted bytes upb refuses: {body[:40]!r}"
            refused += 1
            continue
        if decoded is None:
            declined += 1
            continue
        read += 1
        assert _read(wire.DecodedRequest(body, *decoded)) == _read(message)
    assert wire.ACCELERATED and read and refused, (read, declined, refused)


def test_bad_utf8_anywhere_is_refused_as_upb_refuses_it() -> None:
    good = make_request([make_span(llm_attributes())])
    span = good.resource_spans[0].scope_spans[0].spans[0]
    span.name = "\u00e9vent"
    span.events.add(name="\u00e9v")
    body = good.SerializeToString()
    _same(body)
    for needle in ("\u00e9vent".encode(), "\u00e9v".encode()):
        broken = body.replace(needle, b"\xff" + needle[1:], 1)
        with pytest.raises(DecodeError):
            wire.decode_request(broken)


def test_deep_nesting_falls_back_to_upb() -> None:
    value = common_pb2.AnyValue(string_value="leaf")
    for _ in range(40):
        value = common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[value]))
    request = make_request([make_span(llm_attributes())])
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key=A.GEN_AI_RESPONSE_FINISH_REASONS).value.CopyFrom(value)
    body = request.SerializeToString()
    assert wire._otlp is not None and wire._otlp.decode(body) is None
    assert type(wire.decode_request(body)) is ExportTraceServiceRequest


def test_listeners_read_any_span_field_from_a_decoded_span() -> None:
    request = make_request([make_span(llm_attributes(), status_code=2)])
    decoded = _decoded(request.SerializeToString())
    ((_, span, _, _),) = list(wire.records(decoded))
    original = request.resource_spans[0].scope_spans[0].spans[0]
    assert span.status.code == 2
    assert list(span.attributes) == list(original.attributes)
    assert span.trace_id == original.trace_id
