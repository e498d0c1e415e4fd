"""Three replicas routing by feature, their state in a real PostgreSQL: when the owner of a
(service, feature) is killed with SIGKILL, the replica that gets its owner-topic partition resumes
the feature's SPC charts from the store (same centre, no new warm-up, no alarm), only one replica
at a time exports a feature's SPC gauges, and ``llmpulse triage --store-url`` sees the flagged
samples of all three replicas."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmpulse.contract import attributes as A
from llmpulse.processor.quality import metric_names as Q
from llmpulse.stack.kafka import KafkaBroker
from llmpulse.testing.otlp import llm_attributes, make_request, make_span
from tests.kafka.helpers import produce, sample, scrape
from tests.kafka.test_replicas import Replica

PARTITIONS = 6
FEATURES = tuple(f"feature-{i}" for i in range(6))
WINDOW = 10  # calls per SPC point
WARMUP = 5  # points before a baseline
CONFIG = f"""
[quality.spc]
requests_per_window = {WINDOW}
warmup_windows = {WARMUP}

[drift]
enabled = false
"""
LATENCY = Q.STAT_LATENCY_P95
LLMPULSE = str(Path(sys.executable).parent / "llmpulse")
_ids = iter(range(1, 10**9))


CYCLE = (0.50, 0.58, 0.52, 0.56, 0.54)  # each window's latency: the warm-up sees the spread
_counts: dict[str, int] = {}


def calls(feature: str, count: int) -> list[tuple[bytes, bytes]]:
    """``count`` single-call traces of ``feature``, as Kafka records keyed by the feature (so the
    router keeps their order); all calls of a window have its latency from :data:`CYCLE`, so
    the windows after the warm-up stay well inside the limits (an alarm would be the hand-over's)."""
    out = []
    for _ in range(count):
        n, i = next(_ids), _counts.get(feature, 0)
        _counts[feature] = i + 1
        finish = "length" if i % 10 == 0 else "stop"  # truncated: flagged into the store
        attributes = {A.FEATURE: feature, A.GEN_AI_RESPONSE_ID: f"resp-{n}", A.FINISH_REASON: finish}
        span = make_span(
            llm_attributes(**attributes, **{A.GEN_AI_RESPONSE_FINISH_REASONS: [finish]}),
            start_ns=time.time_ns(),  # recent: the store's retention prunes old samples
            trace_id=n.to_bytes(16, "big"),
            span_id=n.to_bytes(8, "big"),
            name="chat gpt-4o",
            kind=Span.SPAN_KIND_CLIENT,
            duration_s=CYCLE[(i // WINDOW) % len(CYCLE)],
        )
        request = make_request([span], resource={"service.name": "app"})
        out.append((feature.encode(), request.SerializeToString()))
    return out


def charts(replica: Replica) -> dict[str, dict[str, float]]:
    """feature -> {centre, upper, warmup, alarm} of its latency chart, for the charts this replica exports."""
    for _ in range(20):  # a scrape during a rebalance may answer 503 (its commit was refused)
        status, body = scrape(replica.admin_port)
        if status == 200:
            break
        time.sleep(0.3)
    assert status == 200, body[-500:]
    out = {}
    for feature in FEATURES:
        labels = {"feature": feature, "statistic": LATENCY}
        if not any(
            line.startswith(Q.SPC_CENTRE + "{") and f'feature="{feature}"' in line and LATENCY in line
            for line in body.splitlines()
        ):
            continue
        out[feature] = {
            "centre": sample(body, Q.SPC_CENTRE, **labels),
            "upper": sample(body, Q.SPC_UPPER, **labels),
            "warmup": sample(body, Q.SPC_WARMUP, **labels),
            "alarm": sample(body, Q.SPC_ALARM, **labels),
        }
    return out


def exported(group: list[Replica]) -> dict[str, list[tuple[int, dict[str, float]]]]:
    """feature -> [(replica index, its latency chart)] over the live replicas."""
    found: dict[str, list[tuple[int, dict[str, float]]]] = {f: [] for f in FEATURES}
    for i, r in enumerate(group):
        if r.process.poll() is None:
            for feature, chart in charts(r).items():
                found[feature].append((i, chart))
    return found


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def test_new_owner_resumes_the_charts_from_postgres(
    kafka_broker: KafkaBroker, new_topic, new_pg_database, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    topic, owner_topic = new_topic(PARTITIONS), new_topic(PARTITIONS)
    url = new_pg_database()
    config = tmp_path / "llmpulse.toml"
    config.write_text(CONFIG)
    brokers = kafka_broker.bootstrap_servers
    group = [
        Replica(
            brokers,
            topic,
            f"takeover-{topic}",
            tmp_path / f"replica-{i}.log",
            owner_topic,
            args=("--config", str(config)),
            env={"LLMPULSE_STORE_URL": url},
        )
        for i in range(3)
    ]
    try:
        wait_for(lambda: all(r.ready() for r in group), "replicas not ready")
        wait_for(
            lambda: (
                sum(len(r.status()["kafka"]["partitions"]) for r in group) == PARTITIONS
                and all(r.status()["kafka"]["partitions"] for r in group)
            ),
            "partitions not spread over the replicas",
        )
        # warm-up and a few points past it: every feature gets a baseline on its one owner
        produce(brokers, topic, [rec for f in FEATURES for rec in calls(f, WINDOW * (WARMUP + 2))])

        def baselines_fixed() -> bool:
            found = exported(group)
            return all(len(v) == 1 and v[0][1]["warmup"] == 0 for v in found.values())

        wait_for(baselines_fixed, f"every feature charted by one replica: {exported(group)}")
        time.sleep(2.5)  # a fixed baseline is in the store within 1 s
        before = {f: v[0] for f, v in exported(group).items()}
        victim_index = before[FEATURES[0]][0]
        moved = sorted(f for f, (i, _chart) in before.items() if i == victim_index)
        victim = group[victim_index]
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(10)

        # fewer calls than a warm-up: a new owner that started fresh would still be warming up
        produce(brokers, topic, [rec for f in FEATURES for rec in calls(f, WINDOW * 3)])

        def taken_over() -> bool:
            found = exported(group)
            return all(len(found[f]) == 1 and found[f][0][0] != victim_index for f in moved)

        wait_for(taken_over, f"{moved} not taken over: {exported(group)}", timeout=90)
        time.sleep(1.0)
        after = exported(group)
        owners = {i for v in after.values() for i, _chart in v} | {victim_index}
    finally:
        for r in group:
            r.stop()
    for feature in FEATURES:
        assert len(after[feature]) == 1, (feature, after[feature])  # one exporter per feature
    for feature in moved:
        (new_owner, chart), (_old, old) = after[feature][0], before[feature]
        assert chart["warmup"] == 0, (feature, chart)
        assert chart["centre"] == old["centre"], (feature, old, chart)
        assert chart["upper"] != 0 and chart["alarm"] == 0, (feature, chart)
        assert "event=spc_charts_resumed" in group[new_owner].log.read_text()
    assert moved, before
    # the flagged samples of every replica (the victim's too) are in the one store
    triage = subprocess.run(
        [LLMPULSE, "triage", "--store-url", url, "--json", "--limit", "10000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert triage.returncode == 0, triage.stderr
    flagged = [json.loads(line) for line in triage.stdout.splitlines() if line.strip()]
    per_feature = Counter(f["feature"] for f in flagged)
    assert len(owners) == 3, owners  # the features were charted by all three replicas
    # one call in ten truncated; a replay after the kill may flag a call twice
    assert set(per_feature) == set(FEATURES) and min(per_feature.values()) >= 10, per_feature
