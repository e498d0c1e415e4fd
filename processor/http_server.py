"""A small asyncio HTTP/1.1 server: just what OTLP/HTTP and the admin endpoints need.

Why not a framework: the processor needs one POST route and four GETs, keep-alive, a hard
body limit enforced before reading, ``Expect: 100-continue`` and chunked request bodies.
Keeping it on the processor's own event loop also means ``/metrics`` reads the aggregates
without locks. Anything outside that (pipelining, upgrades, trailers) is answered with an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

logger = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
IDLE_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed request. Header names are lower case."""

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


class HttpError(Exception):
    """A request the server answers itself, with ``status`` and a plain-text reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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
    ) -> None:
        self._handler = handler
        self._host = host
        self._requested_port = port
        self._max_body = max_body_bytes
        self._ssl = ssl_context
        self._name = name
        self._on_too_large = on_too_large
        self._precheck = precheck
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._busy: set[asyncio.Task[None]] = set()
        self.port = 0

    async def startup(self) -> None:
        """Bind and listen; :attr:`port` is the bound port afterwards."""
        self._server = await asyncio.start_server(
            self._serve_connection, self._host, self._requested_port, ssl=self._ssl, limit=MAX_HEADER_BYTES
        )
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("event=http_server_started name=%s host=%s port=%d", self._name, self._host, self.port)

    async def shutdown(self, grace: float = 1.0) -> None:
        """Stop listening, let in-flight requests finish within ``grace`` s, close connections."""
        if self._server is None:
            return
        self._server.close()
        if self._busy:
            await asyncio.wait(self._busy, timeout=grace)
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        self._server = None

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            keep_alive = True
            while keep_alive:
                try:
                    async with asyncio.timeout(IDLE_TIMEOUT):
                        head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
                    return
                except asyncio.LimitOverrunError:
                    await self._write(writer, Response(431, b"request header too large\n"), close=True)
                    return
                self._busy.add(task)
                try:
                    keep_alive = await self._handle_one(head, reader, writer)
                finally:
                    self._busy.discard(task)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
                await writer.wait_closed()

    async def _handle_one(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        try:
            method, target, version, headers = _parse_head(head)
        except HttpError as exc:
            await self._write(writer, Response(exc.status, f"{exc}\n".encode()), close=True)
            return False
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        path, _, query = target.partition("?")
        if self._precheck is not None:
            early = self._precheck(Request(method, path, query, headers, b""))
            if early is not None:  # e.g. no credentials: answer without reading the body
                await self._write(writer, early, close=True)
                return False
        try:
            body = await self._read_body(headers, reader, writer)
        except HttpError as exc:
            if exc.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE and self._on_too_large is not None:
                self._on_too_large()
            await self._write(writer, Response(exc.status, f"{exc}\n".encode()), close=True)
            return False
        request = Request(method, path, query, headers, body)
        try:
            response = await self._handler(request)
        except Exception:
            logger.exception("event=http_handler_failed name=%s path=%s", self._name, path)
            response = Response(500, b"internal error\n")
        await self._write(writer, response, close=not keep_alive, head_only=method == "HEAD")
        return keep_alive

    async def _read_body(
        self, headers: dict[str, str], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bytes:
        length_text = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if length_text is None and not chunked:
            return b""
        if headers.get("expect", "").lower() == "100-continue":
            if length_text is not None and length_text.isdigit() and int(length_text) > self._max_body:
                raise HttpError(413, f"request body larger than {self._max_body} bytes")
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if chunked:
            return await self._read_chunked(reader)
        if not length_text.isdigit():  # type: ignore[union-attr]
            raise HttpError(400, "bad Content-Length")
        length = int(length_text)  # type: ignore[arg-type]
        if length > self._max_body:
            raise HttpError(413, f"request body larger than {self._max_body} bytes")
        async with asyncio.timeout(IDLE_TIMEOUT):
            return await reader.readexactly(length)

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        total = 0
        async with asyncio.timeout(IDLE_TIMEOUT):
            while True:
                line = await reader.readuntil(b"\r\n")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise HttpError(400, "bad chunk size") from None
                if size < 0:
                    raise HttpError(400, "bad chunk size")
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers: ignored
                        pass
                    return b"".join(parts)
                total += size
                if total > self._max_body:
                    raise HttpError(413, f"request body larger than {self._max_body} bytes")
                parts.append(await reader.readexactly(size))
                if await reader.readexactly(2) != b"\r\n":
                    raise HttpError(400, "bad chunk terminator")

    @staticmethod
    async def _write(
        writer: asyncio.StreamWriter, response: Response, *, close: bool, head_only: bool = False
    ) -> None:
        try:
            reason = HTTPStatus(response.status).phrase
        except ValueError:
            reason = "Status"
        lines = [
            f"HTTP/1.1 {response.status} {reason}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
        ]
        lines += [f"{name}: {value}" for name, value in response.headers]
        if close:
            lines.append("Connection: close")
        body = b"" if head_only else response.body
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise HttpError(400, "bad request head") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "bad request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, "bad header line")
        headers[name.lower()] = value.strip()
    if "content-length" in headers and "transfer-encoding" in headers:
        raise HttpError(400, "both Content-Length and Transfer-Encoding")
    return method, target, version, headers
