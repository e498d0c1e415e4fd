"""The real components start, do their job and stop: Prometheus, Alertmanager, collector."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from llmpulse.contract import attributes
from llmpulse.stack import components
from llmpulse.testing.polling import wait_until
from llmpulse.testing.webhook_sink import WebhookSink

pytestmark = pytest.mark.components


@pytest.mark.prometheus3
def test_prometheus_starts_scrapes_and_stops(start_prometheus) -> None:
    config = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: self
    static_configs: [{targets: ['127.0.0.1:PORT']}]
"""
    # Prometheus scrapes itself; the port is only known after start, so reload with it.
    process, port = start_prometheus(config.replace("PORT", "1"))
    config_path = process.argv[1].split("=", 1)[1]
    with open(config_path, "w") as fh:
        fh.write(config.replace("PORT", str(port)))
    assert httpx.post(f"http://127.0.0.1:{port}/-/reload").status_code == 200

    def self_scraped() -> bool:
        body = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": 'up{job="self"}'}).json()
        return any(
            r["metric"]["instance"] == f"127.0.0.1:{port}" and r["value"][1] == "1"
            for r in body["data"]["result"]
        )

    wait_until(
        self_scraped,
        timeout=20,
        interval=0.2,
        message="Prometheus never reported up=1 for its own scrape target",
    )
    assert process.stop() == 0


@pytest.mark.prometheus3
def test_alertmanager_routes_an_alert_to_a_webhook(start_alertmanager) -> None:
    with WebhookSink() as sink:
        _, port = start_alertmanager(
            f"""
route:
  receiver: sink
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: sink
    webhook_configs: [{{url: '{sink.url}', send_resolved: false}}]
"""
        )
        alert = [{"labels": {"alertname": "LLMPulseSmokeTest", "severity": "info"}}]
        assert httpx.post(f"http://127.0.0.1:{port}/api/v2/alerts", json=alert).status_code == 200
        notification = sink.wait_for("LLMPulseSmokeTest", timeout=20)
    assert notification is not None, "Alertmanager never delivered the alert to the webhook"
    assert notification.payload["status"] == "firing"


@pytest.mark.parametrize("trace_exporter", ["nop", "otlp/traces"])
def test_collector_config_is_valid_for_the_built_binary(trace_exporter: str) -> None:
    binary = components.find_collector()
    result = subprocess.run(
        [str(binary), "validate", f"--config={components.REPO_ROOT / 'otel-collector.yaml'}"],
        env={"LLMPULSE_TRACE_EXPORTER": trace_exporter, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


class _Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(self, request, context):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[_Receiver, str]]:
    """A real OTLP/gRPC TraceService on loopback standing in for the processor."""
    receiver = _Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield receiver, f"127.0.0.1:{port}"
    server.stop(grace=None)


def test_collector_forwards_spans_to_the_processor_endpoint(start_collector, otlp_receiver) -> None:
    receiver, endpoint = otlp_receiver
    collector = start_collector(endpoint)

    provider = TracerProvider(resource=Resource.create({"service.name": "collector-smoke"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://{collector.grpc_endpoint}", insecure=True))
    )
    with provider.get_tracer("test").start_as_current_span("chat gpt-4o-mini") as span:
        span.set_attribute(attributes.GEN_AI_OPERATION_NAME, attributes.OP_CHAT)
        span.set_attribute(attributes.GEN_AI_USAGE_INPUT_TOKENS, 12)
    provider.shutdown()

    def forwarded() -> list[Any]:
        return [
            s
            for r in receiver.requests
            for rs in r.resource_spans
            for ss in rs.scope_spans
            for s in ss.spans
            if s.name == "chat gpt-4o-mini"
        ]

    spans = wait_until(
        forwarded,
        timeout=20,
        interval=0.2,
        message=lambda: f"the collector did not forward the span; log:\n{collector.process.log_tail()}",
    )
    assert spans, f"the collector did not forward the span; log:\n{collector.process.log_tail()}"
    attrs = {kv.key: kv.value for kv in spans[0].attributes}
    assert attrs[attributes.GEN_AI_USAGE_INPUT_TOKENS].int_value == 12


def test_distinct_free_ports_never_repeat() -> None:
    # one port per stack component, chosen at once: ports taken one by one can repeat (a closed
    # port may be handed out again at once), which once gave the collector the processor's port
    ports = components.distinct_free_ports(40) + [components.free_port() for _ in range(40)]
    assert len(set(ports)) == 80
    assert all(1024 <= port <= 65535 for port in ports)


def test_free_ports_are_below_the_ephemeral_range() -> None:
    # a port of the ephemeral range can become an outgoing connection's source port between
    # the choice and the server's bind (CI of e535f57: the collector's health port, chosen free,
    # was "already in use" a second later)
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [components.free_port() for _ in range(50)]
    if low - 20000 >= 1000:  # the default range (32768-60999) leaves 20000-32767 below it
        assert all(20000 <= port < low for port in ports), ports
    else:  # no room below it: the kernel's choice, still never the same port twice
        assert len(set(ports)) == 50
    with socket.socket() as sock:  # and they are free: a server can bind one
        sock.bind(("127.0.0.1", ports[-1]))
