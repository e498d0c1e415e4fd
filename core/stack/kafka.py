"""A throwaway single-node Apache Kafka broker (KRaft) as a child process on a loopback port.

The tests start one per session for the Kafka source of ``llmpulse serve``; the benchmarks start
their own. :meth:`KafkaBroker.start` writes a ``server.properties`` (one process that is broker and
controller, replication factors 1, listeners on ``127.0.0.1`` only), formats the storage with
``kafka.tools.StorageTool`` and runs ``kafka.Kafka`` on the machine's Java (17 or newer), then waits
until the broker answers on its port; :meth:`KafkaBroker.stop` stops it (SIGTERM, then kill) and
removes the directory.

Jars: ``$LLMPULSE_KAFKA_LIB`` (a directory of jars), else ``.cache/kafka/lib`` in a checkout, which
``scripts/bootstrap.sh`` fills from Maven Central (``org.apache.kafka:kafka_2.13`` and
``kafka-tools``, see ``scripts/kafka/pom.xml``). Missing jars or Java:
:class:`~llmpulse.stack.components.ComponentMissing` saying how to install them.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from llmpulse.contract.environment_variables import LLMPULSE_KAFKA_LIB as KAFKA_LIB_ENV
from llmpulse.stack import files
from llmpulse.stack.components import ComponentError, ComponentMissing, free_port, log_tail

__all__ = ["KAFKA_LIB_ENV", "KafkaBroker", "find_java", "find_kafka_lib"]

_INSTALL_HINT = (
    "the Kafka broker's jars are not installed: run `scripts/bootstrap.sh` (or `make setup`), which "
    "fetches org.apache.kafka:kafka_2.13:4.4.0 and kafka-tools from Maven Central into .cache/kafka/lib "
    f"(`mvn -f scripts/kafka/pom.xml dependency:copy-dependencies`), or point ${KAFKA_LIB_ENV} at a "
    "directory holding them"
)
# Outside a checkout (an installed wheel) there is no bootstrap script: a Kafka release has the jars.
_RELEASE_HINT = (
    "the Kafka broker's jars are not found: download Apache Kafka 4.x (the binary release, "
    "https://kafka.apache.org/downloads), unpack it and set "
    f"{KAFKA_LIB_ENV}=<unpacked directory>/libs; or run the replicas against a Kafka of your "
    "own: `llmpulse serve --kafka-brokers HOST:PORT` (docs/kafka.md)"
)
_JAVA_HINT = "Java 17 or newer is needed to run the Kafka broker: `apt-get install openjdk-17-jre-headless`"


def find_kafka_lib(environ: Mapping[str, str] | None = None) -> Path:
    """The directory holding the broker's jars (``kafka_2.13-*.jar`` among them)."""
    env = os.environ if environ is None else environ
    candidates: list[Path] = []
    if env.get(KAFKA_LIB_ENV):
        candidates.append(Path(env[KAFKA_LIB_ENV]))
    checkout = files.checkout_root()
    if checkout is not None:
        candidates.append(checkout / ".cache" / "kafka" / "lib")
    for directory in candidates:
        if any(directory.glob("kafka_2.13-*.jar")) and any(directory.glob("kafka-tools-*.jar")):
            return directory
    if env.get(KAFKA_LIB_ENV):
        raise ComponentMissing(
            f"{KAFKA_LIB_ENV}={env[KAFKA_LIB_ENV]} holds no kafka_2.13-*.jar and kafka-tools-*.jar: "
            "point it at a Kafka release's libs/ directory"
        )
    raise ComponentMissing(_INSTALL_HINT if checkout is not None else _RELEASE_HINT)


def find_java() -> Path:
    found = shutil.which("java")
    if found is None:
        raise ComponentMissing(_JAVA_HINT)
    return Path(found)


def _properties(port: int, controller_port: int, log_dir: Path, partitions: int) -> str:
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": str(partitions),
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "true",
        # A consumer group forms at once instead of waiting 3 s for more members.
        "group.initial.rebalance.delay.ms": "0",
        "log.flush.interval.messages": "1000000",
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


class KafkaBroker:
    """One Kafka broker-and-controller on ``127.0.0.1:port`` with its data in a fresh directory."""

    def __init__(
        self,
        *,
        port: int | None = None,
        lib_dir: Path | None = None,
        partitions: int = 6,
        heap: str = "256m",
        controller_port: int | None = None,
        root: Path | None = None,
        detach: bool = False,
    ) -> None:
        """``root`` keeps the data in that directory (kept by :meth:`stop`, reused by the next
        :meth:`start`: the local stack's broker); unset, a fresh temporary one. ``detach`` starts
        the broker in a session of its own, so it outlives the process that started it."""
        self.lib_dir = lib_dir or find_kafka_lib()
        self.java = find_java()
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.partitions = partitions
        self.heap = heap
        self.root: Path | None = None
        self._keep_root = root
        self._detach = detach
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "server.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _java(self, *argv: str) -> list[str]:
        return [
            str(self.java),
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseSerialGC",  # two shared cores: no parallel GC threads fighting the tests
            "-XX:TieredStopAtLevel=1",  # C1 only: a much quicker start on a test broker
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.root}",
            "-cp",
            f"{self.lib_dir}/*",
            *argv,
        ]

    def start(self, timeout: float = 60.0) -> KafkaBroker:
        """Format the storage (unless a kept ``root`` has it already), start the broker, wait
        until it accepts connections."""
        if self._keep_root is not None:
            self.root = self._keep_root
            self.root.mkdir(parents=True, exist_ok=True)
        else:
            self.root = Path(tempfile.mkdtemp(prefix="llmpulse-kafka-"))
        config = self.root / "server.properties"
        config.write_text(_properties(self.port, self.controller_port, self.root / "data", self.partitions))
        if not (self.root / "data" / "meta.properties").is_file():
            self._format(config)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self._java("kafka.Kafka", str(config)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=self._detach,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ComponentError(f"kafka exited with code {self._process.returncode}:\n{self.log_tail()}")
            if self._ready():
                return self
            time.sleep(0.3)
        self.stop()
        raise ComponentError(f"kafka not ready on port {self.port} after {timeout:.0f}s:\n{self.log_tail()}")

    def _format(self, config: Path) -> None:
        # StorageTool reads an id with a leading "-" as an option (Kafka's own ids never start so)
        cid = "-"
        while cid.startswith("-"):
            cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        done = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", cid, "-c", str(config)),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise ComponentError(f"kafka storage format failed ({done.returncode}): {done.stderr.strip()}")

    def _ready(self) -> bool:
        # The jars bring no logging backend, so readiness is asked of the broker itself.
        with contextlib.suppress(OSError):
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
            from confluent_kafka.admin import AdminClient

            admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 3})
            with contextlib.suppress(Exception):
                return bool(admin.list_topics(timeout=2).brokers)
        return False

    def create_topic(self, name: str, partitions: int, *, config: Mapping[str, str] | None = None) -> None:
        """Create ``name`` with ``partitions`` partitions (replication 1); an existing topic is kept."""
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 3})
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=dict(config or {}))]
        )
        for future in futures.values():
            try:
                future.result(timeout=30)
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise ComponentError(f"creating Kafka topic {name!r} failed: {exc}") from exc

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (controlled shutdown), SIGKILL after ``timeout``; remove the directory."""
        process, code = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout)
            code = process.returncode
            self._process = None
        if self.root is not None and self._keep_root is None:
            shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
        return code

    def __enter__(self) -> KafkaBroker:
        return self.start() if self._process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
