"""Shared fixtures: real Prometheus, Alertmanager and collector processes.

Each factory fixture starts a component on free loopback ports with a temporary data
directory, waits for readiness and stops it at teardown. A component that is not
installed FAILS the test with the command that installs it. The terminal summary
lists every component started and stopped in the run, so the test output shows that
the real binaries ran.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmpulse.stack import components


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
            **(env or {}),
        }
        data = tmp_path / f"collector-{health.rsplit(':', 1)[1]}"
        data.mkdir()
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
