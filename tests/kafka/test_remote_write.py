"""docs/kafka.md's ``remote_write`` snippet, run: a real Prometheus scrapes two Kafka replicas and
remote-writes to a real VictoriaMetrics single-node; the per-(service, feature) sums queried from
VictoriaMetrics' Prometheus API equal what was sent and what Prometheus shows. The snippet is read
from the doc, so the doc and the test cannot drift apart."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmpulse.processor.metrics import names as M
from llmpulse.stack import components
from llmpulse.stack.kafka import KafkaBroker
from llmpulse.stack.victoriametrics import victoriametrics
from tests.kafka.helpers import by_labels, llm_request, produce, promql
from tests.kafka.test_replicas import BY_FEATURE, Replica

DOC = components.REPO_ROOT / "docs" / "kafka.md"
MARKER = "<!-- remote-write-snippet"
DOC_ADDRESS = "victoriametrics:8428"
FEATURES = ("chat", "search", "summary", "triage")
RECORDS = 40
SPANS_PER_RECORD = 5


def documented_snippet() -> str:
    """The yaml block after the marker in docs/kafka.md."""
    text = DOC.read_text()
    assert MARKER in text, f"{DOC} lost its remote-write snippet marker {MARKER!r}"
    found = re.search(r"```yaml\n(.*?)```", text[text.index(MARKER) :], re.DOTALL)
    assert found, f"no yaml block after {MARKER!r} in {DOC}"
    snippet = found.group(1)
    assert snippet.startswith("remote_write:") and DOC_ADDRESS in snippet, snippet
    return snippet


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[str]:
    """A VictoriaMetrics single-node on a free loopback port; yields its base URL."""
    port = components.free_port()
    try:
        process = victoriametrics(tmp_path / "vm", port)
    except components.ComponentMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    process.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


def test_the_documented_remote_write_snippet_ships_exact_sums_to_victoriametrics(
    kafka_broker: KafkaBroker, new_topic, victoria: str, start_prometheus, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    topic = new_topic(4)
    replicas = [
        Replica(kafka_broker.bootstrap_servers, topic, f"rw-{topic}", tmp_path / f"replica-{i}.log", None)
        for i in range(2)
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(r.ready() for r in replicas):
            assert all(r.process.poll() is None for r in replicas), [
                r.log.read_text()[-2000:] for r in replicas
            ]
            assert time.monotonic() < deadline, "replicas not ready in 60 s"
            time.sleep(0.2)
        while not all(r.status()["kafka"]["partitions"] for r in replicas):  # both own partitions
            assert time.monotonic() < deadline, [r.status()["kafka"] for r in replicas]
            time.sleep(0.2)
        targets = ", ".join(f'"{r.instance}"' for r in replicas)
        snippet = documented_snippet().replace(DOC_ADDRESS, victoria.removeprefix("http://"))
        _process, port = start_prometheus(
            f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: llmpulse-processor
    static_configs:
      - targets: [{targets}]
{snippet}"""
        )
        prometheus = f"http://127.0.0.1:{port}"
        produce(
            kafka_broker.bootstrap_servers,
            topic,
            [
                (str(i).encode(), llm_request(SPANS_PER_RECORD, features=(FEATURES[i % len(FEATURES)],)))
                for i in range(RECORDS)
            ],
        )
        want = {("app", f): RECORDS * SPANS_PER_RECORD / len(FEATURES) for f in FEATURES}
        seen: dict[str, dict[tuple[str, ...], float]] = {}
        deadline = time.monotonic() + 90
        for name, base in (("prometheus", prometheus), ("victoriametrics", victoria)):
            while (got := by_labels(promql(base, BY_FEATURE), "service", "feature")) != want:
                assert time.monotonic() < deadline, f"{name} shows {got}, sent {want}"
                time.sleep(0.5)
            seen[name] = got
        counted_by = by_labels(promql(victoria, f"sum by (instance) ({M.REQUESTS_TOTAL})"), "instance")
    finally:
        for r in replicas:
            r.stop()
    assert seen["victoriametrics"] == seen["prometheus"] == want
    # both replicas' series arrived, each under its own instance (by trace, both counted)
    assert sorted(counted_by) == sorted((r.instance,) for r in replicas), counted_by
    assert sum(counted_by.values()) == RECORDS * SPANS_PER_RECORD
