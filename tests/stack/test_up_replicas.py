"""``llmpulse up --replicas 2``: the stack with Kafka between the collector and two processor
replicas, their state in PostgreSQL, Prometheus scraping both (and the only scraper of them).

Real parts only: the built collector with ``otel-collector-kafka.yaml``, a Kafka broker, a
PostgreSQL cluster, two ``llmpulse serve`` replicas in one consumer group with the owner topic,
Prometheus with the shipped rules and Alertmanager. Traffic goes to the collector over OTLP/gRPC.
Checked in Prometheus: the calls per (service, feature) equal what was sent; each (service,
feature) is exported by exactly one replica, and both replicas own some; an error burst gives one
LLMPulseErrorRateHigh alert per (service, feature), without an ``instance`` label, in Prometheus
and in Alertmanager.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmpulse.contract import attributes as A
from llmpulse.processor.kafka import metric_names as K
from llmpulse.processor.metrics import names as M
from llmpulse.stack import replicas
from llmpulse.stack.local import Stack, free_ports
from llmpulse.testing.otlp import llm_attributes, make_request, make_span
from llmpulse.testing.polling import wait_until
from tests.stack.test_end_to_end import Prometheus

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
REPLICAS = 2
KEYS = [
    (service, feature)
    for service in ("shop", "blog", "wiki")
    for feature in ("chat", "search", "summary", "faq")
]
CALLS_PER_KEY = 20  # each call a trace of its own, so they spread over the collector's partitions
BURST_KEY = ("shop", "checkout")
_ids = itertools.count(1)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path / "state", free_ports(REPLICAS), replicas=REPLICAS)
    lines: list[str] = []
    try:
        assert stack.up(lines.append) == 0, "\n".join(lines)
        yield stack
    finally:
        stack.down(lines.append)


def _request(service: str, feature: str, calls: int, *, failed: bool = False) -> bytes:
    """One OTLP request of ``calls`` LLM calls of (service, feature), each in its own trace."""
    spans = []
    for _ in range(calls):
        n = next(_ids)
        overrides: dict[str, Any] = {A.FEATURE: feature, A.GEN_AI_RESPONSE_ID: f"resp-{n}"}
        if failed:
            overrides.update({A.ERROR_TYPE: "RateLimitError", A.FINISH_REASON: None})
        spans.append(
            make_span(
                llm_attributes(**overrides),
                trace_id=n.to_bytes(16, "big"),
                span_id=n.to_bytes(8, "big"),
                name="chat gpt-4o",
                kind=Span.SPAN_KIND_CLIENT,
                status_code=2 if failed else 0,
            )
        )
    return make_request(spans, resource={"service.name": service}).SerializeToString()


def _send(stack: Stack, payloads: list[bytes]) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{stack.ports.collector_grpc}") as channel:
        export = channel.unary_unary(EXPORT)
        for payload in payloads:
            export(payload, timeout=10)


def _by_key(prometheus: Prometheus, expr: str) -> dict[tuple[str, str], float]:
    return {
        (s["metric"].get("service", ""), s["metric"].get("feature", "")): float(s["value"][1])
        for s in prometheus.query(expr)
    }


def test_two_replicas_behind_kafka_sum_exactly_with_one_owner_per_key_and_one_alert(stack: Stack) -> None:
    prometheus = Prometheus(stack.ports.prometheus)
    report = stack.health_report() or ""
    assert report.startswith("local stack: all up"), report
    for name in ("postgres", "kafka", "processor-1", "processor-2", "collector", "prometheus"):
        assert f"  {name} " in report, report

    def processor_targets() -> set[str]:
        url = f"http://127.0.0.1:{stack.ports.prometheus}/api/v1/targets"
        active = httpx.get(url, timeout=10).json()["data"]["activeTargets"]
        return {t["labels"]["instance"] for t in active if t["labels"]["job"] == "llmpulse-processor"}

    admin = {f"127.0.0.1:{port}" for port in stack.ports.replica_admin}
    wait_until(lambda: processor_targets() == admin, timeout=30, interval=0.5, message=processor_targets)

    # Both replicas in the group, owning partitions of the owner topic, before traffic starts.
    partitions = replicas.partitions_for(REPLICAS)

    def settled() -> bool:
        owned = [float(s["value"][1]) for s in prometheus.query(K.ASSIGNED_PARTITIONS)]
        return len(owned) == REPLICAS and sum(owned) == partitions and min(owned) > 0

    wait_until(settled, timeout=90, interval=1, message=lambda: prometheus.query(K.ASSIGNED_PARTITIONS))

    _send(stack, [_request(s, f, CALLS_PER_KEY // 2) for s, f in KEYS for _ in range(2)])
    # the burst's key: calls and a few errors first, so its series exist before the burst
    _send(stack, [_request(*BURST_KEY, 30), _request(*BURST_KEY, 2, failed=True)])
    expected = {key: float(CALLS_PER_KEY) for key in KEYS} | {BURST_KEY: 32.0}
    sums = f"sum by (service, feature) ({M.REQUESTS_TOTAL})"
    wait_until(
        lambda: _by_key(prometheus, sums) == expected,
        timeout=90,
        interval=1,
        message=lambda: f"{_by_key(prometheus, sums)} != {expected}",
    )
    _send(stack, [_request(*BURST_KEY, 30, failed=True)])
    expected[BURST_KEY] = 62.0
    wait_until(
        lambda: _by_key(prometheus, sums) == expected,
        timeout=60,
        interval=1,
        message=lambda: f"{_by_key(prometheus, sums)} != {expected}",
    )

    # `llmpulse status` shows the replicas as one: every key once, with its owner's windows.
    urls = stack.processor_urls()
    store = stack.store_location()  # what `llmpulse triage` and friends open with no flags
    assert store is not None and store.startswith("postgresql://llmpulse@127.0.0.1:"), store
    assert urls == [f"http://127.0.0.1:{port}" for port in stack.ports.replica_admin], urls
    status = subprocess.run(
        [sys.executable, "-m", "llmpulse.cli", "status", "--json", *(a for u in urls for a in ("--url", u))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout)
    assert document["replicas"] == REPLICAS, document
    shown = {(s, f): w["5m"]["requests"] for s, fs in document["services"].items() for f, w in fs.items()}
    assert shown == expected, shown
    assert document["spans"]["received"] >= sum(expected.values()), document["spans"]
    table = subprocess.run(
        [sys.executable, "-m", "llmpulse.cli", "status", *(a for u in urls for a in ("--url", u))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert table.returncode == 0 and f"running ({REPLICAS} replicas)" in table.stdout, table
    gone = subprocess.run(  # one replica unreachable: the others' table, one line, exit 1
        [sys.executable, "-m", "llmpulse.cli", "status", "--url", urls[0], "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert gone.returncode == 1 and "cannot reach the processor at http://127.0.0.1:9/" in gone.stderr, gone
    assert "Traceback" not in gone.stderr and "service" in gone.stdout, gone

    # One owner per (service, feature): one replica exports each key's series; both own some.
    owners = _by_key(
        prometheus,
        f"count by (service, feature) (count by (service, feature, instance) ({M.REQUESTS_TOTAL}))",
    )
    assert owners == {key: 1.0 for key in expected}, owners
    busy = prometheus.query(f"count by (instance) ({M.REQUESTS_TOTAL})")
    assert len(busy) == REPLICAS, busy

    # The error burst: one alert for its (service, feature), not one per replica.
    service, feature = BURST_KEY
    selector = f'ALERTS{{alertname="LLMPulseErrorRateHigh", service="{service}", feature="{feature}"}}'
    alerts = wait_until(lambda: prometheus.query(selector), timeout=60, interval=1)
    assert len(alerts) == 1, alerts
    assert "instance" not in alerts[0]["metric"], alerts
    others = prometheus.query('ALERTS{alertname="LLMPulseErrorRateHigh"}')
    assert {(a["metric"]["service"], a["metric"]["feature"]) for a in others} == {BURST_KEY}, others
    am = f"http://127.0.0.1:{stack.ports.alertmanager}/api/v2/alerts"

    def in_alertmanager() -> list[dict[str, Any]]:
        found = httpx.get(am, params={"filter": 'alertname="LLMPulseErrorRateHigh"'}, timeout=10).json()
        return list(found)

    received = wait_until(in_alertmanager, timeout=60, interval=1)
    assert [(a["labels"]["service"], a["labels"]["feature"]) for a in received] == [BURST_KEY], received


def test_up_refuses_another_shape_and_a_bad_count(tmp_path: Path) -> None:
    """A stack recorded with replicas is not silently replaced by a one-processor one, and
    ``--replicas`` takes a count from 1 to 32 (one line, no traceback)."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "stack.json").write_text(
        json.dumps(
            {"ports": {}, "replicas": 2, "services": [{"name": "kafka", "pid": 1, "url": "", "log": ""}]}
        )
    )
    lines: list[str] = []
    assert Stack(state).up(lines.append) == 1
    assert lines == [
        "llmpulse stack is running with 2 processor replicas, not one processor: "
        "`llmpulse down` first, then `llmpulse up` again"
    ]
    bad = subprocess.run(
        [sys.executable, "-m", "llmpulse.cli", "up", "--replicas", "0", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "expected a number of replicas from 1 to 32, got '0'" in bad.stderr
    assert "Traceback" not in bad.stderr
