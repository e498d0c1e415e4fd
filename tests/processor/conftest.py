"""Fixtures for the processor tests: a real service on free loopback ports, a raw gRPC export.

Span builders are in :mod:`llmpulse.testing.otlp`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from llmpulse.processor.extension import Extension
from llmpulse.processor.service import ProcessorService
from llmpulse.processor.settings import Settings

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def llm_labels(**overrides: str) -> dict[str, str]:
    """The label set of the default LLM span's series (a resource without service.name)."""
    labels = {
        "service": "unknown_service",
        "deployment_environment": "",
        "feature": "support",
        "provider": "openai",
        "model": "gpt-4o",
        "operation": "chat",
    }
    labels.update(overrides)
    return labels


ServiceFactory = Callable[..., Awaitable[ProcessorService]]


@pytest.fixture
async def make_service() -> AsyncIterator[ServiceFactory]:
    """Start services on free ports (``Settings`` overrides as keyword arguments); stop them after."""
    started: list[ProcessorService] = []

    async def factory(
        clock: Callable[[], float] | None = None,
        *,
        extensions: Sequence[Extension] = (),
        **overrides: Any,
    ) -> ProcessorService:
        settings = Settings(
            **{"grpc_port": 0, "http_port": 0, "admin_port": 0, "drain_timeout": 2.0, **overrides}
        )
        options: dict[str, Any] = {"extensions": extensions}
        if clock is not None:
            options["clock"] = clock
        service = ProcessorService(settings, **options)
        await service.startup()
        started.append(service)
        return service

    yield factory
    for service in started:
        await service.shutdown()


@pytest.fixture
async def service(make_service: ServiceFactory) -> ProcessorService:
    """A running processor with default settings on free ports."""
    return await make_service()


async def grpc_export(
    port: int,
    body: bytes | ExportTraceServiceRequest,
    *,
    metadata: tuple[tuple[str, str], ...] = (),
    credentials: grpc.ChannelCredentials | None = None,
) -> ExportTraceServiceResponse:
    """One raw TraceService/Export call; raises ``grpc.aio.AioRpcError`` on a non-OK status."""
    data = body if isinstance(body, bytes) else body.SerializeToString()
    target = f"localhost:{port}"
    channel = (
        grpc.aio.secure_channel(target, credentials) if credentials else grpc.aio.insecure_channel(target)
    )
    async with channel:
        call = channel.unary_unary(
            EXPORT_METHOD,
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        return await call(data, metadata=metadata, timeout=10)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost, made with the openssl CLI."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "OPENSSL_CONF": "/dev/null"},
    )  # fmt: skip
    return cert, key
