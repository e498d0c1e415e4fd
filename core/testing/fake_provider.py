"""A local fake LLM provider that the official ``openai`` and ``anthropic`` packages talk to unmodified.

It serves, on loopback:

- OpenAI: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``, ``/v1/responses``
  (streaming over SSE where the API streams), also under the Azure path
  ``/openai/deployments/{deployment}/...``;
- Anthropic: ``/v1/messages`` (plain and streamed);
- ``GET /v1/models`` (in the caller's dialect) and ``GET /healthz``.

Every answer is scripted with a :class:`FakeReply`: a per-test queue, a default, or a
handler function. Every request is recorded as a :class:`RecordedRequest`::

    with FakeProvider() as provider:
        provider.enqueue(FakeReply(text="hi", output_tokens=7), FakeReply(status=429))
        client = openai.OpenAI(base_url=provider.openai_base_url, api_key="test", max_retries=0)
        ...
        assert provider.requests[0].body["model"] == "gpt-4o"
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import re
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from llmpulse.testing import anthropic_api, openai_api, openai_responses
from llmpulse.testing.fake_reply import (
    FakeReply,
    IdFactory,
    JsonResponse,
    RecordedRequest,
    Rendered,
    Resolved,
    Stream,
)

__all__ = ["FakeProvider", "FakeReply", "RecordedRequest"]

logger = logging.getLogger(__name__)

Handler = Callable[[RecordedRequest], FakeReply]

MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "claude-sonnet-5-5", "claude-haiku-5-5")
_AZURE_DEPLOYMENT = re.compile(r"^/openai/deployments/(?P<deployment>[^/]+)(?P<rest>/.*)$")
_GENERATION_PATHS = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/responses",
    "/v1/messages",
)
_ID_PREFIX = {
    "/v1/chat/completions": "chatcmpl-",
    "/v1/completions": "cmpl-",
    "/v1/embeddings": "emb-",
    "/v1/responses": "resp_",
    "/v1/messages": "msg_",
}
_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class FakeProvider:
    """A threaded HTTP server on loopback, scripted per test. Use as a context manager or ``start``/``stop``.

    Replies are chosen per generation request: the handler if one is set, else the next
    queued reply (FIFO, any endpoint), else the default. ``GET`` requests (models, health)
    consume nothing. All methods are safe to call from any thread.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, default: FakeReply | None = None) -> None:
        self._host = host
        self._port = port
        self._default = default or FakeReply()
        self._queue: collections.deque[FakeReply] = collections.deque()
        self._handler: Handler | None = None
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._ids = IdFactory()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeProvider:
        """Bind and serve in a background thread; returns ``self``. Idempotent."""
        if self._server is not None:
            return self
        server = _Server((self._host, self._port), _RequestHandler, provider=self)
        self._stopping.clear()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # keeps stop() prompt; the loop is idle otherwise
            name="llmpulse-fake-provider",
            daemon=True,
        )
        self._thread.start()
        logger.debug("event=fake_provider_listening url=%s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving, cut scripted delays short, drop open connections and join the handler threads.

        Idempotent.
        """
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (after ``start``)."""
        if self._server is None:
            raise RuntimeError("FakeProvider is not started; call start() or use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://host:port``: the Anthropic client's ``base_url`` and the Azure ``azure_endpoint``."""
        return f"http://{self._host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``base_url + "/v1"``: the OpenAI client's ``base_url``."""
        return self.base_url + "/v1"

    # -- scripting -------------------------------------------------------------------------------

    def enqueue(self, *replies: FakeReply) -> None:
        """Queue replies; each generation request (any endpoint) takes the oldest one."""
        with self._lock:
            self._queue.extend(replies)

    def set_default(self, reply: FakeReply) -> None:
        """The reply used when the queue is empty and no handler is set."""
        with self._lock:
            self._default = reply

    def set_handler(self, handler: Handler | None) -> None:
        """Choose every reply with ``handler(request)`` (overrides queue and default); ``None`` removes it."""
        with self._lock:
            self._handler = handler

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received so far, oldest first (``/healthz`` is not recorded)."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget recorded requests and queued replies (the default and handler stay)."""
        with self._lock:
            self._requests.clear()
            self._queue.clear()

    # -- request handling (called from server threads) -------------------------------------------

    def _pause(self, seconds: float) -> bool:
        """Sleep for a scripted delay; returns True (early) if the provider is stopping."""
        return seconds > 0 and self._stopping.wait(seconds)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_reply(self, request: RecordedRequest) -> FakeReply:
        with self._lock:
            handler = self._handler
            if handler is None:
                return self._queue.popleft() if self._queue else self._default
        return handler(request)

    def _answer(self, method: str, path: str, request: RecordedRequest) -> Rendered:
        """Route one recorded request to its dialect; called after ``_record``."""
        anthropic = "anthropic-version" in request.headers or path == "/v1/messages"
        if method == "GET" and path == "/v1/models":
            return anthropic_api.models(list(MODELS)) if anthropic else openai_api.models(list(MODELS))
        if method != "POST" or path not in _GENERATION_PATHS:
            message = f"fake provider: no route for {method} {path}"
            return (
                anthropic_api.error(404, message, self._ids.new("req_"))
                if anthropic
                else openai_api.error(404, message)
            )
        body = request.body if isinstance(request.body, dict) else {}
        reply = self._next_reply(request)
        self._pause(reply.latency)
        if reply.status != 200:
            message = reply.error_message or f"fake provider: scripted HTTP {reply.status}"
            if reply.error_body is not None:
                return JsonResponse(reply.status, dict(reply.error_body))
            if anthropic:
                return anthropic_api.error(reply.status, message, self._ids.new("req_"))
            return openai_api.error(reply.status, message)
        resolved = Resolved(reply, body, str(body.get("model", "fake-model")))
        response_id = reply.response_id or self._ids.new(_ID_PREFIX[path])
        if path == "/v1/chat/completions":
            return openai_api.chat(resolved, body, self._ids, response_id)
        if path == "/v1/completions":
            return openai_api.completion(resolved, body, response_id)
        if path == "/v1/embeddings":
            return openai_api.embeddings(resolved, body)
        if path == "/v1/responses":
            return openai_responses.responses(resolved, body, self._ids, response_id)
        return anthropic_api.messages(resolved, body, self._ids, response_id)


class _Server(ThreadingHTTPServer):
    """Tracks open connections so ``stop`` can end keep-alive clients and join every handler thread."""

    daemon_threads = False
    block_on_close = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *, provider: FakeProvider
    ) -> None:
        self.provider = provider
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up is normal for a test double; anything else is worth a debug trace.
        logger.debug("event=fake_provider_serve_error client=%s", client_address, exc_info=True)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY a kept-alive connection waits on delayed ACKs (~40 ms per request).
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("event=fake_provider_request %s", format % args)

    def _serve(self, method: str) -> None:
        split = urlsplit(self.path)
        path = split.path.rstrip("/") or "/"
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if path == "/healthz":
            self._send_json(JsonResponse(200, {"status": "ok"}))
            return
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        headers = {name.lower(): value for name, value in self.headers.items()}
        route = path
        azure = _AZURE_DEPLOYMENT.match(path)
        if azure:
            route = "/v1" + azure["rest"]
            if isinstance(body, dict):
                body = {**body, "model": body.get("model") or azure["deployment"]}
        elif path.startswith("/openai/"):
            route = "/v1" + path.removeprefix("/openai").removeprefix("/v1")
        request = RecordedRequest(method=method, path=self.path, headers=headers, body=body)
        provider = self.server.provider
        provider._record(request)
        try:
            answer = provider._answer(method, route, request)
        except Exception:
            logger.exception(
                "event=fake_provider_error reason='handler failed' method=%s path=%s", method, self.path
            )
            message = "fake provider: the scripted handler raised; see the server log"
            if route == "/v1/messages":
                answer = anthropic_api.error(500, message, "req_handler_failed")
            else:
                answer = openai_api.error(500, message)
        try:
            if isinstance(answer, Stream):
                self._send_stream(answer)
            else:
                self._send_json(answer)
        except _CLIENT_GONE:
            logger.debug("event=fake_provider_client_gone method=%s path=%s", method, self.path)
            self.close_connection = True

    def _send_json(self, answer: JsonResponse) -> None:
        payload = json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _send_stream(self, answer: Stream) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()
        for delay, frame in answer.frames:
            if self.server.provider._pause(delay):
                self.close_connection = True
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
