"""The local llmpulse stack: every component as a background process on loopback.

``llmpulse up`` starts, in dependency order, the fake LLM provider (judge and embedding
endpoint when no real one is configured), an Alertmanager webhook sink, Alertmanager,
the processor, Prometheus with llmpulse's rules and the built collector; it waits for
each to be ready and prints where it listens. ``llmpulse up --replicas N`` runs Kafka between
the collector and N processor replicas, with their state in PostgreSQL
(:mod:`llmpulse.stack.replicas`, docs/kafka.md). ``llmpulse down`` stops them. The pids
live in ``<state-dir>/stack.json``; a second ``up`` while they run says so, and when some of
them have died it names those and starts them again. The rules and
configs come from :mod:`llmpulse.stack.files` (the checkout's, or the installed package's);
a missing binary stops ``up`` before anything starts, with one line saying how to get it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from llmpulse.contract import environment_variables as E
from llmpulse.stack import components, files, replicas
from llmpulse.stack.pids import alive, terminate

STATE_FILE = "stack.json"
SHIPPED_WEBHOOK_URL = "http://127.0.0.1:9099/alerts"  # the default receiver in alerting/alertmanager.yml
FAKE_JUDGE_NOTE = "fake: the fake provider's canned verdicts, not real judgements"
_QUICK_DRIFT = """
# A first try shows drift scores after 75 sampled prompts of a feature: a reference of 50 and a
# test every 25 (`llmpulse serve`'s defaults: 200 and 50, more power per test, slower to start).
[drift.settings]
reference_size = 50
window_size = 50
min_current = 25
test_every = 25
"""


@dataclass(frozen=True)
class StackPorts:
    """Loopback ports of the local stack (apps send OTLP to the collector's 4317/4318)."""

    collector_grpc: int = 4317
    collector_http: int = 4318
    collector_health: int = 13133
    collector_metrics: int = 8888
    processor_grpc: int = 14317
    processor_http: int = 14318
    processor_admin: int = 9464
    prometheus: int = 9090
    alertmanager: int = 9093
    webhook: int = 9099
    fake_provider: int = 8700
    console: int = 9470
    # --replicas N: the broker, the database and the replicas' admin ports (/metrics)
    kafka: int = 9092
    kafka_controller: int = 19093
    postgres: int = 15432
    replica_admin: tuple[int, ...] = field(default=())


def replica_ports(count: int) -> tuple[int, ...]:
    """The standard admin ports of ``count`` replicas: 9481, 9482, ..."""
    return tuple(9481 + i for i in range(count))


class StackProcess(Protocol):
    """What ``up`` needs of a component: ManagedProcess, or the broker's and database's wrappers."""

    name: str

    @property
    def pid(self) -> int | None: ...

    @property
    def ready_url(self) -> str: ...

    @property
    def log_path(self) -> Path: ...

    def start(self, timeout: float = ...) -> object: ...

    def stop(self) -> int | None: ...


@dataclass(frozen=True)
class Service:
    """One started component as recorded in the state file."""

    name: str
    pid: int
    url: str
    log: str
    ready_url: str = ""  # what `llmpulse status` asks (state files of older versions have none)


def _python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


class Stack:
    """Builds the component processes of the local stack and starts or stops them."""

    def __init__(
        self,
        state_dir: Path,
        ports: StackPorts | None = None,
        host: str = "127.0.0.1",
        *,
        rule_files: Sequence[Path] | None = None,
        alertmanager_config: str | None = None,
        interval: str = "5s",
        fake_provider: bool = True,
        processor_config_extra: str = "",
        console_args: Sequence[str] = (),
        replicas: int = 0,
    ) -> None:
        """``rule_files`` replaces alerting/rules/*.yml and ``alertmanager_config`` the text of
        alerting/alertmanager.yml (its webhook URL is still pointed at this stack's sink), e.g.
        the time-compressed copies of :mod:`llmpulse.demo.rules`; ``interval`` is Prometheus'
        scrape and evaluation interval; ``fake_provider=False`` leaves the fake provider's port
        to the caller (the demo serves its own, scripted one there); ``processor_config_extra``
        is appended to the processor's TOML file (new tables, e.g. ``[quality.signals]``, and a
        ``[quality]`` table whose keys join the stack's own, e.g. the demo's ``tick_s``);
        ``console_args`` are added to ``llmpulse console``'s command line (the demo's
        time-compressed ``--incident-window``); ``replicas`` > 0 runs Kafka, PostgreSQL and that
        many processor replicas instead of the one processor (their admin ports are
        ``ports.replica_admin``, or 9481, 9482, ... when it is empty).
        """
        self.state_dir = state_dir
        self.replicas = replicas
        ports = ports or StackPorts()
        if replicas and len(ports.replica_admin) != replicas:
            ports = dataclasses.replace(ports, replica_admin=replica_ports(replicas))
        self.ports = ports
        self.host = host
        self._rule_file_override = None if rule_files is None else [str(p) for p in rule_files]
        self._alertmanager_text = alertmanager_config
        self._interval = interval
        self._with_fake_provider = fake_provider
        self._processor_config_extra = processor_config_extra
        self._console_args = tuple(console_args)
        # Processes this object started, so that a `down` in the same process waits for them.
        self._children: dict[int, StackProcess] = {}

    @property
    def console_url(self) -> str:
        return f"http://{self.host}:{self.ports.console}"

    # --- configuration files -------------------------------------------------------------
    def _rule_files(self) -> list[str]:
        if self._rule_file_override is not None:
            return list(self._rule_file_override)
        return [str(p) for p in files.rule_files()]

    def _prometheus_config(self) -> Path:
        p, h = self.ports, self.host
        config = {
            "global": {
                "scrape_interval": self._interval,
                "evaluation_interval": self._interval,
                # the rules' console_url annotations start with this (alerting/rules/*.yml)
                "external_labels": {"console_url": self.console_url},
            },
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"{h}:{p.alertmanager}"]}]}]},
            "rule_files": self._rule_files(),
            "scrape_configs": [
                {
                    "job_name": "llmpulse-processor",
                    "static_configs": [
                        {"targets": [f"{h}:{port}" for port in self._processor_admin_ports()]}
                    ],
                },
                {
                    "job_name": "otel-collector",
                    "static_configs": [{"targets": [f"{h}:{p.collector_metrics}"]}],
                },
                {"job_name": "prometheus", "static_configs": [{"targets": [f"{h}:{p.prometheus}"]}]},
            ],
        }
        path = self.state_dir / "prometheus.yml"
        path.write_text(json.dumps(config, indent=2))  # JSON is valid YAML
        return path

    def _processor_admin_ports(self) -> list[int]:
        return list(self.ports.replica_admin) if self.replicas else [self.ports.processor_admin]

    def _processor_config(self) -> Path:
        """The processor's engines: state under the state dir, the fake provider as the judge."""
        d, p, h = self.state_dir, self.ports, self.host
        quality_keys, extra = _table_keys(self._processor_config_extra, "quality")
        path = d / "processor.toml"
        path.write_text(
            f"""# Written by `llmpulse up`. No real LLM endpoint is configured, so the fake provider
# on {h}:{p.fake_provider} is the judge (its verdicts are canned, not real judgements).
[quality]
db_path = "{d / "quality.db"}"
{quality_keys}
[quality.judge]
base_url = "http://{h}:{p.fake_provider}/v1"
model = "fake-judge"
api_key = "fake"
note = "{FAKE_JUDGE_NOTE}"

[drift]
state_path = "{d / "drift.npz"}"
"""
            + ("" if "[drift.settings]" in extra else _QUICK_DRIFT)
            + extra
        )
        return path

    def _console_hook(self) -> str:
        return f"{self.console_url}/api/alertmanager"

    def _alertmanager_config(self) -> Path:
        """alerting/alertmanager.yml with its default webhook pointed at this stack's sink, and
        the console's webhook beside it (the console forwards its bundles to the sink's
        ``/bundles``)."""
        text = (
            self._alertmanager_text
            if self._alertmanager_text is not None
            else files.alertmanager_config().read_text()
        )
        text = text.replace(SHIPPED_WEBHOOK_URL, f"http://{self.host}:{self.ports.webhook}/alerts")
        text = _beside_each_webhook(
            text, f"http://{self.host}:{self.ports.webhook}/alerts", self._console_hook()
        )
        path = self.state_dir / "alertmanager.yml"
        path.write_text(text)
        return path

    # --- processes -------------------------------------------------------------------------
    def _serve_argv(self, grpc_port: int, http_port: int, admin_port: int) -> list[str]:
        h = self.host
        return _python_module(
            "llmpulse.cli",
            "serve",
            "--config",
            str(self._processor_config()),
            "--host",
            h,
            "--grpc-port",
            str(grpc_port),
            "--http-port",
            str(http_port),
            "--admin-host",
            h,
            "--admin-port",
            str(admin_port),
        )

    def _processes(self) -> list[tuple[StackProcess, str]]:
        p, h, d = self.ports, self.host, self.state_dir

        def managed(
            name: str, argv: list[str], ready: str, env: dict[str, str] | None = None
        ) -> components.ManagedProcess:
            return components.ManagedProcess(name, argv, ready, d / f"{name}.log", env=env, detach=True)

        fake = managed(
            "fake-provider",
            _python_module("llmpulse.cli", "fake-provider", "--host", h, "--port", str(p.fake_provider)),
            f"http://{h}:{p.fake_provider}/healthz",
        )
        sink = managed(
            "webhook-sink",
            _python_module(
                "llmpulse.testing.webhook_sink",
                "--host",
                h,
                "--port",
                str(p.webhook),
                "--journal",
                str(d / "notifications.jsonl"),
            ),
            f"http://{h}:{p.webhook}/",
        )
        processors: list[tuple[StackProcess, str]]
        database = replicas.DatabaseProcess(d, p.postgres)
        if self.replicas:
            broker = replicas.BrokerProcess(d, p.kafka, p.kafka_controller, self.replicas)
            kafka_args = [
                *("--kafka-brokers", f"127.0.0.1:{p.kafka}", "--kafka-topic", replicas.TOPIC),
                *("--kafka-group", replicas.GROUP, "--kafka-owner-topic", replicas.OWNER_TOPIC),
            ]
            processors = [
                (database, f"{database.url}  (PostgreSQL: the store the replicas share)"),
                (broker, f"127.0.0.1:{p.kafka}  (Kafka: topics {replicas.TOPIC}, {replicas.OWNER_TOPIC})"),
            ]
            for i, admin in enumerate(p.replica_admin, start=1):
                replica = managed(
                    f"processor-{i}",
                    [*self._serve_argv(0, 0, admin), *kafka_args],
                    f"http://{h}:{admin}/readyz",
                    env={E.LLMPULSE_STORE_URL: database.url},
                )
                processors.append(
                    (replica, f"http://{h}:{admin}/metrics  (processor replica {i} of {self.replicas})")
                )
        else:
            processor = managed(
                "processor",
                self._serve_argv(p.processor_grpc, p.processor_http, p.processor_admin),
                f"http://{h}:{p.processor_admin}/readyz",
            )
            processors = [
                (
                    processor,
                    f"http://{h}:{p.processor_admin}/metrics  (processor; OTLP gRPC {h}:{p.processor_grpc})",
                )
            ]
        store_args = ["--store-url", database.url] if self.replicas else ["--db", str(d / "quality.db")]
        console = managed(
            "console",
            _python_module(
                "llmpulse.cli",
                "console",
                "--host",
                h,
                "--port",
                str(p.console),
                *store_args,
                "--prometheus-url",
                f"http://{h}:{p.prometheus}",
                "--alertmanager-url",
                f"http://{h}:{p.alertmanager}",
                "--forward-url",
                f"http://{h}:{p.webhook}/bundles",
                *self._console_args,
            ),
            f"{self.console_url}/healthz",
        )
        alertmanager = components.alertmanager(self._alertmanager_config(), d, p.alertmanager, host=h)
        alertmanager.detach = True
        prometheus = components.prometheus(self._prometheus_config(), d, p.prometheus, host=h)
        prometheus.detach = True
        collector_env = {
            E.LLMPULSE_COLLECTOR_GRPC_ENDPOINT: f"{h}:{p.collector_grpc}",
            E.LLMPULSE_COLLECTOR_HTTP_ENDPOINT: f"{h}:{p.collector_http}",
            E.LLMPULSE_COLLECTOR_HEALTH_ENDPOINT: f"{h}:{p.collector_health}",
            E.LLMPULSE_COLLECTOR_METRICS_PORT: str(p.collector_metrics),
        }
        if self.replicas:
            collector_config = files.collector_kafka_config()
            collector_env[E.LLMPULSE_KAFKA_BROKERS] = f"127.0.0.1:{p.kafka}"
            collector_env[E.LLMPULSE_KAFKA_TOPIC] = replicas.TOPIC
        else:
            collector_config = files.collector_config()
            collector_env[E.LLMPULSE_PROCESSOR_ENDPOINT] = f"{h}:{p.processor_grpc}"
            collector_env[E.LLMPULSE_COLLECTOR_QUEUE_DIR] = str(d / "collector-queue")
        collector = components.collector(collector_config, d, collector_env, f"{h}:{p.collector_health}")
        collector.detach = True
        fake_entry: list[tuple[StackProcess, str]] = [
            (
                fake,
                f"http://{h}:{p.fake_provider}/v1  (fake OpenAI/Anthropic API; "
                "the judge, with canned verdicts; LLMPULSE_JUDGE_BASE_URL sets a real one)",
            )
        ]
        console_entry: list[tuple[StackProcess, str]] = [
            (console, f"{self.console_url}  (triage console: incidents, flagged samples, labels, judge)")
        ]
        return [
            *(fake_entry if self._with_fake_provider else []),
            (
                sink,
                f"http://{h}:{p.webhook}/alerts  (Alertmanager webhook sink -> {d / 'notifications.jsonl'})",
            ),
            (alertmanager, f"http://{h}:{p.alertmanager}  (Alertmanager)"),
            *processors,
            (prometheus, f"http://{h}:{p.prometheus}  (Prometheus with llmpulse rules)"),
            *(console_entry if console_installed() else []),
            (
                collector,
                f"{h}:{p.collector_grpc} gRPC, {h}:{p.collector_http} HTTP  (OTLP in: point apps here)",
            ),
        ]

    # --- state -----------------------------------------------------------------------------
    def _state_path(self) -> Path:
        return self.state_dir / STATE_FILE

    def _state(self) -> dict[str, object]:
        try:
            state = json.loads(self._state_path().read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def recorded(self) -> list[Service]:
        """Services recorded in the state file, alive or not."""
        services = self._state().get("services", [])
        return [Service(**s) for s in services] if isinstance(services, list) else []

    def _recorded_ports(self) -> StackPorts | None:
        ports = self._state().get("ports")
        if not isinstance(ports, dict):
            return None
        try:
            return StackPorts(**{**ports, "replica_admin": tuple(ports.get("replica_admin", ()))})
        except TypeError:  # a state file of another version
            return None

    def processor_urls(self) -> list[str]:
        """Admin URLs of the running processors (``processor``, or ``processor-1`` ... ``-N``)."""
        return [
            s.url.split()[0].removesuffix("/metrics")
            for s in self.running()
            if s.name == "processor" or s.name.startswith("processor-")
        ]

    def store_location(self) -> str | None:
        """Where the running stack keeps flagged samples and labels: the PostgreSQL URL of a
        replicas stack, else the processor's SQLite file; None when no stack runs."""
        running = {s.name: s for s in self.running()}
        if "postgres" in running:
            return running["postgres"].url.split()[0]
        if "processor" in running:
            return str(self.state_dir / "quality.db")
        return None

    def recorded_replicas(self) -> int:
        """The ``--replicas`` of the recorded stack (0: the one-processor stack)."""
        count = self._state().get("replicas", 0)
        return count if isinstance(count, int) else 0

    def health(self) -> list[tuple[Service, str]]:
        """Each recorded service with its state: ``up`` (its process runs and its readiness URL
        answers), ``not ready`` (runs, does not answer) or ``down`` (its process is gone)."""
        out = []
        for service in self.recorded():
            if not alive(service.pid):
                state = "down"
            elif service.ready_url and not replicas.ready(service.ready_url):
                state = "not ready"
            else:
                state = "up"
            out.append((service, state))
        return out

    def health_report(self) -> str | None:
        """``llmpulse status``'s stack section, or None when no stack was started here."""
        health = self.health()
        if not health:
            return None
        down = [service.name for service, state in health if state != "up"]
        head = "local stack: all up" if not down else f"local stack: {', '.join(down)} not up"
        lines = [f"{head} ({self.state_dir})"]
        for service, state in health:
            hint = f"  log: {service.log}" if state != "up" else ""
            lines.append(f"  {service.name:<14} {state:<10} {service.url}{hint}")
        if down:
            lines.append("  `llmpulse up` restarts what is down")
        return "\n".join(lines)

    def running(self) -> list[Service]:
        """Services recorded in the state file whose process is alive."""
        return [s for s in self.recorded() if alive(s.pid)]

    def up(self, say: Callable[[str], None]) -> int:
        """Start every component in the background (only the dead ones of a partly running
        stack); 0 when all are ready."""
        recorded = self.recorded()
        running = {s.name for s in recorded if alive(s.pid)}
        if running and self.recorded_replicas() != self.replicas:
            shape = lambda n: f"{n} processor replicas" if n else "one processor"  # noqa: E731
            say(
                f"llmpulse stack is running with {shape(self.recorded_replicas())}, not "
                f"{shape(self.replicas)}: `llmpulse down` first, then `llmpulse up` again"
            )
            return 1
        if self.replicas and (missing := replicas.missing_packages()):
            say(f"llmpulse up failed: {missing}")
            return 1
        if running and (ports := self._recorded_ports()) is not None:
            self.ports = ports  # a restarted component takes the port the others know
        if running and len(running) == len(recorded):
            say(f"llmpulse stack is already up ({len(recorded)} services); `llmpulse down` stops it:")
            for service in recorded:
                say(f"  {service.name:<14} {service.url}")
            return 0
        if running:
            for service in recorded:
                if service.name not in running:
                    say(f"llmpulse stack: {service.name} is down (log: {service.log}); restarting it")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        kept = [s for s in recorded if s.name in running]
        services = list(kept)
        started: list[Service] = []
        try:
            processes = self._processes()
            order = {process.name: index for index, (process, _) in enumerate(processes)}
            for process, url in processes:
                if process.name in running:
                    continue
                say(f"==> starting {process.name} ...")
                process.start(timeout=60)
                self._children[int(process.pid or 0)] = process
                service = Service(
                    process.name, int(process.pid or 0), url, str(process.log_path), process.ready_url
                )
                started.append(service)
                # a restarted component keeps its place in the start order
                services = sorted([*services, service], key=lambda s: order.get(s.name, len(order)))
                self._write_state(services)
        except (components.ComponentError, files.StackFilesMissing, OSError) as exc:
            say(f"llmpulse up failed: {exc}")  # OSError: a program that could not be run
            self._terminate([s.pid for s in reversed(started)])
            if kept:
                self._write_state(recorded)  # the dead stay recorded: the next `up` restarts them
            else:
                self._state_path().unlink(missing_ok=True)
            return 1
        if not console_installed():
            say("console not started: its packages are missing; run: pip install 'llmpulse[console]'")
        say("llmpulse stack is up:")
        for service in services:
            say(f"  {service.name:<14} {service.url}")
        make = " (or make down)" if files.checkout_root() is not None else ""
        say(f"Logs in {self.state_dir}. Stop everything with: llmpulse down{make}")
        return 0

    def down(self, say: Callable[[str], None]) -> int:
        running = self.running()
        if not running:
            say("llmpulse stack is not running")
        else:
            self._terminate([s.pid for s in reversed(running)])
            say(f"stopped {', '.join(s.name for s in reversed(running))}")
        for child in self._children.values():  # started here and died on their own: reap them
            child.stop()
        self._children.clear()
        self._state_path().unlink(missing_ok=True)
        return 0

    def _terminate(self, pids: list[int]) -> None:
        for pid in pids:
            child = self._children.pop(pid, None)
            if child is not None:
                child.stop()
            else:
                terminate(pid)

    def _write_state(self, services: list[Service]) -> None:
        self._state_path().write_text(
            json.dumps(
                {
                    "ports": asdict(self.ports),
                    "replicas": self.replicas,
                    "services": [asdict(s) for s in services],
                },
                indent=2,
            )
        )


def console_installed() -> bool:
    """Whether the console's packages (the ``console`` extra) are importable."""
    return all(importlib.util.find_spec(name) is not None for name in ("starlette", "jinja2", "uvicorn"))


def _beside_each_webhook(text: str, url: str, extra_url: str) -> str:
    """``text`` (Alertmanager YAML) with a copy of every ``- url: <url>`` webhook entry that
    points at ``extra_url`` instead, so each receiver notifies both."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip(" ")
        if stripped.rstrip() != f"- url: {url}":
            out.append(line)
            i += 1
            continue
        indent = len(line) - len(stripped)
        block = [line]
        i += 1
        while i < len(lines) and lines[i].strip() and len(lines[i]) - len(lines[i].lstrip(" ")) > indent:
            block.append(lines[i])
            i += 1
        out += block
        out += [block[0].replace(url, extra_url), *block[1:]]
    return "".join(out)


def default_state_dir() -> Path:
    """Where ``llmpulse up`` keeps its state unless told otherwise (see :mod:`llmpulse.stack.files`)."""
    return files.state_dir("stack", os.environ)


def free_ports(replicas: int = 0) -> StackPorts:
    """Ports that are free right now, one per component (and per replica), all different
    (``--free-ports``)."""
    fields = [f for f in dataclasses.fields(StackPorts) if f.name != "replica_admin"]
    ports = components.distinct_free_ports(len(fields) + replicas)
    single = {f.name: port for f, port in zip(fields, ports, strict=False)}
    return StackPorts(**single, replica_admin=tuple(ports[len(fields) :]))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``up`` and ``down`` subcommands."""
    up = subparsers.add_parser(
        "up",
        help="start the local stack (processor, collector, Prometheus, Alertmanager) in the background",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    down = subparsers.add_parser("down", help="stop the local stack started by `llmpulse up`")
    for parser in (up, down):
        parser.add_argument(
            "--state-dir",
            type=Path,
            default=default_state_dir(),
            help="pids, configs, logs (default: %(default)s)",
        )
    up.add_argument(
        "--free-ports",
        action="store_true",
        help="use free ports instead of the standard ones (4317, 9090 ...); `down` needs no flag",
    )
    up.add_argument(
        "--replicas",
        type=_replica_count,
        default=0,
        metavar="N",
        help="run N processor replicas behind Kafka, their state in PostgreSQL (docs/kafka.md); "
        "needs pip install 'llmpulse[kafka,store]'",
    )
    up.set_defaults(
        func=lambda args: Stack(
            args.state_dir,
            free_ports(args.replicas) if args.free_ports else None,
            replicas=args.replicas,
        ).up(_say)
    )
    down.set_defaults(func=lambda args: Stack(args.state_dir).down(_say))


def _replica_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= 32:
        raise argparse.ArgumentTypeError(f"expected a number of replicas from 1 to 32, got {text!r}")
    return count


def _say(line: str) -> None:
    print(line, flush=True)


def _table_keys(toml_text: str, table: str) -> tuple[str, str]:
    """(the key lines of ``[table]`` in ``toml_text``, the text without that table): a TOML file
    defines a table once, so keys for a table the stack writes itself go into the stack's."""
    header = f"[{table}]"
    lines = toml_text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() == header]
    if not starts:
        return "", toml_text
    begin = starts[0]
    end = next((i for i in range(begin + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
    return "".join(lines[begin + 1 : end]), "".join(lines[:begin] + lines[end:])
