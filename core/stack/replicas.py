"""The replicated local stack behind ``llmpulse up --replicas N`` (docs/kafka.md).

Beside the one-process stack's parts it runs a Kafka broker (KRaft, one node, its data under the
state directory) and a PostgreSQL cluster (the shared store); the collector runs
``otel-collector-kafka.yaml`` (OTLP in, Kafka out, partitioned by trace id) and N ``llmpulse
serve`` replicas form one consumer group with the owner topic (each (service, feature) counted
by one replica) and the PostgreSQL store; Prometheus scrapes all N.

:class:`BrokerProcess` and :class:`DatabaseProcess` give the broker and the database the shape of
a :class:`~llmpulse.stack.components.ManagedProcess` (name, pid, log, readiness address, start,
stop) so that ``up``, ``down`` and ``status`` treat them like every other component. Their
readiness address is ``tcp://host:port``: they speak no HTTP.
"""

from __future__ import annotations

import hashlib
import importlib.util
import socket
import tempfile
from pathlib import Path

from llmpulse.stack import components
from llmpulse.stack.kafka import KafkaBroker
from llmpulse.stack.postgres import PostgresCluster

__all__ = [
    "GROUP",
    "OWNER_TOPIC",
    "TOPIC",
    "BrokerProcess",
    "DatabaseProcess",
    "missing_packages",
    "partitions_for",
    "tcp_ok",
]

TOPIC = "llmpulse-traces"
OWNER_TOPIC = "llmpulse-owners"
GROUP = "llmpulse-processors"
TCP = "tcp://"
_PACKAGES = {"confluent_kafka": "kafka", "psycopg": "store", "psycopg_pool": "store"}


def partitions_for(replicas: int) -> int:
    """Partitions of both topics: room for twice the replicas, at least 6 (a partition has one
    reader in a group, so more replicas than partitions would stand by)."""
    return max(6, 2 * replicas)


def missing_packages() -> str | None:
    """One line naming the extras to install when the replicas' clients are missing, else None."""
    extras = sorted(
        {extra for module, extra in _PACKAGES.items() if importlib.util.find_spec(module) is None}
    )
    if not extras:
        return None
    return f"the replicas need Kafka and PostgreSQL clients: pip install 'llmpulse[{','.join(extras)}]'"


def tcp_ok(address: str, timeout: float = 0.5) -> bool:
    """True when ``tcp://host:port`` accepts a connection."""
    host, _, port = address.removeprefix(TCP).rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


class BrokerProcess:
    """The stack's Kafka broker: data in ``<state-dir>/kafka``, both topics created at start."""

    name = "kafka"

    def __init__(self, state_dir: Path, port: int, controller_port: int, replicas: int) -> None:
        self._state_dir = state_dir
        self._port = port
        self._controller_port = controller_port
        self._partitions = partitions_for(replicas)
        self._broker: KafkaBroker | None = None

    @property
    def ready_url(self) -> str:
        return f"{TCP}127.0.0.1:{self._port}"

    @property
    def log_path(self) -> Path:
        return self._state_dir / "kafka" / "server.log"

    @property
    def pid(self) -> int | None:
        return self._broker.pid if self._broker else None

    def start(self, timeout: float = 60.0) -> BrokerProcess:
        self._broker = KafkaBroker(
            port=self._port,
            controller_port=self._controller_port,
            partitions=self._partitions,
            root=self._state_dir / "kafka",
            detach=True,
        )
        self._broker.start(timeout=timeout)
        for topic in (TOPIC, OWNER_TOPIC):
            self._broker.create_topic(topic, self._partitions)
        return self

    def stop(self) -> int | None:
        return self._broker.stop() if self._broker else None


def database_root(state_dir: Path) -> Path:
    """Where the stack's PostgreSQL keeps its data: one directory per state directory, under the
    system temp directory (as root the server runs as the ``postgres`` user, who cannot enter
    root's home)."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"llmpulse-stack-pg-{digest}"


class DatabaseProcess:
    """The stack's PostgreSQL: the store the replicas and the console share."""

    name = "postgres"

    def __init__(self, state_dir: Path, port: int) -> None:
        self._root = database_root(state_dir)
        self._port = port
        self._cluster: PostgresCluster | None = None

    @property
    def url(self) -> str:
        return f"postgresql://llmpulse@127.0.0.1:{self._port}/postgres"

    @property
    def ready_url(self) -> str:
        return f"{TCP}127.0.0.1:{self._port}"

    @property
    def log_path(self) -> Path:
        return self._root / "server.log"

    @property
    def pid(self) -> int | None:
        return self._cluster.pid if self._cluster else None

    def start(self, timeout: float = 60.0) -> DatabaseProcess:
        self._cluster = PostgresCluster(port=self._port, root=self._root, detach=True)
        self._cluster.start(timeout=timeout)
        return self

    def stop(self) -> int | None:
        return self._cluster.stop() if self._cluster else None


def ready(url: str) -> bool:
    """Whether a recorded readiness address answers (HTTP 2xx, or a TCP connection)."""
    return tcp_ok(url) if url.startswith(TCP) else components.http_ok(url, timeout=0.5)
