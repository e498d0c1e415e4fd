"""The HTTP server's own behaviour, spoken to over raw sockets: what OTLP/HTTP and admin rely on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from llmpulse.processor.http_server import HttpServer, Request, Response

LIMIT = 1000


@dataclass
class Echo:
    """Answers with the body it got; remembers every request; waits on ``gate`` when told to."""

    seen: list[Request] = field(default_factory=list)
    too_large: int = 0
    gate: asyncio.Event | None = None

    async def __call__(self, request: Request) -> Response:
        self.seen.append(request)
        if request.path == "/boom":
            raise RuntimeError("handler failed")
        if request.path == "/slow" and self.gate is not None:
            await self.gate.wait()
        return Response(200, request.body, "application/octet-stream", [("X-Query", request.query)])

    def precheck(self, request: Request) -> Response | None:
        if request.headers.get("authorization") == "Bearer ok":
            return None
        return Response(401, b"no\n")

    def refused(self) -> None:
        self.too_large += 1


@pytest.fixture
def echo() -> Echo:
    return Echo()


@pytest.fixture
async def server(echo: Echo) -> AsyncIterator[HttpServer]:
    http = HttpServer(
        echo,
        host="127.0.0.1",
        port=0,
        max_body_bytes=LIMIT,
        name="test",
        on_too_large=echo.refused,
        precheck=echo.precheck,
    )
    await http.startup()
    yield http
    await http.shutdown()


async def connect(server: HttpServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


def head(method: str, path: str, *extra: str, auth: bool = True) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: x", *(["Authorization: Bearer ok"] if auth else []), *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response: status, lower-case headers, body (by Content-Length)."""
    async with asyncio.timeout(5):
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    async with asyncio.timeout(5):
        return await reader.read(1) == b""


async def test_keep_alive_serves_several_requests_on_one_connection(server: HttpServer, echo: Echo) -> None:
    reader, writer = await connect(server)
    for i in range(3):
        body = f"request {i}".encode()
        writer.write(head("POST", f"/v1/traces?n={i}", f"Content-Length: {len(body)}") + body)
        status, headers, got = await read_response(reader)
        assert (status, got, headers["x-query"]) == (200, body, f"n={i}")
    writer.close()
    assert [r.path for r in echo.seen] == ["/v1/traces"] * 3


async def test_precheck_refuses_on_the_head_before_100_continue(server: HttpServer, echo: Echo) -> None:
    reader, writer = await connect(server)
    writer.write(head("POST", "/v1/traces", "Content-Length: 10", "Expect: 100-continue", auth=False))
    status, _, body = await read_response(reader)  # the first thing sent back: no 100 Continue
    assert (status, body) == (401, b"no\n")
    assert await closed_by_server(reader)
    writer.close()
    assert echo.seen == []


async def test_100_continue_then_body(server: HttpServer, echo: Echo) -> None:
    reader, writer = await connect(server)
    writer.write(head("POST", "/v1/traces", "Content-Length: 5", "Expect: 100-continue"))
    async with asyncio.timeout(5):
        interim = await reader.readuntil(b"\r\n\r\n")
    assert interim.startswith(b"HTTP/1.1 100 ")
    writer.write(b"hello")
    status, _, body = await read_response(reader)
    writer.close()
    assert (status, body) == (200, b"hello")


async def test_declared_body_over_the_limit_is_refused_unread(server: HttpServer, echo: Echo) -> None:
    reader, writer = await connect(server)
    writer.write(head("POST", "/v1/traces", f"Content-Length: {LIMIT + 1}", "Expect: 100-continue"))
    status, _, _ = await read_response(reader)  # no 100 Continue first: the body is never asked for
    assert status == 413
    assert await closed_by_server(reader)
    writer.close()
    assert (echo.too_large, echo.seen) == (1, [])


async def test_chunked_bodies_are_joined_and_limited(server: HttpServer, echo: Echo) -> None:
    reader, writer = await connect(server)
    writer.write(head("POST", "/a", "Transfer-Encoding: chunked") + b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
    status, _, body = await read_response(reader)
    assert (status, body) == (200, b"abcde")
    chunk = b"x" * 600
    writer.write(head("POST", "/b", "Transfer-Encoding: chunked") + b"258\r\n" + chunk + b"\r\n")
    writer.write(b"258\r\n" + chunk + b"\r\n")  # 1200 bytes in all, over the 1000-byte limit
    status, _, _ = await read_response(reader)
    assert status == 413
    assert await closed_by_server(reader)
    writer.close()
    assert [r.path for r in echo.seen] == ["/a"]
    assert echo.too_large == 1


async def test_head_gets_headers_only(server: HttpServer) -> None:
    reader, writer = await connect(server)
    writer.write(head("HEAD", "/x?q=1"))
    async with asyncio.timeout(5):
        raw = await reader.readuntil(b"\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 ")
    writer.write(head("GET", "/y?q=2"))  # the connection is still usable: no stray body before it
    status, headers, _ = await read_response(reader)
    writer.close()
    assert (status, headers["x-query"]) == (200, "q=2")


async def test_a_failing_handler_is_answered_500(server: HttpServer) -> None:
    reader, writer = await connect(server)
    writer.write(head("GET", "/boom"))
    status, _, body = await read_response(reader)
    writer.close()
    assert (status, body) == (500, b"internal error\n")


async def test_shutdown_lets_an_in_flight_request_finish(echo: Echo) -> None:
    echo.gate = asyncio.Event()
    http = HttpServer(echo, host="127.0.0.1", port=0, max_body_bytes=LIMIT, precheck=echo.precheck)
    await http.startup()
    reader, writer = await connect(http)
    writer.write(head("GET", "/slow"))
    while not echo.seen:
        await asyncio.sleep(0.01)
    stopping = asyncio.create_task(http.shutdown(grace=5.0))
    await asyncio.sleep(0.1)
    assert not stopping.done()
    echo.gate.set()
    status, _, _ = await read_response(reader)
    await stopping
    writer.close()
    assert status == 200
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", http.port)


async def test_shutdown_without_grace_cancels_a_stuck_request(echo: Echo) -> None:
    echo.gate = asyncio.Event()  # never set: the handler would wait forever
    http = HttpServer(echo, host="127.0.0.1", port=0, max_body_bytes=LIMIT, precheck=echo.precheck)
    await http.startup()
    reader, writer = await connect(http)
    writer.write(head("GET", "/slow"))
    while not echo.seen:
        await asyncio.sleep(0.01)
    async with asyncio.timeout(5):  # a hang guard, not a timing assertion
        await http.shutdown(grace=0.0)
    assert await closed_by_server(reader)
    writer.close()


async def test_a_port_in_use_raises_oserror(server: HttpServer, echo: Echo) -> None:
    second = HttpServer(echo, host="127.0.0.1", port=server.port, max_body_bytes=LIMIT)
    with pytest.raises(OSError):
        await second.startup()
    await second.shutdown()
