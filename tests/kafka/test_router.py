"""Splitting a trace by (service, feature) for the owner topic."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llmpulse.contract import attributes as A
from llmpulse.processor.kafka.router import route_request
from llmpulse.testing.otlp import llm_attributes, make_request, make_span


def _span(feature: str | None, n: int, trace: bytes = b"\x07" * 16):  # type: ignore[no-untyped-def]
    attrs = (
        llm_attributes(**{A.FEATURE: feature, A.GEN_AI_RESPONSE_ID: f"r{n}"})
        if feature
        else {"http.route": "/x"}
    )
    return make_span(attrs, trace_id=trace, span_id=n.to_bytes(8, "big"))


def _spans(request: ExportTraceServiceRequest) -> list[bytes]:
    return [bytes(s.span_id) for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_a_single_feature_trace_stays_whole_with_its_other_spans() -> None:
    request = make_request(
        [_span(None, 1), _span("support", 2), _span("support", 3)], resource={"service.name": "shop"}
    )
    parts = route_request(request)
    assert list(parts) == [b"shop\x00support"]
    assert sorted(_spans(parts[b"shop\x00support"])) == [n.to_bytes(8, "big") for n in (1, 2, 3)]
    resource = parts[b"shop\x00support"].resource_spans[0].resource
    assert resource == request.resource_spans[0].resource


def test_two_features_split_and_every_span_lands_once() -> None:
    other_trace = b"\x09" * 16
    spans = [_span("search", 1), _span("support", 2), _span(None, 3), _span(None, 4, other_trace)]
    parts = route_request(make_request(spans, resource={"service.name": "shop"}))
    assert set(parts) == {b"shop\x00search", b"shop\x00support", other_trace}
    assert _spans(parts[b"shop\x00search"]) == [(1).to_bytes(8, "big"), (3).to_bytes(8, "big")]
    assert _spans(parts[other_trace]) == [(4).to_bytes(8, "big")]
    assert sorted(s for p in parts.values() for s in _spans(p)) == sorted(bytes(s.span_id) for s in spans)
