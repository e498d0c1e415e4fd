"""Broken HTTP framing on the OTLP/HTTP port is answered 400, never a silently closed connection:
a ``Content-Length`` that is not ASCII digits (``²`` passes ``str.isdigit``) and a chunk-size line
of 64 KB. The answer comes from aiohttp's parser, before any llmpulse handler runs."""

from __future__ import annotations

import asyncio

import pytest

from llmpulse.processor.metrics import names as M
from llmpulse.testing.otlp import llm_attributes, make_request, make_span
from tests.processor.conftest import ServiceFactory

HEAD = b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"


async def _exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` and read until the server closes (or 10 s pass)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(1 << 20), timeout=10)
    finally:
        writer.close()


@pytest.mark.parametrize(
    "data",
    [
        HEAD + "Content-Length: ²\r\n\r\nab".encode(),
        HEAD + "Content-Length: ١٢\r\n\r\nab".encode(),  # Arabic-Indic digits
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n1" + b"0" * 65536 + b"\r\n",
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"f" * 65536 + b"\r\n",
    ],
    ids=["superscript-two", "arabic-digits", "64k-chunk-size-digits", "64k-chunk-size-hex"],
)
async def test_broken_framing_is_answered_400(make_service: ServiceFactory, data: bytes) -> None:
    service = await make_service()
    answer = await _exchange(service.http.port, data)
    assert answer.split(b"\r\n", 1)[0].split(b" ")[1:2] == [b"400"], answer[:120]
    # and the port still takes a good request on a new connection
    body = make_request([make_span(llm_attributes())]).SerializeToString()
    good = await _exchange(
        service.http.port,
        HEAD + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body,
    )
    assert good.startswith(b"HTTP/1.1 200"), good[:120]
    assert service.accounting.accepted[M.ACCEPTED_LLM] == 1
