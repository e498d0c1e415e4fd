"""OTLP request bytes to what the pipeline reads, through the C reader when it is built.

:func:`decode_request` gives a :class:`DecodedRequest` (the C reader ``_otlp``: each span's
ids, name, times, status code and the normaliser's attribute values, read in one pass over the
bytes) or, when the reader is not built or not sure of the bytes, the upb
``ExportTraceServiceRequest`` (raising ``DecodeError`` for bytes that are not one). Both read
the same: the C reader declines whatever it does not handle exactly as upb does (a tested
property: ``tests/processor/test_wire.py``), so which one ran never changes a figure.
Listeners get a :class:`SpanRef` for a decoded span: its ids and times at hand, anything else
read by parsing that span's bytes with upb on first use.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmpulse.contract import attributes as A
from llmpulse.contract import environment_variables as E
from llmpulse.processor.metrics import names as M
from llmpulse.processor.pipeline import normalize as N
from llmpulse.processor.pipeline.resource import SERVICE_KEYS, context_of, resource_context

_otlp: ModuleType | None
try:
    from llmpulse.processor.pipeline import _otlp as _reader
except ImportError:  # a source install without a C compiler: upb alone, same results
    _otlp = None
else:
    _reader.configure(N.KEYS, SERVICE_KEYS, N.EMPTY, N.OTHER)
    _otlp = _reader
if os.environ.get(E.LLMPULSE_C_READER, "").strip() == "0":
    _otlp = None

logger = logging.getLogger(__name__)

ACCELERATED = _otlp is not None
"""Whether the C reader is in use (built, and not turned off with ``LLMPULSE_C_READER=0``)."""

# indices into the C reader's span tuples after the normaliser's head (normalize.H_*)
_RESOURCE, _SCOPE, _OFFSET, _LENGTH = 8, 9, 10, 11


class SpanRef:
    """A decoded span as listeners see it: ``trace_id``, ``span_id``, ``parent_span_id``, ``name``,
    ``start_time_unix_nano`` and ``end_time_unix_nano`` at hand; any other field of
    ``opentelemetry.proto.trace.v1.Span`` (``attributes``, ``status``, ...) parsed on first use."""

    __slots__ = (
        "_body",
        "_span",
        "end_time_unix_nano",
        "name",
        "parent_span_id",
        "span_id",
        "start_time_unix_nano",
        "trace_id",
    )

    def __init__(self, body: bytes, head: tuple[Any, ...]) -> None:
        self._body = body
        self.trace_id = head[N.H_TRACE_ID]
        self.span_id = head[N.H_SPAN_ID]
        self.parent_span_id = head[N.H_PARENT_ID]
        self.name = head[N.H_NAME]
        self.start_time_unix_nano = head[N.H_START]
        self.end_time_unix_nano = head[N.H_END]
        self._span = head

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        span = self._span
        if type(span) is tuple:
            start = span[_OFFSET]
            span = self._span = Span.FromString(self._body[start : start + span[_LENGTH]])
        return getattr(span, name)


class DecodedRequest:
    """A request read by the C reader: ``spans`` (tuples, see ``_otlp``), and per span its
    resource's ``(service, environment, version)`` and whether its scope is the anthropic SDK's."""

    __slots__ = ("body", "resources", "scopes", "spans")

    def __init__(
        self, body: bytes, resources: list[Any], scopes: list[str], spans: list[tuple[Any, ...]]
    ) -> None:
        self.body = body
        self.resources = [_labels(values) for values in resources]
        self.scopes = [name == A.ANTHROPIC_SDK_SCOPE for name in scopes]
        self.spans = spans

    @property
    def span_count(self) -> int:
        """Number of spans in the request."""
        return len(self.spans)


def _labels(values: list[Any] | None) -> tuple[str, str, str]:
    """``(service, environment, version)`` from the plain values of :data:`SERVICE_KEYS`."""
    if values is None:
        return M.UNKNOWN_SERVICE, "", ""
    return context_of([v if type(v) is str else "" for v in values])


def decode_request(body: bytes) -> Any:
    """A :class:`DecodedRequest`, or the upb message; raises ``DecodeError`` like upb."""
    if _otlp is not None:
        decoded = _otlp.decode(body)
        if decoded is not None:
            return DecodedRequest(body, *decoded)
    return ExportTraceServiceRequest.FromString(body)


def count_spans(request: Any) -> int:
    """Number of spans in a request (decoded or an ``ExportTraceServiceRequest``)."""
    if type(request) is DecodedRequest:
        return len(request.spans)
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


def records(request: Any) -> Iterator[tuple[Any, Any, str, str]]:
    """``(record, span, service, environment)`` for every span of a request, in order: the
    normaliser's record (or rejection reason, or None) and the span listeners are given."""
    if type(request) is DecodedRequest:
        body, resources, scopes = request.body, request.resources, request.scopes
        normalize_values = N.normalize_values
        for head in request.spans:
            service, environment, app_version = resources[head[_RESOURCE]]
            record: Any = None
            if head[N.H_VALS] is not None:
                try:
                    record = normalize_values(head, scopes[head[_SCOPE]], service, environment, app_version)
                except Exception:  # a producer sent something the normaliser did not foresee
                    logger.debug("event=normalize_failed", exc_info=True)
                    record = M.REJECT_INVALID_ATTRIBUTE
            yield record, SpanRef(body, head), service, environment
        return
    normalize_span = N.normalize_span
    for resource_spans in request.resource_spans:
        service, environment, app_version = resource_context(resource_spans.resource)
        for scope_spans in resource_spans.scope_spans:
            secondary = scope_spans.scope.name == A.ANTHROPIC_SDK_SCOPE
            for span in scope_spans.spans:
                try:
                    record = normalize_span(span, secondary, service, environment, app_version)
                except Exception:
                    logger.debug("event=normalize_failed", exc_info=True)
                    record = M.REJECT_INVALID_ATTRIBUTE
                yield record, span, service, environment
