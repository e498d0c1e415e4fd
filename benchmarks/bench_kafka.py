"""Benchmark: spans/s and CPU per span through the collector and Kafka with 1, 2 and 3 replicas.

One run starts a throwaway Kafka broker (``llmpulse.stack.kafka``) and, for each replica count,
a fresh topic, the built collector with ``otel-collector-kafka.yaml`` and N ``llmpulse serve
--kafka-brokers`` replicas in one consumer group; sends ``--spans`` spans in pre-serialized 512-span
OTLP/gRPC requests to the collector from this process (``otlp_load.py``'s requests: one trace per
span, so the kafka exporter writes one record per span); and waits until the replicas' scraped
``llmpulse_processor_spans_accepted_total`` sum equals what was sent. It reports per replica count:

* wall seconds from the first request to the last span counted, and spans/s;
* CPU seconds (user + system, /proc) of the replicas together, of the collector and of the broker,
  and microseconds of replica CPU per span, also per replica (the figure that should stay flat);
* the accounting: sent minus counted, which must be 0.

The 1-replica row is the same-run baseline. On this 2-core machine shared with other work the
replicas, the collector, the broker and the load generator compete for the same cores: wall-clock
spans/s does not scale with replicas here; CPU per span is the figure to compare.

Usage: ``python benchmarks/bench_kafka.py [--spans N] [--replicas 1,2,3] [--owner-topic]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from otlp_load import run as send_load

from llmpulse.stack import components
from llmpulse.stack.kafka import KafkaBroker

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 6


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def accepted(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return -1.0
    total = 0.0
    for line in text.splitlines():
        if line.startswith("llmpulse_processor_spans_accepted_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def run_one(broker: KafkaBroker, replicas: int, spans: int, owner_topic: bool, work: Path) -> dict[str, Any]:
    topic = f"bench-{replicas}-{time.monotonic_ns()}"
    broker.create_topic(topic, PARTITIONS)
    extra: list[str] = []
    if owner_topic:
        broker.create_topic(topic + "-owners", PARTITIONS)
        extra = ["--kafka-owner-topic", topic + "-owners"]
    ports = [components.free_port() for _ in range(replicas)]
    logs = [open(work / f"{topic}-{i}.log", "wb") for i in range(replicas)]  # noqa: SIM115
    procs = [
        subprocess.Popen(
            [
                str(Path(sys.executable).parent / "llmpulse"),
                "serve",
                *("--grpc-port", "0", "--http-port", "0", "--admin-port", str(port)),
                *("--kafka-brokers", broker.bootstrap_servers, "--kafka-topic", topic),
                *("--kafka-group", f"g-{topic}", "--kafka-session-timeout", "6", *extra),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LLMPULSE_CONFIG": ""},
        )
        for port, log in zip(ports, logs, strict=True)
    ]
    health = f"127.0.0.1:{components.free_port()}"
    grpc_endpoint = f"127.0.0.1:{components.free_port()}"
    collector = components.collector(
        ROOT / "otel-collector-kafka.yaml",
        work / f"collector-{topic}",
        {
            "LLMPULSE_COLLECTOR_GRPC_ENDPOINT": grpc_endpoint,
            "LLMPULSE_COLLECTOR_HTTP_ENDPOINT": f"127.0.0.1:{components.free_port()}",
            "LLMPULSE_COLLECTOR_HEALTH_ENDPOINT": health,
            "LLMPULSE_COLLECTOR_METRICS_PORT": str(components.free_port()),
            "LLMPULSE_KAFKA_BROKERS": broker.bootstrap_servers,
            "LLMPULSE_KAFKA_TOPIC": topic,
        },
        health,
    )
    (work / f"collector-{topic}").mkdir()
    collector.start()
    try:
        deadline = time.monotonic() + 60
        while not all(accepted(p) >= 0 for p in ports):
            assert time.monotonic() < deadline, "replicas not up in 60 s"
            time.sleep(0.2)
        time.sleep(3.0)  # the group settles: every replica owns partitions
        cpu0 = [cpu_seconds(p.pid) for p in procs]
        col0, brk0 = cpu_seconds(collector.pid or 0), cpu_seconds(broker.pid or 0)
        started = time.perf_counter()
        sent = int(asyncio.run(send_load(grpc_endpoint, spans, concurrency=4, pool=16))["sent_spans"])
        deadline = time.monotonic() + 300
        counted = 0.0
        while time.monotonic() < deadline:
            counted = sum(accepted(p) for p in ports)
            if counted >= sent:
                break
            time.sleep(1.0)  # a scrape costs the replicas CPU too: about Prometheus' rate in a test
        wall = time.perf_counter() - started
        each_cpu = [cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0, strict=True)]
        each_counted = [accepted(p) for p in ports]
        cpu = sum(each_cpu)
        per_replica = [c / n * 1e6 for c, n in zip(each_cpu, each_counted, strict=True) if n > 0]
        return {
            "per_replica_us": per_replica,
            "replicas": replicas,
            "sent": sent,
            "counted": counted,
            "wall_s": wall,
            "replica_cpu_s": cpu,
            "collector_cpu_s": cpu_seconds(collector.pid or 0) - col0,
            "broker_cpu_s": cpu_seconds(broker.pid or 0) - brk0,
        }
    finally:
        collector.stop()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--spans", type=int, default=51_200, help="spans per replica count (default %(default)s)"
    )
    parser.add_argument(
        "--replicas", default="1,2,3", help="comma-separated replica counts (default %(default)s)"
    )
    parser.add_argument("--owner-topic", action="store_true", help="route by (service, feature) first")
    args = parser.parse_args(argv)
    counts = [int(n) for n in re.split(r"[, ]+", args.replicas) if n]
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="llmpulse-bench-kafka-") as tmp,
        KafkaBroker(partitions=PARTITIONS) as broker,
    ):
        for n in counts:
            rows.append(run_one(broker, n, args.spans, args.owner_topic, Path(tmp)))
    print(
        f"cores: {os.cpu_count()}  spans per row: {args.spans}  partitions: {PARTITIONS}  "
        f"owner topic: {args.owner_topic}"
    )
    print(
        f"{'replicas':>8} {'sent':>8} {'lost':>5} {'wall s':>7} {'spans/s':>8} {'replica cpu s':>13} "
        f"{'us/span':>8} {'us/span each replica':>22} {'collector cpu s':>15} {'broker cpu s':>12}"
    )
    base = None
    for r in rows:
        per_span = r["replica_cpu_s"] / r["sent"] * 1e6
        base = base or per_span
        each = "/".join(f"{v:.0f}" for v in r["per_replica_us"])
        print(
            f"{r['replicas']:>8.0f} {r['sent']:>8.0f} {r['sent'] - r['counted']:>5.0f} {r['wall_s']:>7.1f} "
            f"{r['sent'] / r['wall_s']:>8.0f} {r['replica_cpu_s']:>13.2f} {per_span:>8.1f} "
            f"{each:>22} {r['collector_cpu_s']:>15.2f} {r['broker_cpu_s']:>12.2f}"
        )
    relative = [round(r["replica_cpu_s"] / r["sent"] * 1e6 / base, 2) for r in rows]
    print(f"replica CPU per span relative to 1 replica: {relative}")
    return 0 if all(r["sent"] == r["counted"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
