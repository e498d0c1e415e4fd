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
from collections.abc import Iterator
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


class Replica:
    def __init__(self, brokers: str, topic: str, group: str, log: Path) -> None:
        self.admin_port = components.free_port()
        self.log = log
        self.last_accepted = 0.0  # the counts of this replica's last successful scrape
        self.scrapes = 0
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "llmpulse"),
                "serve",
                *("--grpc-port", "0", "--http-port", "0", "--admin-port", str(self.admin_port)),
                *("--kafka-brokers", brokers, "--kafka-topic", topic, "--kafka-group", group),
                *("--kafka-session-timeout", "6"),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LLMPULSE_CONFIG": ""},
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


@pytest.fixture
def replicas(kafka_broker: KafkaBroker, new_topic, tmp_path: Path) -> Iterator[tuple[str, list[Replica]]]:  # type: ignore[no-untyped-def]
    topic = new_topic(PARTITIONS)
    group = f"replicas-{topic}"
    started = [
        Replica(kafka_broker.bootstrap_servers, topic, group, tmp_path / f"replica-{i}.log")
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
        yield topic, started
    finally:
        for r in started:
            r.stop()


def test_three_replicas_count_every_span_once_through_a_sigkill(
    kafka_broker: KafkaBroker, replicas, start_collector
) -> None:  # type: ignore[no-untyped-def]
    topic, group = replicas
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
                body = b"".join(llm_request(SPANS_PER_TRACE) for _ in range(TRACES_PER_REQUEST))
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
