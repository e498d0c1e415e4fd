"""``llmpulse up --replicas 2``: the stack with Kafka between the collector and two processor
replicas, their state in PostgreSQL, Prometheus scraping both (and the only scraper of them).

Real parts only: the built collector with ``otel-collector-kafka.yaml``, a Kafka broker, a
PostgreSQL cluster, two ``llmpulse serve`` replicas in one consumer group with the owner topic,
Prometheus with the shipped rules and Alertmanager. Traffic goes to the collector over OTLP/gRPC.
Checked in Prometheus: the calls per (service, feature) equal what was sent; each (service,
feature) is exported by exactly one replica, and both replicas own some; an error burst gives one
LLMPulseErrorRateHigh alert per (service, feature), without an ``instance`` label, in Prometheus
and in Alertmanager; the dashboards' panels show one series per key with its value.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
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
from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.store import FlaggedRecord
from llmpulse.processor.store.factory import open_store
from llmpulse.stack import replicas
from llmpulse.stack.local import Stack, free_ports
from llmpulse.testing.otlp import llm_attributes, make_request, make_span
from llmpulse.testing.polling import wait_until
from tests.stack.conftest import PanelQuery
from tests.stack.replica_queries import PER_KEY_SERIES
from tests.stack.test_end_to_end import Prometheus
from tests.stack.test_metric_names import grafana_to_promql, series_names

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


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the module's tests (each sends traffic of its own keys)."""
    stack = Stack(tmp_path_factory.mktemp("replicas") / "state", free_ports(REPLICAS), replicas=REPLICAS)
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


def _ready(stack: Stack, prometheus: Prometheus) -> None:
    """Wait until Prometheus scrapes both replicas and both own partitions of the owner topic."""

    def processor_targets() -> set[str]:
        url = f"http://127.0.0.1:{stack.ports.prometheus}/api/v1/targets"
        active = httpx.get(url, timeout=10).json()["data"]["activeTargets"]
        return {t["labels"]["instance"] for t in active if t["labels"]["job"] == "llmpulse-processor"}

    admin = {f"127.0.0.1:{port}" for port in stack.ports.replica_admin}
    wait_until(lambda: processor_targets() == admin, timeout=30, interval=0.5, message=processor_targets)
    partitions = replicas.partitions_for(REPLICAS)

    def settled() -> bool:
        owned = [float(s["value"][1]) for s in prometheus.query(K.ASSIGNED_PARTITIONS)]
        return len(owned) == REPLICAS and sum(owned) == partitions and min(owned) > 0

    wait_until(settled, timeout=90, interval=1, message=lambda: prometheus.query(K.ASSIGNED_PARTITIONS))


def test_two_replicas_behind_kafka_sum_exactly_with_one_owner_per_key_and_one_alert(stack: Stack) -> None:
    prometheus = Prometheus(stack.ports.prometheus)
    report = stack.health_report() or ""
    assert report.startswith("local stack: all up"), report
    for name in ("postgres", "kafka", "processor-1", "processor-2", "collector", "prometheus"):
        assert f"  {name} " in report, report

    # Both replicas in the group, owning partitions of the owner topic, before traffic starts.
    _ready(stack, prometheus)

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


def _range(stack: Stack, expr: str, seconds: float = 90.0) -> list[dict[str, Any]]:
    """``expr`` over the last ``seconds`` at a 5 s step, as a Grafana time-series panel asks."""
    now = time.time()
    answer = httpx.get(
        f"http://127.0.0.1:{stack.ports.prometheus}/api/v1/query_range",
        params={"query": expr, "start": now - seconds, "end": now, "step": 5},
        timeout=10,
    ).json()
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def _last(series: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
    """Each series' last value by ``labels``; a label set twice fails (two lines of one key)."""
    found: dict[tuple[str, ...], float] = {}
    for one in series:
        key = tuple(one["metric"].get(label, "") for label in labels)
        assert key not in found, f"two series for {key}: {series}"
        found[key] = float(one["values"][-1][1])
    return found


def test_dashboard_panels_show_one_series_per_key_with_the_value_across_replicas(
    stack: Stack, dashboard_queries: list[PanelQuery]
) -> None:
    """Every panel on a per-key series, on Prometheus scraping two replicas: no series split by
    ``instance``. The judge's agreement with human labels, exported by both replicas (each reads
    the shared store), shows once per (service, feature) with the store's ratio; the SPC charts,
    exported by the key's owner, once per chart with the owner's value."""
    prometheus = Prometheus(stack.ports.prometheus)
    _ready(stack, prometheus)
    url = f"postgresql://llmpulse@127.0.0.1:{stack.ports.postgres}/postgres"
    labelled = {("shop", "labelled"): ("bad", "bad", "bad", "good"), ("blog", "labelled"): ("good", "good")}
    with open_store(url) as store:  # judged samples with human labels, as `llmpulse triage label` leaves them
        for (service, feature), labels in labelled.items():
            for label in labels:
                n = next(_ids)
                sample = store.flagged.add(
                    FlaggedRecord(
                        feature=feature,
                        model="gpt-4o",
                        trace_id=n.to_bytes(16, "big"),
                        sources=("judge",),
                        reasons=("low_overall",),
                        created=time.time(),
                        service=service,
                        judge_verdict="bad",
                    )
                )
                assert store.flagged.label(sample, label)
    charted = ("shop", "charted")
    _send(stack, [_request(*charted, 50) for _ in range(3)])  # one 100-call window and more: SPC points

    agreement = f'{Q.JUDGE_AGREEMENT_RATIO}{{feature="labelled"}}'
    wait_until(  # both replicas' ticks (15 s) have read the store: the raw gauge is doubled
        lambda: len(prometheus.query(agreement)) == 2 * len(labelled),
        timeout=60,
        interval=1,
        message=lambda: prometheus.query(agreement),
    )
    warmup = f'{Q.SPC_WARMUP}{{service="shop", feature="charted"}}'
    wait_until(
        lambda: prometheus.query(warmup), timeout=60, interval=1, message="no SPC chart of shop/charted"
    )
    time.sleep(6)  # a scrape more, so the last point of every range has both replicas' samples

    per_key = [q for q in dashboard_queries if series_names(q.expr) & PER_KEY_SERIES]
    assert len(per_key) >= 20, per_key
    for q in per_key:
        for one in _range(stack, grafana_to_promql(q.expr)):
            assert "instance" not in one["metric"], f"{q}: {one['metric']}"

    def panel(title: str) -> str:
        (found,) = [q for q in per_key if q.panel == title]
        return grafana_to_promql(found.expr)

    ratio = _last(_range(stack, panel("Judge agreement with human labels")), "service", "feature")
    assert ratio == {("shop", "labelled"): 0.75, ("blog", "labelled"): 0.0}, ratio  # the judge said bad
    count = _last(_range(stack, panel("Human-labelled judged samples")), "service", "feature")
    assert count == {("shop", "labelled"): 4.0, ("blog", "labelled"): 2.0}, count

    owner = {
        (s["metric"]["statistic"],): float(s["value"][1]) for s in prometheus.query(warmup)
    }  # the owner's own series: one per chart, all on one instance
    assert len({s["metric"]["instance"] for s in prometheus.query(warmup)}) == 1
    shown = {
        key[2:]: value
        for key, value in _last(
            _range(stack, panel("Charts in warm-up")), "service", "feature", "statistic"
        ).items()
        if key[:2] == charted
    }
    assert shown == owner and owner, (shown, owner)


def test_a_take_over_is_one_line_on_the_dashboard(stack: Stack, dashboard_queries: list[PanelQuery]) -> None:
    """The owner of a feature is killed (SIGKILL) and the other replica takes its partition and
    charts over: Prometheus holds the chart's series under two instances, the dashboard panel
    one line through the take-over. Runs last: it leaves one replica standing."""
    prometheus = Prometheus(stack.ports.prometheus)
    _ready(stack, prometheus)
    key = ("wiki", "moved")
    _send(stack, [_request(*key, 50) for _ in range(3)])  # a window and more: SPC points
    raw = f'{Q.SPC_WARMUP}{{service="{key[0]}", feature="{key[1]}", statistic="{Q.STAT_LATENCY_P95}"}}'
    (before,) = wait_until(lambda: prometheus.query(raw), timeout=60, interval=1, message="no chart yet")
    owner = before["metric"]["instance"]
    ports = [f"127.0.0.1:{port}" for port in stack.ports.replica_admin]
    name = f"processor-{ports.index(owner) + 1}"
    (service,) = [s for s in stack.recorded() if s.name == name]
    time.sleep(6)  # a scrape more of the owner: the chart has points before the kill
    killed_at = time.time()
    os.kill(service.pid, signal.SIGKILL)

    def taken_over() -> list[dict[str, Any]]:
        _send(stack, [_request(*key, 50)])  # points for the new owner, once it resumed the key
        return [s for s in prometheus.query(raw) if s["metric"]["instance"] != owner]

    wait_until(taken_over, timeout=90, interval=3, message=lambda: prometheus.query(raw))
    time.sleep(6)  # one more scrape of the survivor
    seconds = time.time() - killed_at + 60
    instances = {s["metric"]["instance"] for s in _range(stack, raw, seconds)}
    assert instances == set(ports), instances  # the raw series: one per replica, broken in two
    (panel,) = [q for q in dashboard_queries if q.panel == "Charts in warm-up"]
    lines = [
        s
        for s in _range(stack, grafana_to_promql(panel.expr), seconds)
        if (s["metric"]["service"], s["metric"]["feature"], s["metric"]["statistic"])
        == (*key, Q.STAT_LATENCY_P95)
    ]
    assert len(lines) == 1, lines  # the panel: one line
    times = [float(t) for t, _ in lines[0]["values"]]
    assert min(times) < killed_at - 1 and max(times) > killed_at + 5, (times, killed_at)  # through it


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
