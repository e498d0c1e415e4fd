"""Three ``llmpulse serve`` replicas behind the built collector and a real Kafka broker: the sums of
their scraped counters equal what was sent, also when one is killed with SIGKILL mid-run (its
partitions move, the survivors resume from its committed offsets, nothing lost or counted twice)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from llmpulse.processor.metrics import names as M
from llmpulse.stack import components
from llmpulse.stack.kafka import KafkaBroker
from tests.kafka.helpers import llm_request, sample, scrape

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
REPLICAS = 3
PARTITIONS = 6
REQUESTS = 120
TRACES_PER_REQUEST = 10  # each a trace of its own: the exporter writes one Kafka record per trace
SPANS_PER_TRACE = 4
FEATURES = tuple(f"feature-{i}" for i in range(8))


class Replica:
    def __init__(
        self,
        brokers: str,
        topic: str,
        group: str,
        log: Path,
        owner_topic: str | None,
        *,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.admin_port = components.free_port()
        self.log = log
        self.last_accepted = 0.0  # the counts of this replica's last successful scrape
        self.features: dict[str, float] = {}  # feature -> requests counted, at the last scrape
        self.scrapes = 0
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "llmpulse"),
                "serve",
                *("--grpc-port", "0", "--http-port", "0", "--admin-port", str(self.admin_port)),
                *("--kafka-brokers", brokers, "--kafka-topic", topic, "--kafka-group", group),
                *("--kafka-session-timeout", "6"),
                *(("--kafka-owner-topic", owner_topic) if owner_topic else ()),
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LLMPULSE_CONFIG": "", **(env or {})},
        )

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/readyz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def scrape_once(self) -> None:
        try:
            status, body = scrape(self.admin_port)
        except OSError:
            return
        if status == 200:
            self.last_accepted = sample(body, M.SPANS_ACCEPTED_TOTAL)
            self.features = {f: sample(body, M.REQUESTS_TOTAL, feature=f) for f in FEATURES}
            self.scrapes += 1

    def status(self) -> dict:  # type: ignore[type-arg]
        import json

        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/api/status", timeout=5) as r:
            return json.load(r)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


@pytest.fixture(params=["by-trace", "by-feature"])
def replicas(kafka_broker: KafkaBroker, new_topic, tmp_path: Path, request):  # type: ignore[no-untyped-def]
    """Three replicas reading the collector's topic (by trace), or routing it by feature first."""
    topic = new_topic(PARTITIONS)
    owner_topic = new_topic(PARTITIONS) if request.param == "by-feature" else None
    group = f"replicas-{topic}"
    started = [
        Replica(kafka_broker.bootstrap_servers, topic, group, tmp_path / f"replica-{i}.log", owner_topic)
        for i in range(REPLICAS)
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(r.ready() for r in started):
            for r in started:
                if r.process.poll() is not None:
                    pytest.fail(f"replica exited {r.process.returncode}:\n{r.log.read_text()[-2000:]}")
            assert time.monotonic() < deadline, "replicas not ready in 60 s"
            time.sleep(0.2)
        yield topic, started, owner_topic
    finally:
        for r in started:
            r.stop()


def test_three_replicas_count_every_span_once_through_a_sigkill(
    kafka_broker: KafkaBroker, replicas, start_collector
) -> None:  # type: ignore[no-untyped-def]
    topic, group, owner_topic = replicas
    collector = start_collector(
        "127.0.0.1:1",  # unused: this config exports to Kafka
        config=components.REPO_ROOT / "otel-collector-kafka.yaml",
        env={"LLMPULSE_KAFKA_BROKERS": kafka_broker.bootstrap_servers, "LLMPULSE_KAFKA_TOPIC": topic},
    )
    # every replica owns partitions before traffic starts
    deadline = time.monotonic() + 60
    while sum(len(r.status()["kafka"]["partitions"]) for r in group) != PARTITIONS or not all(
        r.status()["kafka"]["partitions"] for r in group
    ):
        assert time.monotonic() < deadline, [r.status()["kafka"] for r in group]
        time.sleep(0.2)

    stop = threading.Event()

    def scraper() -> None:  # Prometheus' part: scrape every replica every 300 ms
        while not stop.is_set():
            for r in group:
                if r.process.poll() is None:
                    r.scrape_once()
            stop.wait(0.3)

    thread = threading.Thread(target=scraper, daemon=True)
    thread.start()
    victim = group[0]
    sent = 0
    try:
        with grpc.insecure_channel(collector.grpc_endpoint) as channel:
            export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
            for i in range(REQUESTS):
                body = b"".join(
                    llm_request(
                        SPANS_PER_TRACE, features=(FEATURES[(i * TRACES_PER_REQUEST + t) % len(FEATURES)],)
                    )
                    for t in range(TRACES_PER_REQUEST)
                )
                export(body, timeout=30)
                sent += TRACES_PER_REQUEST * SPANS_PER_TRACE
                if i == REQUESTS // 2:
                    deadline = time.monotonic() + 30
                    while victim.last_accepted == 0:
                        assert time.monotonic() < deadline, "the victim never showed a count"
                        time.sleep(0.1)
                    victim.process.send_signal(signal.SIGKILL)
                    victim.process.wait(10)
                time.sleep(0.02)
        survivors = group[1:]
        deadline = time.monotonic() + 90
        while True:
            total = victim.last_accepted + sum(r.last_accepted for r in survivors)
            if total == sent or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        time.sleep(2.0)  # and it stays there: nothing arrives twice late
        total = victim.last_accepted + sum(r.last_accepted for r in survivors)
    finally:
        stop.set()
        thread.join(5)
    owned = sorted(p for r in survivors for p in r.status()["kafka"]["partitions"])
    assert owned == list(range(PARTITIONS)), owned
    assert victim.last_accepted > 0
    assert total == sent, (
        f"sent {sent}, the replicas' last scrapes sum to {total} "
        f"(victim {victim.last_accepted}, survivors {[r.last_accepted for r in survivors]})"
    )
    for feature in FEATURES:
        assert sum(r.features.get(feature, 0) for r in group) == sent / len(FEATURES), feature
    owners = {f: [i for i, r in enumerate(survivors) if r.features.get(f, 0) > 0] for f in FEATURES}
    if owner_topic is None:
        # by trace: a feature's calls are spread over the replicas (what the owner topic fixes)
        assert any(len(counted_by) > 1 for counted_by in owners.values()), owners
        return
    # by feature: among the survivors, who finished the run, each feature has exactly one owner
    # (a feature the victim owned and had finished before it died may have none)
    victim_features = {f for f in FEATURES if victim.features.get(f, 0) > 0}
    for feature, counted_by in owners.items():
        assert len(counted_by) == 1 or (feature in victim_features and not counted_by), (feature, owners)
