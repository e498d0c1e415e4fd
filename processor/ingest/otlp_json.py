"""OTLP/JSON <-> protobuf.

OTLP/JSON is proto3 JSON with two exceptions this module handles: trace and span ids are hex
strings (not base64), and enums are integers (``json_format`` accepts those already).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_MAX_DEPTH = 200  # JSON levels: about 50 levels of AnyValue nesting, a little over what protobuf decodes


def _fix_ids(node: Any, depth: int = 0) -> None:
    if depth > _MAX_DEPTH:
        raise DecodeError("OTLP/JSON nested too deeply")
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                except ValueError:
                    raise DecodeError(f"{key} is not hex: {value[:40]!r}") from None
            elif isinstance(value, dict | list):
                _fix_ids(value, depth + 1)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list):
                _fix_ids(item, depth + 1)


def parse_request(body: bytes) -> ExportTraceServiceRequest:
    """Decode an OTLP/JSON ``ExportTraceServiceRequest``; raises ``DecodeError`` when it is not one."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise DecodeError("OTLP/JSON body must be an object")
    _fix_ids(document)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError, binascii.Error) as exc:
        raise DecodeError(f"not an OTLP ExportTraceServiceRequest: {exc}") from None
    return request


def to_json(message: Message) -> bytes:
    """Serialize a response or ``google.rpc.Status`` as proto3 JSON."""
    return json_format.MessageToJson(message, indent=None).encode()
