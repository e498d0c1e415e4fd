"""The replicas' deployed configuration, run: the topics job's own script against a real Kafka
broker, then ``llmpulse serve`` with nothing but the environment the compose profile or the
Kubernetes Deployment gives it, against that broker and a real PostgreSQL.

Only the addresses change (``kafka:9092`` and ``postgres:5432`` are this machine's broker and
cluster, the admin port binds loopback on a free port); the topic, group, owner topic and every
other setting are the deployment's own. The replica must reach ready, join the group on the
topics the job made (made after the replica started, in Kubernetes' order), and count what a
collector would write, by (service, feature).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka.admin import AdminClient

from llmpulse.contract import environment_variables as E
from llmpulse.processor.metrics import names as M
from llmpulse.stack import components, replicas
from llmpulse.stack.kafka import KafkaBroker
from tests.deploy.test_kubernetes import image_env, manifests
from tests.kafka.helpers import llm_request, produce, sample, scrape
from tests.stack.test_compose_replicas import compose_config

TOPICS_SCRIPT = "/opt/kafka/bin/kafka-topics.sh"
REQUESTS = 12
FEATURES = ("search", "summarise", "support")


def _compose(tmp_path: Path) -> tuple[str, dict[str, str]]:
    services = compose_config(tmp_path, "replicas")["services"]
    (script,) = services["kafka-topics"]["command"]
    # compose turns $$ into $ when it runs the command
    env = {k: str(v) for k, v in services["processor-1"]["environment"].items()}
    return script.replace("$$", "$"), env


def _kubernetes(tmp_path: Path) -> tuple[str, dict[str, str]]:
    by_kind = {(d["kind"], d["metadata"]["name"]): d for _, d in manifests()}
    (script,) = by_kind[("Job", "llmpulse-kafka-topics")]["spec"]["template"]["spec"]["containers"][0]["args"]
    (container,) = by_kind[("Deployment", "llmpulse-processor")]["spec"]["template"]["spec"]["containers"]
    secret = by_kind[("Secret", "llmpulse-postgres")]["stringData"]
    env = {}
    for entry in container["env"]:
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        env[entry["name"]] = secret[ref["key"]] if ref else str(entry["value"])
    return script, env


@pytest.fixture
def broker() -> Iterator[KafkaBroker]:
    """A fresh broker per deployment: each job creates the same two topic names."""
    try:
        kafka = KafkaBroker()
    except components.ComponentMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    kafka.start()
    yield kafka
    kafka.stop()


def run_topics_job(script: str, broker: KafkaBroker, tmp_path: Path) -> None:
    """The job's script with the image's kafka-topics.sh standing for this checkout's Kafka tools."""
    shim = tmp_path / "kafka-topics.sh"
    shim.write_text(
        f"#!/bin/sh\nexec '{broker.java}' -Xmx128m -XX:TieredStopAtLevel=1 -cp '{broker.lib_dir}/*' "
        'org.apache.kafka.tools.TopicCommand "$@"\n'
    )
    shim.chmod(0o755)
    assert TOPICS_SCRIPT in script and "kafka:9092" in script
    local = script.replace(TOPICS_SCRIPT, str(shim)).replace("kafka:9092", broker.bootstrap_servers)
    for attempt in ("creates", "finds them and leaves them"):  # a re-run job must succeed too
        done = subprocess.run(["/bin/sh", "-c", local], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"the topics job failed when it {attempt}: {done.stdout}{done.stderr}"


def wait_for(check: Callable[[], bool], what: str, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    pytest.fail(f"{what} within {timeout:.0f}s; replica log:\n{log.read_text()[-3000:]}")


def check_topics(script: str, broker: KafkaBroker) -> None:
    partitions = int(re.search(r"--partitions (\d+)", script).group(1))  # type: ignore[union-attr]
    metadata = AdminClient({"bootstrap.servers": broker.bootstrap_servers}).list_topics(timeout=10)
    for topic in (replicas.TOPIC, replicas.OWNER_TOPIC):
        assert len(metadata.topics[topic].partitions) == partitions, topic


# Compose starts the replicas after the topics job has completed (depends_on); nothing orders a
# Kubernetes Job before a Deployment, so there the replica starts first and must wait for them.
@pytest.mark.parametrize(
    ("deployment", "replica_first"), [(_compose, False), (_kubernetes, True)], ids=["compose", "kubernetes"]
)
def test_a_replica_runs_on_the_deployed_environment_alone(
    deployment: Callable[[Path], tuple[str, dict[str, str]]],
    replica_first: bool,
    broker: KafkaBroker,
    new_pg_database: Callable[[], str],
    tmp_path: Path,
) -> None:
    script, deployed = deployment(tmp_path)
    if not replica_first:
        run_topics_job(script, broker, tmp_path)
        check_topics(script, broker)
    store_url = new_pg_database()
    admin_port = components.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMPULSE_")}
    env.update(image_env())
    env.update(deployed)
    env.update(
        {
            E.LLMPULSE_KAFKA_BROKERS: broker.bootstrap_servers,
            E.LLMPULSE_STORE_URL: store_url,
            E.LLMPULSE_HOST: "127.0.0.1",
            E.LLMPULSE_GRPC_PORT: "0",
            E.LLMPULSE_HTTP_PORT: "0",
            E.LLMPULSE_ADMIN_HOST: "127.0.0.1",
            E.LLMPULSE_ADMIN_PORT: str(admin_port),
        }
    )
    changed = {k for k in deployed if deployed[k] != env[k]}
    addresses = {E.LLMPULSE_KAFKA_BROKERS, E.LLMPULSE_STORE_URL, E.LLMPULSE_HOST, E.LLMPULSE_ADMIN_HOST}
    addresses |= {E.LLMPULSE_GRPC_PORT, E.LLMPULSE_HTTP_PORT, E.LLMPULSE_ADMIN_PORT}
    assert changed <= addresses, "only addresses may differ from the deployment's environment"
    log = tmp_path / "replica.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "llmpulse"), "serve"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    try:

        def ready() -> bool:
            assert process.poll() is None, (
                f"the replica exited ({process.returncode}):\n{log.read_text()[-3000:]}"
            )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(ready, "the replica was not ready", log)
        if replica_first:
            run_topics_job(script, broker, tmp_path)
            check_topics(script, broker)
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/api/status", timeout=5) as r:
            kafka = json.load(r)["kafka"]
        assert (kafka["group"], kafka["brokers"]) == (
            deployed[E.LLMPULSE_KAFKA_GROUP],
            broker.bootstrap_servers,
        )
        # what a collector writes: one record per trace, keyed by the trace id, on the traces topic
        records = [
            (f"trace-{i}".encode(), llm_request(len(FEATURES), features=FEATURES)) for i in range(REQUESTS)
        ]
        produce(broker.bootstrap_servers, deployed[E.LLMPULSE_KAFKA_TOPIC], records)

        def counted() -> dict[str, float]:
            _, text = scrape(admin_port)
            return {f: sample(text, M.REQUESTS_TOTAL, feature=f) for f in FEATURES}

        wait_for(
            lambda: counted() == dict.fromkeys(FEATURES, float(REQUESTS)), "not every call was counted", log
        )
        with psycopg.connect(store_url) as conn:
            applied = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        assert applied and applied[0] >= 1, "the replica did not migrate the shared store"
        if deployed.get(E.LLMPULSE_LOG_FORMAT) == "json":
            assert json.loads(log.read_text().splitlines()[0])  # the Deployment's log lines are JSON
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    assert process.returncode == 0, log.read_text()[-3000:]
