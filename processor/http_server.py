"""The processor's HTTP/1.1 servers (OTLP/HTTP and admin), on aiohttp's low-level server.

The rest of the processor sees a small interface, :class:`Request` -> :class:`Response` through a
:data:`Handler`, and :class:`HttpServer` with ``startup -> shutdown(grace)``; aiohttp
(``aiohttp.web.Server`` under a ``ServerRunner`` and a ``TCPSite``) does the protocol: parsing,
keep-alive, chunked bodies, TLS. It runs on the processor's own event loop, so ``/metrics``
reads the aggregates without locks.

What this module adds on top, in order, for every request:

1. ``precheck`` on the head (``body`` empty): a response ends the request there and the
   connection is closed, before ``100 Continue`` is sent or any of the body is read;
2. the body limit: a ``Content-Length`` over ``max_body_bytes`` is answered 413 before reading
   (``on_too_large`` is called), a chunked body is cut off with 413 once it passes the limit;
3. ``Expect: 100-continue`` is answered only then, so a refused client never sends its body;
4. the body is read (within :data:`IDLE_TIMEOUT`, else 408) and the handler called; an exception in the
   handler is logged and answered 500.

aiohttp's own request-body decompression is off: ``Content-Encoding`` is the handler's business
(OTLP/HTTP applies its size limit to the decompressed body too).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.http import HttpVersion11

from llmpulse.errors import LLMPulseError

__all__ = ["Handler", "HttpServer", "Precheck", "Request", "Response"]

logger = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
"""Longest request line or header field accepted."""
IDLE_TIMEOUT = 60.0
LINGER_SECONDS = 2.0
"""How long the unread rest of a refused body is drained before the connection closes."""
"""Seconds an idle keep-alive connection is kept, and the longest a request body may take."""


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed request. Header names are lower case; ``path`` and ``query`` are as sent."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class Response:
    """What a handler returns."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request], Awaitable[Response]]
Precheck = Callable[[Request], "Response | None"]
"""Runs on the head (``body`` empty) before the body is read; a response ends the request there."""
Refusal = Callable[[Request, int, str], Response]
"""Makes the server's own refusals (413, 408) in the protocol's error format, from the head."""


class _BodyTooLarge(LLMPulseError):
    """The request body passed ``max_body_bytes`` while it was read."""


class HttpServer:
    """Serves ``handler`` on ``host:port``; ``startup -> shutdown``."""

    def __init__(
        self,
        handler: Handler,
        *,
        host: str,
        port: int,
        max_body_bytes: int,
        ssl_context: ssl.SSLContext | None = None,
        name: str = "http",
        on_too_large: Callable[[], None] | None = None,
        precheck: Precheck | None = None,
        refusal: Refusal | None = None,
    ) -> None:
        self._handler = handler
        self._host = host
        self._requested_port = port
        self._max_body = max_body_bytes
        self._ssl = ssl_context
        self._name = name
        self._on_too_large = on_too_large
        self._precheck = precheck
        self._refusal = refusal or _plain_refusal
        self._runner: web.ServerRunner | None = None
        self.port = 0

    async def startup(self) -> None:
        """Bind and listen; :attr:`port` is the bound port afterwards. A bind failure raises OSError."""
        server = web.Server(
            self._serve,
            auto_decompress=False,
            access_log=None,
            keepalive_timeout=IDLE_TIMEOUT,
            max_line_size=MAX_HEADER_BYTES,
            max_field_size=MAX_HEADER_BYTES,
            # a refused request's body is drained for up to this long before the connection
            # closes, so the client reads the 413 instead of a reset
            lingering_time=LINGER_SECONDS,
        )
        runner = web.ServerRunner(server, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._requested_port, ssl_context=self._ssl)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = site.port
        logger.info("event=http_server_started name=%s host=%s port=%d", self._name, self._host, self.port)

    async def shutdown(self, grace: float = 1.0) -> None:
        """Stop listening, let in-flight requests finish within ``grace`` s, close connections."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        server = runner.server
        for site in list(runner.sites):
            await site.stop()  # stop listening
        if server is not None:
            server.pre_shutdown()  # idle keep-alive connections close now
            # in-flight requests get ``grace`` s, then are cancelled (aiohttp reads 0 as "no limit")
            await server.shutdown(max(grace, 0.001))
        await runner.cleanup()

    async def _serve(self, raw: web.BaseRequest) -> web.StreamResponse:
        headers = {name.lower(): value for name, value in raw.headers.items()}
        path, _, query = raw.raw_path.partition("?")
        if self._precheck is not None:
            early = self._precheck(Request(raw.method, path, query, headers, b""))
            if early is not None:  # e.g. no credentials: answer without reading the body
                return _closing(_to_aiohttp(early))
        try:
            body = await self._read_body(raw, headers)
        except _BodyTooLarge:
            if self._on_too_large is not None:
                self._on_too_large()
            head = Request(raw.method, path, query, headers, b"")
            return _closing(
                _to_aiohttp(self._refusal(head, 413, f"request body larger than {self._max_body} bytes"))
            )
        except TimeoutError:
            head = Request(raw.method, path, query, headers, b"")
            return _closing(_to_aiohttp(self._refusal(head, 408, "request body not received in time")))
        try:
            response = await self._handler(Request(raw.method, path, query, headers, body))
        except Exception:
            logger.exception("event=http_handler_failed name=%s path=%s", self._name, path)
            response = Response(500, b"internal error\n")
        return _to_aiohttp(response)

    async def _read_body(self, raw: web.BaseRequest, headers: dict[str, str]) -> bytes:
        length = raw.content_length  # validated by aiohttp's parser
        if length is None and "chunked" not in headers.get("transfer-encoding", "").lower():
            return b""
        if length is not None and length > self._max_body:
            raise _BodyTooLarge
        if raw.version == HttpVersion11 and headers.get("expect", "").lower() == "100-continue":
            await raw.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        parts: list[bytes] = []
        total = 0
        async with asyncio.timeout(IDLE_TIMEOUT):
            while chunk := await raw.content.readany():
                total += len(chunk)
                if total > self._max_body:
                    raise _BodyTooLarge
                parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)


def _plain_refusal(request: Request, status: int, text: str) -> Response:
    return Response(status, text.encode() + b"\n")


def _to_aiohttp(response: Response) -> web.Response:
    headers = [("Content-Type", response.content_type), *response.headers]
    return web.Response(status=response.status, body=response.body, headers=headers)


def _closing(response: web.Response) -> web.Response:
    """Close the connection after ``response``: the rest of the request body is never read."""
    response.force_close()
    return response
