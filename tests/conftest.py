"""Shared fixtures: real Prometheus, Alertmanager and collector processes.

Each factory fixture starts a component on free loopback ports with a temporary data
directory, waits for readiness and stops it at teardown. A component that is not
installed FAILS the test with the command that installs it. The terminal summary
lists every component started and stopped in the run, so the test output shows that
the real binaries ran.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from llmpulse.contract import environment_variables
from llmpulse.stack import components
from llmpulse.stack.postgres import PostgresCluster


@dataclass
class ComponentRecord:
    name: str
    argv0: str
    ready_url: str
    pid: int | None
    exit_code: int | None = None


_RUN_LOG: list[ComponentRecord] = []


def _start(process: components.ManagedProcess, started: list[components.ManagedProcess]) -> None:
    try:
        process.start()
    except components.ComponentMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    started.append(process)
    _RUN_LOG.append(ComponentRecord(process.name, str(process.argv[0]), process.ready_url, process.pid))


def _stop_all(started: list[components.ManagedProcess]) -> None:
    for process in reversed(started):
        code = process.stop()
        for record in _RUN_LOG:
            if record.pid == process.pid:
                record.exit_code = code


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--console-screenshots",
        metavar="DIR",
        help="also save the console tests' page screenshots in DIR (docs/console for the README)",
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _RUN_LOG:
        return
    terminalreporter.section("real components started and stopped in this run")
    for record in _RUN_LOG:
        terminalreporter.write_line(
            f"{record.name:<13} pid {record.pid:<7} {record.argv0}  ready at {record.ready_url}  "
            f"stopped (exit {record.exit_code})"
        )


PROMETHEUS3_BIN = components.REPO_ROOT / ".cache" / "prometheus3" / "bin"


@pytest.fixture(scope="session", autouse=True)
def _prometheus3_when_asked() -> None:
    """Under ``LLMPULSE_PROMETHEUS3=1`` (the Makefile's second pytest run, ``-m prometheus3``, with
    .cache/prometheus3/bin first on PATH) every Prometheus and Alertmanager binary the tests find
    must be the built Prometheus 3 and Alertmanager 0.35, so that run cannot pass on Debian's."""
    if os.environ.get(environment_variables.LLMPULSE_PROMETHEUS3) != "1":
        return
    finders = [
        components.prometheus_binary,
        components.promtool_binary,
        components.alertmanager_binary,
        components.amtool_binary,
    ]
    for find in finders:
        try:
            found = Path(find())
        except components.ComponentMissing as exc:
            pytest.fail(str(exc), pytrace=False)
        if found.parent != PROMETHEUS3_BIN:
            pytest.fail(
                f"{environment_variables.LLMPULSE_PROMETHEUS3}=1 but {found} is not from {PROMETHEUS3_BIN}: "
                "run `make setup` (which builds it) and put that directory first on PATH, as "
                "`make test-prometheus3` does",
                pytrace=False,
            )
    version = subprocess.run(
        [str(components.prometheus_binary()), "--version"], capture_output=True, text=True
    ).stdout
    assert re.search(r"version 3\.", version), f"not Prometheus 3: {version[:80]!r}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster for the whole session (tests make their own databases)."""
    try:
        cluster = PostgresCluster()
        cluster.start()
    except components.ComponentMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    record = ComponentRecord("postgres", str(cluster.bin_dir / "postgres"), cluster.url(), cluster.pid)
    _RUN_LOG.append(record)
    yield cluster
    record.exit_code = cluster.stop()


_databases = itertools.count(1)


@pytest.fixture
def new_pg_database(postgres_server: PostgresCluster) -> Callable[[], str]:
    """Make an empty database in the session's cluster; returns its URL."""

    def make() -> str:
        name = f"test_{next(_databases)}"
        with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return postgres_server.url(name)

    return make


@dataclass(frozen=True)
class CollectorHandle:
    process: components.ManagedProcess
    grpc_endpoint: str
    http_endpoint: str


PrometheusFactory = Callable[[str], tuple[components.ManagedProcess, int]]
AlertmanagerFactory = Callable[[str], tuple[components.ManagedProcess, int]]
CollectorFactory = Callable[..., CollectorHandle]


def _config_process_factory(
    tmp_path: Path,
    name: str,
    build: Callable[[Path, Path, int], components.ManagedProcess],
    started: list[components.ManagedProcess],
) -> Callable[[str], tuple[components.ManagedProcess, int]]:
    """A factory that writes the config text into a fresh data dir and starts ``build(...)``."""

    def factory(config_text: str) -> tuple[components.ManagedProcess, int]:
        port = components.free_port()
        data = tmp_path / f"{name}-{port}"
        data.mkdir()
        config = data / f"{name}.yml"
        config.write_text(config_text)
        process = build(config, data, port)
        _start(process, started)
        return process, port

    return factory


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[PrometheusFactory]:
    """Start Prometheus with the given config text; returns (process, port)."""
    started: list[components.ManagedProcess] = []
    yield _config_process_factory(tmp_path, "prometheus", components.prometheus, started)
    _stop_all(started)


@pytest.fixture
def start_alertmanager(tmp_path: Path) -> Iterator[AlertmanagerFactory]:
    """Start Alertmanager with the given config text; returns (process, port)."""
    started: list[components.ManagedProcess] = []
    yield _config_process_factory(tmp_path, "alertmanager", components.alertmanager, started)
    _stop_all(started)


@pytest.fixture
def start_collector(tmp_path: Path) -> Iterator[CollectorFactory]:
    """Start the built collector with ``otel-collector.yaml`` (or ``config``) on free ports.

    ``processor_endpoint`` is where it forwards traces; extra ``env`` overrides the rest.
    """
    started: list[components.ManagedProcess] = []

    def factory(
        processor_endpoint: str, *, config: Path | None = None, env: Mapping[str, str] | None = None
    ) -> CollectorHandle:
        grpc = f"127.0.0.1:{components.free_port()}"
        http = f"127.0.0.1:{components.free_port()}"
        health = f"127.0.0.1:{components.free_port()}"
        full_env = {
            "LLMPULSE_COLLECTOR_GRPC_ENDPOINT": grpc,
            "LLMPULSE_COLLECTOR_HTTP_ENDPOINT": http,
            "LLMPULSE_COLLECTOR_HEALTH_ENDPOINT": health,
            "LLMPULSE_COLLECTOR_METRICS_PORT": str(components.free_port()),
            "LLMPULSE_PROCESSOR_ENDPOINT": processor_endpoint,
        }
        data = tmp_path / f"collector-{health.rsplit(':', 1)[1]}"
        data.mkdir()
        # its own disk queue: two collectors cannot share one (file_storage locks it)
        full_env = {**full_env, "LLMPULSE_COLLECTOR_QUEUE_DIR": str(data / "queue"), **(env or {})}
        try:
            process = components.collector(
                config or components.REPO_ROOT / "otel-collector.yaml", data, full_env, health
            )
        except components.ComponentMissing as exc:
            pytest.fail(str(exc), pytrace=False)
        _start(process, started)
        return CollectorHandle(process, grpc, http)

    yield factory
    _stop_all(started)
