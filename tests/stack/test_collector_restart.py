"""Collector restarts lose nothing: the real collector killed under load, and restarted.

Two measurements, each with its baseline in the same run, printed (``-s``) and asserted on the
llmpulse side only:

* **app side**: two apps send LLM spans through one collector at the same rate, one with the
  SDK's default export (``BatchSpanProcessor(OTLPSpanExporter())``), one with what llmpulse
  installs (:func:`llmpulse.instrumentation.export.span_processor`). The collector is SIGKILLed
  for :data:`OUTAGE_S` seconds and restarted; every span of the llmpulse app is counted once by
  the processor.
* **collector side**: while the processor is away, two collectors (the shipped config with its
  ``file_storage`` queue, and the same config with the queue in memory) accept spans, are
  SIGKILLed and restarted once the processor is back; the disk queue delivers every span.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanProcessor

from llmpulse.instrumentation.export import span_processor
from llmpulse.processor.metrics import names as M
from llmpulse.processor.service import ProcessorService
from llmpulse.stack import components
from llmpulse.testing.otlp import llm_attributes
from tests.conftest import CollectorHandle
from tests.processor.conftest import make_service, service

__all__ = ["make_service", "service"]

OUTAGE_S = 15.0
RATE = 100  # spans/s per app


def _counted(service: ProcessorService, name: str) -> float:
    """LLM calls of service ``name`` the processor counted."""
    total = 0.0
    for family in service.registry.collect():
        for sample in family.samples:
            if sample.name == M.REQUESTS_TOTAL and sample.labels.get("service") == name:
                total += sample.value
    return total


class _App:
    """A tracer provider of service ``name`` that sends LLM spans at :data:`RATE` from a thread."""

    def __init__(self, name: str, processor: SpanProcessor) -> None:
        self.name = name
        self.provider = TracerProvider(resource=Resource.create({"service.name": name}))
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("tests")
        self.sent = 0

    def send(self, n: int) -> None:
        for _ in range(n):
            self.tracer.start_span("chat gpt-4o", attributes=llm_attributes()).end()
            self.sent += 1

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            self.send(RATE // 10)
            stop.wait(max(0.0, 0.1 - (time.monotonic() - started)))


def _kill(handle: CollectorHandle) -> None:
    pid = handle.process.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    handle.process.stop()


async def _settle(
    service: ProcessorService, apps: list[_App], expect: _App, timeout: float
) -> dict[str, float]:
    """The apps' counts once ``expect``'s has reached what it sent (or ``timeout``), and 3 s more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _counted(service, expect.name) < expect.sent:
        await asyncio.sleep(0.5)
    await asyncio.sleep(3.0)  # whatever else was coming
    return {app.name: _counted(service, app.name) for app in apps}


async def test_the_llmpulse_app_keeps_its_spans_across_a_collector_outage(
    service: ProcessorService, start_collector: Callable[..., CollectorHandle], tmp_path: Path
) -> None:
    env = {"LLMPULSE_COLLECTOR_QUEUE_DIR": str(tmp_path / "queue")}
    handle = await asyncio.to_thread(start_collector, f"127.0.0.1:{service.grpc.port}", env=env)
    endpoint = handle.grpc_endpoint
    baseline = _App("sdk-defaults", BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    patient = _App("llmpulse", span_processor(OTLPSpanExporter(endpoint=endpoint, insecure=True), {}))
    apps = [baseline, patient]
    stop = threading.Event()
    threads = [threading.Thread(target=app.run, args=(stop,), daemon=True) for app in apps]
    for thread in threads:
        thread.start()
    try:
        await asyncio.sleep(5)
        await asyncio.to_thread(_kill, handle)
        await asyncio.sleep(OUTAGE_S)
        await asyncio.to_thread(handle.process.start)
        await asyncio.sleep(5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    for app in apps:
        await asyncio.to_thread(app.provider.force_flush, 60_000)
    counts = await _settle(service, apps, patient, timeout=60)
    for app in apps:
        app.provider.shutdown()
    for app in apps:
        lost = app.sent - counts[app.name]
        print(
            f"\ncollector killed for {OUTAGE_S:.0f}s at {RATE} spans/s, {app.name}: sent {app.sent}, "
            f"counted {counts[app.name]:.0f}, lost {lost:.0f} ({lost / app.sent:.1%})"
        )
    assert counts["llmpulse"] == patient.sent  # each span counted once: none lost, none twice


def _memory_queue_config(tmp_path: Path) -> Path:
    """The shipped collector config with the processor exporter's queue in memory."""
    text = (components.REPO_ROOT / "otel-collector.yaml").read_text()
    assert "      storage: file_storage/queue\n" in text
    path = tmp_path / "otel-collector-memory-queue.yaml"
    path.write_text(text.replace("      storage: file_storage/queue\n", ""))
    return path


async def test_the_disk_queue_delivers_what_the_collector_held_when_it_was_killed(
    make_service: Any, start_collector: Callable[..., CollectorHandle], tmp_path: Path
) -> None:
    port = components.free_port()
    processor = f"127.0.0.1:{port}"  # nothing listens there yet: the collectors queue
    disk = await asyncio.to_thread(
        start_collector, processor, env={"LLMPULSE_COLLECTOR_QUEUE_DIR": str(tmp_path / "disk")}
    )
    memory = await asyncio.to_thread(
        start_collector,
        processor,
        config=_memory_queue_config(tmp_path),
        env={"LLMPULSE_COLLECTOR_QUEUE_DIR": str(tmp_path / "unused")},
    )
    apps = []
    for name, handle in (("disk-queue", disk), ("memory-queue", memory)):
        app = _App(name, BatchSpanProcessor(OTLPSpanExporter(endpoint=handle.grpc_endpoint, insecure=True)))
        app.send(500)
        assert await asyncio.to_thread(app.provider.force_flush, 30_000)  # the collector accepted them
        apps.append(app)
    await asyncio.sleep(1.5)  # past the collector's batch timeout (1 s): the batches are queued
    for handle in (disk, memory):
        await asyncio.to_thread(_kill, handle)
    service = await make_service(grpc_port=port)
    for handle in (disk, memory):
        await asyncio.to_thread(handle.process.start)
    counts = await _settle(service, apps, apps[0], timeout=30)
    for app in apps:
        app.provider.shutdown()
        print(
            f"\n{app.name}: 500 spans held by a collector killed and restarted, "
            f"{counts[app.name]:.0f} delivered"
        )
    assert counts["disk-queue"] == 500
