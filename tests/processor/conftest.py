"""Fixtures for the processor tests: a real service on free loopback ports, span builders."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmpulse.contract import attributes as A
from llmpulse.processor.service import ProcessorService
from llmpulse.processor.settings import Settings

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
T0 = 1_700_000_000_000_000_000  # span start, ns


class FakeClock:
    """A clock the tests move by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def any_value(value: Any) -> AnyValue:
    """An OTLP AnyValue for a Python value (lists become array values)."""
    out = AnyValue()
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, list | tuple):
        out.array_value.values.extend(any_value(v) for v in value)
    else:
        raise TypeError(value)
    return out


def make_span(
    attributes: dict[str, Any],
    *,
    trace_id: bytes = b"\x01" * 16,
    span_id: bytes = b"\x02" * 8,
    parent_span_id: bytes = b"",
    duration_s: float = 0.5,
    status_code: int = 0,
    name: str = "span",
) -> Span:
    """A raw OTLP span."""
    span = Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        name=name,
        start_time_unix_nano=T0,
        end_time_unix_nano=T0 + round(duration_s * 1e9),
    )
    span.status.code = status_code  # type: ignore[assignment]
    span.attributes.extend(KeyValue(key=k, value=any_value(v)) for k, v in attributes.items())
    return span


def llm_attributes(**overrides: Any) -> dict[str, Any]:
    """Attributes of an llmpulse LLM span (pass overrides as ``**{KEY: value}``; None removes)."""
    attrs: dict[str, Any] = {
        A.SPAN_KIND: A.SPAN_KIND_LLM,
        A.GEN_AI_OPERATION_NAME: "chat",
        A.GEN_AI_PROVIDER_NAME: "openai",
        A.GEN_AI_REQUEST_MODEL: "gpt-4o",
        A.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
        A.GEN_AI_USAGE_INPUT_TOKENS: 100,
        A.GEN_AI_USAGE_OUTPUT_TOKENS: 20,
        A.COST_USD: 0.0025,
        A.FEATURE: "support",
        A.FINISH_REASON: "stop",
        A.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
    }
    for key, value in overrides.items():
        if value is None:
            attrs.pop(key, None)
        else:
            attrs[key] = value
    return attrs


def make_request(spans: Iterable[Span], scope: str = "llmpulse") -> ExportTraceServiceRequest:
    """One request with all ``spans`` under one resource and scope."""
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    scope_spans.scope.name = scope
    scope_spans.spans.extend(spans)
    return request


def llm_labels(**overrides: str) -> dict[str, str]:
    """The label set of the default LLM span's series."""
    labels = {"feature": "support", "provider": "openai", "model": "gpt-4o", "operation": "chat"}
    labels.update(overrides)
    return labels


def sdk_spans(specs: list[tuple[dict[str, Any], float]]) -> list[ReadableSpan]:
    """Finished SDK spans, one per (attributes, duration in s)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "app"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests")
    for attributes, duration in specs:
        span = tracer.start_span("chat gpt-4o", attributes=attributes, start_time=T0)
        span.end(end_time=T0 + round(duration * 1e9))
    provider.shutdown()
    return list(memory.get_finished_spans())


ServiceFactory = Callable[..., Awaitable[ProcessorService]]


@pytest.fixture
async def make_service() -> AsyncIterator[ServiceFactory]:
    """Start services on free ports (``Settings`` overrides as keyword arguments); stop them after."""
    started: list[ProcessorService] = []

    async def factory(
        clock: Callable[[], float] | None = None,
        *,
        listeners: Sequence[Any] = (),
        collectors: Sequence[Any] = (),
        admin_routes: dict[str, Any] | None = None,
        status_sections: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> ProcessorService:
        settings = Settings(
            **{"grpc_port": 0, "http_port": 0, "admin_port": 0, "drain_timeout": 2.0, **overrides}
        )
        extensions: dict[str, Any] = {
            "listeners": listeners,
            "collectors": collectors,
            "admin_routes": admin_routes,
            "status_sections": status_sections,
        }
        if clock is not None:
            extensions["clock"] = clock
        service = ProcessorService(settings, **extensions)
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


async def wait_for(predicate: Callable[[], bool]) -> None:
    """Yield to the loop until ``predicate`` holds (bounded by pytest's own timeout, not asserted)."""
    for _ in range(5000):
        if predicate():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("condition never became true")


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
