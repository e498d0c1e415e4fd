"""Builders of OTLP trace data for tests and benchmarks: values, spans, export requests.

Raw protobuf (:func:`make_span`, :func:`make_request`) for what an OTLP exporter sends on the
wire, and finished SDK spans (:func:`sdk_spans`) for code that takes ``ReadableSpan``. Needs
``opentelemetry-proto`` (the ``processor`` extra); :mod:`llmpulse.testing` does not import this
module, so the fake provider works with the base install.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmpulse.contract import attributes as A

__all__ = [
    "T0",
    "any_value",
    "from_any_value",
    "key_value",
    "llm_attributes",
    "make_request",
    "make_span",
    "sdk_spans",
    "span_attributes",
]

T0 = 1_700_000_000_000_000_000
"""Default span start, ns since the epoch (2023-11-14)."""


def any_value(value: Any) -> AnyValue:
    """An OTLP ``AnyValue`` for a Python bool, int, float, str, bytes or list/tuple of those."""
    out = AnyValue()
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, list | tuple):
        out.array_value.values.extend(any_value(v) for v in value)
    else:
        raise TypeError(f"no OTLP AnyValue for {type(value).__name__}: {value!r}")
    return out


def key_value(key: str, value: Any) -> KeyValue:
    """One OTLP attribute."""
    return KeyValue(key=key, value=any_value(value))


def from_any_value(value: AnyValue) -> Any:
    """The Python value of an ``AnyValue`` (arrays become lists, an empty value ``None``)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [from_any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: from_any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def span_attributes(span: Span | resource_pb2.Resource) -> dict[str, Any]:
    """A raw span's (or resource's) attributes as a dict of Python values."""
    return {kv.key: from_any_value(kv.value) for kv in span.attributes}


def make_span(
    attributes: Mapping[str, Any],
    *,
    trace_id: bytes = b"\x01" * 16,
    span_id: bytes = b"\x02" * 8,
    parent_span_id: bytes = b"",
    name: str = "span",
    kind: int = Span.SPAN_KIND_UNSPECIFIED,
    start_ns: int = T0,
    duration_s: float = 0.5,
    end_ns: int | None = None,
    status_code: int | None = 0,
) -> Span:
    """A raw OTLP span; it ends ``duration_s`` after ``start_ns`` unless ``end_ns`` is given.

    ``status_code`` is written as the SDK's exporter writes it, an UNSET status included;
    ``None`` leaves the status out.
    """
    span = Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        name=name,
        kind=kind,  # type: ignore[arg-type]
        start_time_unix_nano=start_ns,
        end_time_unix_nano=end_ns if end_ns is not None else start_ns + round(duration_s * 1e9),
    )
    if status_code is not None:
        span.status.code = status_code  # type: ignore[assignment]
    span.attributes.extend(key_value(k, v) for k, v in attributes.items())
    return span


def llm_attributes(**overrides: Any) -> dict[str, Any]:
    """Attributes of an llmpulse LLM span (pass overrides as ``**{KEY: value}``; None removes)."""
    attrs: dict[str, Any] = {
        A.SPAN_KIND: A.SPAN_KIND_LLM,
        A.GEN_AI_OPERATION_NAME: "chat",
        A.GEN_AI_PROVIDER_NAME: "openai",
        A.GEN_AI_REQUEST_MODEL: "gpt-4o",
        A.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
        A.GEN_AI_USAGE_INPUT_TOKENS: 100,
        A.GEN_AI_USAGE_OUTPUT_TOKENS: 20,
        A.COST_USD: 0.0025,
        A.FEATURE: "support",
        A.FINISH_REASON: "stop",
        A.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
    }
    for key, value in overrides.items():
        if value is None:
            attrs.pop(key, None)
        else:
            attrs[key] = value
    return attrs


def make_request(
    spans: Iterable[Span], scope: str | None = "llmpulse", *, resource: Mapping[str, Any] | None = None
) -> ExportTraceServiceRequest:
    """One request with all ``spans`` under one resource (with ``resource`` attributes) and scope.

    ``scope=None`` leaves the instrumentation scope out, ``resource=None`` the resource.
    """
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    if resource is not None:
        resource_spans.resource.attributes.extend(key_value(k, v) for k, v in resource.items())
    scope_spans = resource_spans.scope_spans.add()
    if scope is not None:
        scope_spans.scope.name = scope
    scope_spans.spans.extend(spans)
    return request


def sdk_spans(specs: Iterable[tuple[Mapping[str, Any], float]]) -> list[ReadableSpan]:
    """Finished SDK spans of service ``app``, one per (attributes, duration in s), starting at T0."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "app"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests")
    for attributes, duration in specs:
        span = tracer.start_span("chat gpt-4o", attributes=dict(attributes), start_time=T0)
        span.end(end_time=T0 + round(duration * 1e9))
    provider.shutdown()
    return list(memory.get_finished_spans())
