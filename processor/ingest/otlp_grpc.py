"""OTLP/gRPC receiver: ``opentelemetry.proto.collector.trace.v1.TraceService/Export`` on grpc.aio.

Status codes follow the OTLP contract: a request the queue cannot take gets
RESOURCE_EXHAUSTED with a ``google.rpc.RetryInfo`` in the ``grpc-status-details-bin``
trailer (the OTel exporters honour it); during shutdown UNAVAILABLE; bytes that are not an
``ExportTraceServiceRequest`` INVALID_ARGUMENT; a missing or wrong bearer token
UNAUTHENTICATED. Oversized messages are refused by gRPC itself (RESOURCE_EXHAUSTED) through
``grpc.max_receive_message_length``. Spans rejected for bad values are reported in
``partial_success``.

The request is decoded here rather than by gRPC so that undecodable bytes map to
INVALID_ARGUMENT instead of an internal error.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from llmpulse.processor.metrics import names as M
from llmpulse.processor.pipeline.queue import (
    DeadlineExceeded,
    ExportResult,
    Pipeline,
    QueueFull,
    ShuttingDown,
)
from llmpulse.processor.pipeline.wire import count_spans, decode_request

logger = logging.getLogger(__name__)

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
_EMPTY_RESPONSE = ExportTraceServiceResponse().SerializeToString()
DEADLINE_MARGIN = 0.05
"""Seconds before the client's deadline after which a queued request is no longer processed."""


def retry_status(code: int, message: str, retry_after: float) -> bytes:
    """A serialized ``google.rpc.Status`` carrying ``RetryInfo`` (for ``grpc-status-details-bin``)."""
    delay = Duration()
    delay.FromNanoseconds(int(retry_after * 1e9))
    status = status_pb2.Status(code=code, message=message)
    status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return status.SerializeToString()


def encode_response(result: ExportResult) -> bytes:
    """The serialized ``ExportTraceServiceResponse`` for ``result``."""
    if not result.rejected:
        return _EMPTY_RESPONSE
    response = ExportTraceServiceResponse()
    response.partial_success.rejected_spans = result.rejected
    response.partial_success.error_message = result.message
    return response.SerializeToString()


class GrpcReceiver:
    """The gRPC server and its Export handler. ``startup -> (serve) -> shutdown``."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        host: str = "127.0.0.1",
        port: int = 4317,
        auth_token: str | None = None,
        max_request_bytes: int = 8 * 1024 * 1024,
        tls: tuple[bytes, bytes] | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._address = f"{host}:{port}"
        self._expected_auth = f"Bearer {auth_token}".encode() if auth_token else None
        self._max_request_bytes = max_request_bytes
        self._tls = tls
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def startup(self) -> None:
        """Bind and start serving; :attr:`port` is the bound port afterwards."""
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self._max_request_bytes),
                ("grpc.so_reuseport", 0),
            ]
        )
        handler = grpc.unary_unary_rpc_method_handler(
            self._export,
            request_deserializer=None,  # raw bytes: we decode, so garbage -> INVALID_ARGUMENT
            response_serializer=None,  # we return pre-serialized bytes
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),))
        if self._tls is not None:
            key, cert = self._tls
            self.port = server.add_secure_port(self._address, grpc.ssl_server_credentials([(key, cert)]))
        else:
            self.port = server.add_insecure_port(self._address)
        await server.start()
        self._server = server
        logger.info(
            "event=grpc_receiver_started address=%s port=%d tls=%s", self._address, self.port, bool(self._tls)
        )

    async def shutdown(self, grace: float = 1.0) -> None:
        """Stop accepting calls and finish in-flight ones within ``grace`` seconds."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    def _authorized(self, context: grpc.aio.ServicerContext) -> bool:
        if self._expected_auth is None:
            return True
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
                return hmac.compare_digest(given, self._expected_auth)
        return False

    async def _export(self, body: bytes, context: grpc.aio.ServicerContext) -> Any:
        accounting = self._pipeline.accounting
        if not self._authorized(context):
            accounting.refuse(M.RECEIVER_GRPC, M.REFUSE_UNAUTHENTICATED, 0)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        try:
            self._pipeline.admit(M.RECEIVER_GRPC)
            request = decode_request(body)
        except QueueFull as exc:
            await self._abort_full(context, exc)
        except ShuttingDown as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except DecodeError:
            accounting.refuse(M.RECEIVER_GRPC, M.REFUSE_UNDECODABLE, 0)
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "body is not an OTLP ExportTraceServiceRequest"
            )
        spans = count_spans(request)
        if not spans:
            return _EMPTY_RESPONSE
        remaining = context.time_remaining()
        # answer a little before the client's deadline, or not at all (it has stopped waiting)
        deadline = None if remaining is None else time.monotonic() + max(remaining - DEADLINE_MARGIN, 0.0)
        try:
            result = await self._pipeline.submit(
                request, spans, M.RECEIVER_GRPC, deadline, answer_within_delay=True
            )
        except QueueFull as exc:
            await self._abort_full(context, exc)
        except ShuttingDown as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except DeadlineExceeded as exc:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(exc))
        return encode_response(result)

    @staticmethod
    async def _abort_full(context: grpc.aio.ServicerContext, exc: QueueFull) -> None:
        details = retry_status(code_pb2.RESOURCE_EXHAUSTED, str(exc), exc.retry_after)
        await context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            str(exc),
            trailing_metadata=(("grpc-status-details-bin", details),),
        )
