"""OTLP/JSON <-> protobuf.

OTLP/JSON is proto3 JSON with two exceptions this module handles: trace and span ids are hex
strings (not base64), and enums are integers (``json_format`` accepts those already).

Decoding is strict where JSON parsers differ (RFC 8259 leaves it open, and a body two parsers
read differently could be counted one way here and another upstream): the body must be UTF-8
without a byte order mark, an object may not repeat a key, and the non-standard literals
``NaN``/``Infinity`` are refused (proto3 JSON writes them as strings, ``"NaN"``), as the
collector's Go decoder and ``json_format.Parse`` do. Refusing repeated keys costs a Python call
per object: about a quarter more decoding time for a 512-span request (docs/processor.md).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import re
from typing import Any, NoReturn

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_FIELD_CHAIN = re.compile(r"(?:Failed to parse \w+ field: )+")
_MAX_MESSAGE = 240  # characters of a decoding error: its head and its tail (where the path is)
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


def _one_line(exc: BaseException) -> str:
    """``exc``'s message without ``json_format``'s chain of "Failed to parse X field:" (the
    path at its end says where), on one line, its middle cut when long (a 5,000-digit number)."""
    text = _FIELD_CHAIN.sub("", str(exc)).replace("\n", " ").rstrip(".")
    if len(text) <= _MAX_MESSAGE:
        return text
    half = _MAX_MESSAGE // 2
    return f"{text[:half]} ... {text[-half:]}"


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    node = dict(pairs)
    if len(node) != len(pairs):  # rare: only then find which key
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DecodeError(f"key {key[:40]!r} appears twice in one object")
            seen.add(key)
    return node


def _constant(name: str) -> NoReturn:
    raise DecodeError(f"{name} is not JSON; OTLP/JSON writes it as the string {json.dumps(name)}")


def parse_request(body: bytes) -> ExportTraceServiceRequest:
    """Decode an OTLP/JSON ``ExportTraceServiceRequest``; raises ``DecodeError`` when it is not one."""
    if body.startswith(codecs.BOM_UTF8):
        raise DecodeError("the body starts with a byte order mark; send UTF-8 JSON without one")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"not UTF-8: {exc}") from None
    try:
        document = json.loads(text, object_pairs_hook=_object, parse_constant=_constant)
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"not JSON: {_one_line(exc)}") from None
    if not isinstance(document, dict):
        raise DecodeError("OTLP/JSON body must be an object")
    _fix_ids(document)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError, binascii.Error) as exc:
        raise DecodeError(f"not an OTLP ExportTraceServiceRequest: {_one_line(exc)}") from None
    return request


def encode_request(request: ExportTraceServiceRequest) -> bytes:
    """Serialize ``request`` as OTLP/JSON, the inverse of :func:`parse_request` (hex ids, integer
    enums), as an OTLP/JSON exporter sends it."""
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    _hex_ids(document)
    return json.dumps(document, separators=(",", ":")).encode()


def _hex_ids(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            elif isinstance(value, dict | list):
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)


def parse_response(body: bytes) -> ExportTraceServiceResponse:
    """Decode an OTLP/JSON ``ExportTraceServiceResponse`` (what a client reads back)."""
    return json_format.Parse(body, ExportTraceServiceResponse(), ignore_unknown_fields=True)


def to_json(message: Message) -> bytes:
    """Serialize a response or ``google.rpc.Status`` as proto3 JSON."""
    return json_format.MessageToJson(message, indent=None).encode()
