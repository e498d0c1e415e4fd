"""OTLP/HTTP receiver: ``POST /v1/traces`` with ``application/x-protobuf`` or ``application/json``.

Answers per the OTLP/HTTP spec: 200 with an ``ExportTraceServiceResponse`` (``partial_success``
when spans were rejected), 400 for an undecodable body, 401 without the bearer token, 413 for a
body over the limit, 415 for another media type, 429 + ``Retry-After`` when the queue is full,
503 + ``Retry-After`` while shutting down. Error bodies are a ``google.rpc.Status`` in the
request's encoding. ``Content-Encoding: gzip`` is accepted, with the size limit applied to the
decompressed body too.

JSON bodies are decoded on a thread of their own (:mod:`~llmpulse.processor.ingest.json_decoder`):
a JSON request is refused with 429 before it is decoded when its decoding, behind those waiting,
and the queue's drain would take longer than the pipeline's ``max_delay``, and its answer is
due ``max_delay`` after it arrived, decoding included.
"""

from __future__ import annotations

import hmac
import math
import time
import zlib
from typing import Any

from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from llmpulse.processor.http_server import Request, Response
from llmpulse.processor.ingest import otlp_json
from llmpulse.processor.ingest.json_decoder import JsonDecoder, work_units
from llmpulse.processor.metrics import names as M
from llmpulse.processor.pipeline.queue import Pipeline, QueueFull, ShuttingDown
from llmpulse.processor.pipeline.wire import count_spans, decode_request

TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class OtlpHttpHandler:
    """The request handler behind the OTLP/HTTP port."""

    def __init__(self, pipeline: Pipeline, *, auth_token: str | None, max_request_bytes: int) -> None:
        self._pipeline = pipeline
        self._expected_auth = f"Bearer {auth_token}".encode() if auth_token else None
        self._max = max_request_bytes
        self._json = JsonDecoder()

    def close(self) -> None:
        """Stop the JSON decoding thread (after the server stopped taking requests)."""
        self._json.close()

    def too_large(self) -> None:
        """Count a request the HTTP server refused for its size before reading it."""
        self._pipeline.accounting.refuse(M.RECEIVER_HTTP, M.REFUSE_TOO_LARGE, 0)

    def refusal(self, request: Request, status: int, text: str) -> Response:
        """The HTTP server's own refusals (413, 408) as a ``google.rpc.Status`` in the request's format."""
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        code = code_pb2.RESOURCE_EXHAUSTED if status == 413 else code_pb2.DEADLINE_EXCEEDED
        return _status(status, code, text, media == JSON)

    def _refuse(self, reason: str) -> None:
        self._pipeline.accounting.refuse(M.RECEIVER_HTTP, reason, 0)

    def precheck(self, request: Request) -> Response | None:
        """Refuse a request from its head alone (wrong credentials), before its body is read."""
        if self._expected_auth is None:
            return None
        given = request.headers.get("authorization", "").encode("latin-1")
        if hmac.compare_digest(given, self._expected_auth):
            return None
        self._refuse(M.REFUSE_UNAUTHENTICATED)
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        return _status(401, code_pb2.UNAUTHENTICATED, "missing or wrong bearer token", media == JSON)

    async def __call__(self, request: Request) -> Response:
        """Handle one HTTP request."""
        arrived = time.monotonic()
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        as_json = media == JSON
        # Every 4xx/5xx carries a google.rpc.Status, as the OTLP/HTTP specification asks.
        if request.path != TRACES_PATH:
            return _status(
                404, code_pb2.NOT_FOUND, "not found; OTLP/HTTP traces go to POST /v1/traces", as_json
            )
        if request.method != "POST":
            response = _status(405, code_pb2.UNIMPLEMENTED, "use POST", as_json)
            response.headers.append(("Allow", "POST"))
            return response
        refused = self.precheck(request)
        if refused is not None:
            return refused
        if media not in (PROTOBUF, JSON):
            self._refuse(M.REFUSE_UNSUPPORTED_MEDIA_TYPE)
            text = f"unsupported Content-Type {media!r}; use {PROTOBUF} or {JSON}"
            return _status(415, code_pb2.INVALID_ARGUMENT, text, as_json)
        # refused before decoding: saves the work under overload, and raises nothing (an
        # exception's traceback would tie this frame into a cycle for the garbage collector)
        refusal = self._pipeline.admission()
        if refusal is not None:
            self._pipeline.count_refusal(M.RECEIVER_HTTP, refusal)
            return self._refused(refusal, as_json)
        body = request.body
        encoding = request.headers.get("content-encoding", "identity").lower()
        if encoding == "gzip":
            try:
                body = _gunzip(body, self._max)
            except ValueError as exc:
                reason = M.REFUSE_TOO_LARGE if "larger" in str(exc) else M.REFUSE_UNDECODABLE
                self._refuse(reason)
                http = 413 if reason == M.REFUSE_TOO_LARGE else 400
                return _status(http, code_pb2.INVALID_ARGUMENT, str(exc), as_json)
        elif encoding != "identity":
            self._refuse(M.REFUSE_UNSUPPORTED_MEDIA_TYPE)
            text = f"unsupported Content-Encoding {encoding!r}; use gzip or none"
            return _status(415, code_pb2.INVALID_ARGUMENT, text, as_json)
        units = work_units(body) if as_json else 0
        if as_json and self._decoding_too_slow(units):
            refusal = QueueFull(self._pipeline.retry_after)
            self._pipeline.count_refusal(M.RECEIVER_HTTP, refusal)
            return self._refused(refusal, as_json)
        try:
            export = await self._json.decode(body, units) if as_json else decode_request(body)
        except DecodeError as exc:
            self._refuse(M.REFUSE_UNDECODABLE)
            return _status(400, code_pb2.INVALID_ARGUMENT, f"undecodable OTLP request: {exc}", as_json)
        spans = count_spans(export)
        try:
            result = (
                await self._pipeline.submit(
                    export, spans, M.RECEIVER_HTTP, answer_within_delay=True, arrived=arrived
                )
                if spans
                else None
            )
        except (QueueFull, ShuttingDown) as exc:
            return self._refused(exc, as_json)
        response = ExportTraceServiceResponse()
        if result is not None and result.rejected:
            response.partial_success.rejected_spans = result.rejected
            response.partial_success.error_message = result.message
        return _message(200, response, as_json)

    def _decoding_too_slow(self, units: int) -> bool:
        """Whether a JSON body of ``units`` of work, decoded after those waiting and then queued,
        would be answered more than ``max_delay`` from now (one that finds the decoder idle is
        taken, as the queue takes a request that finds it empty)."""
        limit = self._pipeline.max_delay
        if limit is None or not self._json.pending:
            return False
        return self._json.expected_wait(units) + (self._pipeline.expected_wait or 0.0) > limit

    def _refused(self, refusal: QueueFull | ShuttingDown, as_json: bool) -> Response:
        """429 or 503 with ``Retry-After`` for a request the pipeline cannot take now."""
        if isinstance(refusal, QueueFull):
            return _status(
                429, code_pb2.RESOURCE_EXHAUSTED, str(refusal), as_json, retry_after=refusal.retry_after
            )
        return _status(
            503, code_pb2.UNAVAILABLE, str(refusal), as_json, retry_after=self._pipeline.retry_after
        )


def _gunzip(body: bytes, limit: int) -> bytes:
    """Every member of a gzip body (RFC 1952 allows several, concatenated), at most ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    rest = body
    while True:
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out = decompressor.decompress(rest, limit - size + 1)
        except zlib.error as exc:
            raise ValueError(f"bad gzip body: {exc}") from None
        size += len(out)
        if size > limit or decompressor.unconsumed_tail:
            raise ValueError(f"decompressed body larger than {limit} bytes")
        if not decompressor.eof:
            raise ValueError("truncated gzip body")
        parts.append(out)
        rest = decompressor.unused_data
        if not rest:
            return b"".join(parts)


def _message(
    status: int, message: Any, as_json: bool, headers: list[tuple[str, str]] | None = None
) -> Response:
    if as_json:
        return Response(status, otlp_json.to_json(message), JSON, headers or [])
    return Response(status, message.SerializeToString(), PROTOBUF, headers or [])


def _status(http: int, code: int, text: str, as_json: bool, retry_after: float | None = None) -> Response:
    headers = [("Retry-After", str(max(1, math.ceil(retry_after))))] if retry_after is not None else []
    return _message(http, status_pb2.Status(code=code, message=text), as_json, headers)
