"""Extensions start before the ports are bound, stop after the drain, in reverse, each one whatever
the others do."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from llmpulse.processor.extension import Extension
from llmpulse.processor.service import ProcessorService, StartupError
from llmpulse.processor.settings import Settings
from llmpulse.testing.otlp import llm_attributes, make_request, make_span
from tests.processor.conftest import ServiceFactory, grpc_export


class _Calls:
    def __init__(self) -> None:
        self.features: list[str] = []

    def on_call(self, call: Any, span: Any | None) -> None:
        self.features.append(call.feature)

    def on_feedback(self, feedback: Any, span: Any | None) -> None:
        pass


def _extension(name: str, events: list[str], service: list[ProcessorService], **parts: Any) -> Extension:
    async def start() -> None:
        events.append(f"start {name} state={service[0].state}")

    async def stop() -> None:
        seen = "".join(f" calls={len(listener.features)}" for listener in parts.get("listeners", ()))
        events.append(
            f"stop {name} state={service[0].state} admin={_port_state(service[0].admin.port)}{seen}"
        )
        if name == "broken":
            raise RuntimeError("cannot stop")

    return Extension(name, start=start, stop=stop, **parts)


def _port_state(port: int) -> str:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except OSError:
        return "closed"
    return "open"


def _settings(**overrides: Any) -> Settings:
    return Settings(**{"grpc_port": 0, "http_port": 0, "admin_port": 0, "drain_timeout": 2.0, **overrides})


async def test_start_in_order_before_binding_and_stop_in_reverse_after_the_drain(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []
    holder: list[ProcessorService] = []
    calls = _Calls()
    extensions = [
        _extension("first", events, holder, listeners=[calls]),
        _extension("broken", events, holder),
        _extension("last", events, holder),
    ]
    service = ProcessorService(_settings(), extensions=extensions)
    holder.append(service)
    await service.startup()
    assert events == ["start first state=new", "start broken state=new", "start last state=new"]
    await grpc_export(service.grpc.port, make_request([make_span(llm_attributes())]))
    await service.shutdown()
    # every stop ran, the failing one in the middle included, after the drain and the servers closed
    assert events[3:] == [
        "stop last state=stopping admin=closed",
        "stop broken state=stopping admin=closed",
        "stop first state=stopping admin=closed calls=1",
    ]
    assert "event=engine_stop_failed extension=broken" in caplog.text
    assert service.state == "stopped"
    await service.shutdown()  # a second shutdown stops nothing twice
    assert len(events) == 6


async def test_a_port_in_use_stops_the_started_extensions(make_service: ServiceFactory) -> None:
    first = await make_service()
    events: list[str] = []
    holder: list[ProcessorService] = []
    second = ProcessorService(
        _settings(http_port=first.http.port), extensions=[_extension("quality", events, holder)]
    )
    holder.append(second)
    with pytest.raises(StartupError, match="cannot bind"):
        await second.startup()
    assert events == ["start quality state=new", "stop quality state=new admin=closed"]
    await second.shutdown()
    assert len(events) == 2


async def test_a_failing_start_stops_the_ones_before_and_starts_no_more() -> None:
    events: list[str] = []
    holder: list[ProcessorService] = []

    async def cannot_start() -> None:
        raise OSError("no database")

    extensions = [
        _extension("quality", events, holder),
        Extension("drift", start=cannot_start),
        _extension("canary", events, holder),
    ]
    service = ProcessorService(_settings(), extensions=extensions)
    holder.append(service)
    with pytest.raises(OSError, match="no database"):
        await service.startup()
    assert events == ["start quality state=new", "stop quality state=new admin=closed"]


def test_names_and_routes_are_one_per_extension() -> None:
    async def route(request: Any) -> Any:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="used twice"):
        ProcessorService(_settings(), extensions=[Extension("quality"), Extension("quality")])
    with pytest.raises(ValueError, match="claimed by two extensions"):
        ProcessorService(
            _settings(),
            extensions=[
                Extension("a", admin_routes={"/api/x": route}),
                Extension("b", admin_routes={"/api/x": route}),
            ],
        )
