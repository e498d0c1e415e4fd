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

Threads: the gRPC server, authentication, admission (:meth:`Pipeline.admission`, which only
reads the queue's state) and decoding run on a loop of their own
(:class:`~llmpulse.processor.ingest.loop_thread.LoopThread`), so that calls are taken in,
and refused when the queue is full, however busy the processor's loop is; a request that may
queue is handed to the processor's loop, where :meth:`Pipeline.submit` and all counting
happen (the refusals this thread decides are counted there too), and its answer handed back.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from concurrent.futures import Future
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from llmpulse.processor.ingest.loop_thread import LoopThread
from llmpulse.processor.metrics import names as M
from llmpulse.processor.pipeline.queue import (
    DeadlineExceeded,
    ExportResult,
    Pipeline,
    PipelineError,
    QueueFull,
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
        self._intake = LoopThread("llmpulse-grpc")
        self._home: asyncio.AbstractEventLoop | None = None  # the pipeline's loop
        # spans of admitted requests handed to the pipeline's loop (written on the intake thread)
        # and taken up there (written on that loop): each counter has one writer, no lock needed
        self._handed = 0
        self._taken = 0
        self._queued: dict[Future[ExportResult | PipelineError], asyncio.Future[ExportResult]] = {}
        self.port = 0

    async def startup(self) -> None:
        """Bind and start serving on the intake thread; :attr:`port` is the bound port afterwards."""
        self._home = asyncio.get_running_loop()
        self._intake.start()
        try:
            self._server = await self._intake.run(self._start_server())
        except BaseException:
            self._intake.stop()
            raise
        self._pipeline.watch_intake(lambda: self._intake.lag)
        logger.info(
            "event=grpc_receiver_started address=%s port=%d tls=%s", self._address, self.port, bool(self._tls)
        )

    async def _start_server(self) -> grpc.aio.Server:
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
        return server

    async def shutdown(self, grace: float = 1.0) -> None:
        """Stop accepting calls, finish in-flight ones within ``grace`` seconds, stop the thread."""
        server, self._server = self._server, None
        if server is not None:
            await self._intake.run(server.stop(grace))
        self._intake.stop()

    def _authorized(self, context: grpc.aio.ServicerContext) -> bool:
        if self._expected_auth is None:
            return True
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
                return hmac.compare_digest(given, self._expected_auth)
        return False

    def _count(self, reason: str) -> None:
        """Count a call refused before decoding, on the pipeline's loop (from the intake thread)."""
        assert self._home is not None
        self._home.call_soon_threadsafe(self._pipeline.accounting.refuse, M.RECEIVER_GRPC, reason, 0)

    async def _export(self, body: bytes, context: grpc.aio.ServicerContext) -> bytes:
        # On the intake thread. Failures are answered by setting the status and returning, never
        # with context.abort(): abort raises, and the exception's traceback ties gRPC's handler
        # frames, the call's state and the refusal into reference cycles that only the cyclic
        # collector frees (about 36 objects per refused call; under overload its
        # stop-the-world passes were the processor's longest pauses).
        if not self._authorized(context):
            self._count(M.REFUSE_UNAUTHENTICATED)
            return _fail(context, grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        refusal = self._pipeline.admission(self._handed - self._taken)
        if refusal is not None:
            assert self._home is not None
            self._home.call_soon_threadsafe(self._pipeline.count_refusal, M.RECEIVER_GRPC, refusal)
            return _refuse(context, refusal)
        try:
            request = decode_request(body)
        except DecodeError:
            self._count(M.REFUSE_UNDECODABLE)
            return _fail(
                context, grpc.StatusCode.INVALID_ARGUMENT, "body is not an OTLP ExportTraceServiceRequest"
            )
        spans = count_spans(request)
        if not spans:
            return _EMPTY_RESPONSE
        remaining = context.time_remaining()
        # answer a little before the client's deadline, or not at all (it has stopped waiting)
        deadline = None if remaining is None else time.monotonic() + max(remaining - DEADLINE_MARGIN, 0.0)
        assert self._home is not None
        self._handed += spans
        answer: Future[ExportResult | PipelineError] = Future()
        self._home.call_soon_threadsafe(self._take, request, spans, deadline, answer)
        try:
            outcome = await asyncio.wrap_future(answer)
        except asyncio.CancelledError:
            # the client went away (or its deadline passed): withdraw the request, so that the
            # worker finds it done and does not count it (or, not queued yet, it never is)
            self._home.call_soon_threadsafe(self._withdraw, answer)
            raise
        if isinstance(outcome, PipelineError):
            return _refuse(context, outcome)
        return encode_response(outcome)

    def _take(
        self, request: Any, spans: int, deadline: float | None, answer: Future[ExportResult | PipelineError]
    ) -> None:
        """On the pipeline's loop: queue a handed request; its outcome goes to ``answer``.

        A plain callback, not a coroutine: it runs whatever happens to the call meanwhile, so
        the spans handed are always taken up, and no exception is raised (none to tie frames)."""
        self._taken += spans
        if not answer.set_running_or_notify_cancel():
            return  # withdrawn before it reached the queue: never counted
        try:
            queued = self._pipeline.submit(
                request, spans, M.RECEIVER_GRPC, deadline, answer_within_delay=True
            )
        except PipelineError as exc:
            answer.set_result(exc.with_traceback(None))
            return
        self._queued[answer] = queued
        queued.add_done_callback(lambda done: self._relay(answer, done))

    def _relay(
        self, answer: Future[ExportResult | PipelineError], queued: asyncio.Future[ExportResult]
    ) -> None:
        """On the pipeline's loop: pass a queued request's outcome to the intake thread."""
        self._queued.pop(answer, None)
        if queued.cancelled():
            answer.set_result(DeadlineExceeded())  # withdrawn: nobody waits for it any more
            return
        failure = queued.exception()
        if isinstance(failure, PipelineError):
            answer.set_result(failure)
        elif failure is not None:
            answer.set_exception(failure)
        else:
            answer.set_result(queued.result())

    def _withdraw(self, answer: Future[ExportResult | PipelineError]) -> None:
        """On the pipeline's loop: the call is gone; cancel its request if still queued."""
        queued = self._queued.pop(answer, None)
        if queued is not None:
            queued.cancel()


def _fail(
    context: grpc.aio.ServicerContext,
    code: grpc.StatusCode,
    message: str,
    trailers: tuple[tuple[str, bytes], ...] = (),
) -> bytes:
    """Answer the call with ``code`` (gRPC sends no message with a non-OK status)."""
    context.set_code(code)
    context.set_details(message)
    if trailers:
        context.set_trailing_metadata(trailers)
    return b""


def _refuse(context: grpc.aio.ServicerContext, exc: PipelineError) -> bytes:
    """The answer to a request the pipeline did not take: the OTLP status for ``exc``."""
    if isinstance(exc, QueueFull):
        details = retry_status(code_pb2.RESOURCE_EXHAUSTED, str(exc), exc.retry_after)
        return _fail(
            context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), (("grpc-status-details-bin", details),)
        )
    if isinstance(exc, DeadlineExceeded):
        return _fail(context, grpc.StatusCode.DEADLINE_EXCEEDED, str(exc))
    return _fail(context, grpc.StatusCode.UNAVAILABLE, str(exc))  # ShuttingDown
