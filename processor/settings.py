"""The processor's settings: one immutable object from flags, environment and a TOML file.

Precedence, highest first: command-line flag, environment variable (``LLMPULSE_`` + the field
name in upper case), the ``[processor]`` table of the config file (``--config`` or
``LLMPULSE_CONFIG``), the default. :data:`FIELDS` is the single list of every setting; the CLI
flags, the env var names and ``llmpulse serve --help`` are all generated from it.

Every problem raises :class:`ConfigError` with a message that names the setting, where the bad
value came from, and what is expected.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmpulse.contract.environment_variables import LLMPULSE_CONFIG as ENV_CONFIG
from llmpulse.contract.environment_variables import SETTING_PREFIX as ENV_PREFIX
from llmpulse.errors import ConfigError

__all__ = [
    "CONFIG_TABLE",
    "ENV_CONFIG",
    "ENV_PREFIX",
    "FIELDS",
    "ConfigError",
    "Field",
    "Settings",
    "add_arguments",
    "load_config_file",
    "resolve",
]

CONFIG_TABLE = "processor"
CONFIG_TABLES = (CONFIG_TABLE, "quality", "canary", "drift", "agents")
"""Every top-level table of the ``serve --config`` file: the processor's and the engines'."""


@dataclass(frozen=True, slots=True)
class Field:
    """One setting: name, parser, default and help text."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    metavar: str = ""

    @property
    def env(self) -> str:
        """The environment variable that sets it (defined in ``llmpulse.contract.environment_variables``)."""
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        """The command-line flag that sets it."""
        return "--" + self.name.replace("_", "-")


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be a TCP port between 0 and 65535 (0 picks a free port)")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number")
    return value


def _optional_path(text: str) -> Path | None:
    return Path(text) if text else None


def _optional_text(text: str) -> str | None:
    return text or None


def _host_list(text: str) -> tuple[str, ...]:
    return tuple(h.strip() for h in text.split(",") if h.strip())


def _log_format(text: str) -> str:
    if text not in ("text", "json"):
        raise ValueError("must be 'text' or 'json'")
    return text


FIELDS: tuple[Field, ...] = (
    Field("host", str, "127.0.0.1", "address the OTLP receivers bind to (0.0.0.0 for all)", "ADDR"),
    Field("grpc_port", _port, 4317, "OTLP/gRPC port (TraceService/Export)", "PORT"),
    Field("http_port", _port, 4318, "OTLP/HTTP port (POST /v1/traces)", "PORT"),
    Field("admin_host", str, "127.0.0.1", "address of the admin endpoints", "ADDR"),
    Field(
        "admin_port",
        _port,
        9464,
        "admin port: /metrics, /api/status, /healthz, /readyz (no auth, no TLS: keep it private)",
        "PORT",
    ),
    Field(
        "auth_token",
        _optional_text,
        None,
        "bearer token the OTLP receivers and the admin port's state-changing endpoints require "
        "(Authorization: Bearer ...); unset = no auth. Prefer the env var or --auth-token-file: "
        "a flag is visible to every local user",
        "TOKEN",
    ),
    Field("auth_token_file", _optional_path, None, "file holding the auth token (a mounted secret)", "FILE"),
    Field(
        "admin_allowed_hosts",
        _host_list,
        (),
        "comma-separated Host names the admin port answers to; default: loopback names when it "
        "binds to loopback, any when it binds beyond",
        "HOSTS",
    ),
    Field("tls_cert", _optional_path, None, "PEM certificate: serve both receivers over TLS", "FILE"),
    Field("tls_key", _optional_path, None, "PEM private key for --tls-cert", "FILE"),
    Field("max_request_bytes", _positive_int, 8 * 1024 * 1024, "largest export request accepted", "BYTES"),
    Field("queue_spans", _positive_int, 65_536, "capacity of the processing queue in spans", "SPANS"),
    Field(
        "queue_max_delay",
        _positive_float,
        1.0,
        "longest a request waits in the queue: one that would wait longer (at the measured drain "
        "rate), or still waits after that long, is refused with a retry hint",
        "S",
    ),
    Field(
        "retry_after", _positive_float, 1.0, "seconds a client is told to wait when the queue is full", "S"
    ),
    Field("drain_timeout", _positive_float, 10.0, "seconds shutdown waits for the queue to drain", "S"),
    Field("max_label_values", _positive_int, 100, "distinct values per metric label before __other__", "N"),
    Field(
        "max_series", _positive_int, 2000, "LLM label sets (series) before all labels become __other__", "N"
    ),
    Field(
        "label_idle_seconds",
        _positive_float,
        3600.0,
        "seconds a label value or series may go unseen before it frees its slot under the caps",
        "S",
    ),
    Field("dedup_hold", _positive_float, 2.0, "seconds an anthropic-SDK span waits for its twin", "S"),
    Field(
        "latency_samples",
        _positive_int,
        1000,
        "latency samples kept per status-window slot (exact percentiles below that rate)",
        "N",
    ),
    Field("log_format", _log_format, "text", "log line format: text (key=value) or json", "FORMAT"),
    Field(
        "pricing_file",
        _optional_path,
        None,
        "JSON pricing table overriding the shipped one; reloaded when it changes",
        "FILE",
    ),
    Field(
        "kafka_brokers",
        _optional_text,
        None,
        "comma-separated Kafka bootstrap servers: also read OTLP traces from --kafka-topic as a member "
        "of the consumer group --kafka-group (docs/kafka.md); unset = OTLP receivers only",
        "HOST:PORT,...",
    ),
    Field("kafka_topic", str, "llmpulse-traces", "Kafka topic of OTLP protobuf traces", "TOPIC"),
    Field("kafka_group", str, "llmpulse-processors", "Kafka consumer group the replicas share", "GROUP"),
    Field(
        "kafka_owner_topic",
        _optional_text,
        None,
        "second topic: re-key traces by (service, feature) onto it (exactly once, Kafka transactions) "
        "and count from it, so each feature has one owner replica (docs/kafka.md); unset = count "
        "straight from --kafka-topic",
        "TOPIC",
    ),
    Field(
        "kafka_session_timeout",
        _positive_float,
        10.0,
        "seconds without a heartbeat before Kafka moves a dead replica's partitions to the others",
        "S",
    ),
)
_BY_NAME = {f.name: f for f in FIELDS}


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated processor settings (see :data:`FIELDS` for meaning and defaults)."""

    host: str = "127.0.0.1"
    grpc_port: int = 4317
    http_port: int = 4318
    admin_host: str = "127.0.0.1"
    admin_port: int = 9464
    auth_token: str | None = None
    auth_token_file: Path | None = None
    admin_allowed_hosts: tuple[str, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_request_bytes: int = 8 * 1024 * 1024
    queue_spans: int = 65_536
    queue_max_delay: float = 1.0
    retry_after: float = 1.0
    drain_timeout: float = 10.0
    max_label_values: int = 100
    max_series: int = 2000
    label_idle_seconds: float = 3600.0
    dedup_hold: float = 2.0
    latency_samples: int = 1000
    log_format: str = "text"
    pricing_file: Path | None = None
    kafka_brokers: str | None = None
    kafka_topic: str = "llmpulse-traces"
    kafka_group: str = "llmpulse-processors"
    kafka_owner_topic: str | None = None
    kafka_session_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.auth_token_file is not None:
            if self.auth_token is not None:
                raise ConfigError("auth_token and auth_token_file: set one of them, not both")
            try:
                token = self.auth_token_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"auth_token_file: {self.auth_token_file} cannot be read: {exc.strerror}"
                ) from None
            if not token:
                raise ConfigError(f"auth_token_file: {self.auth_token_file} is empty")
            object.__setattr__(self, "auth_token", token)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key go together: set both to serve TLS, or neither")
        for name in ("tls_cert", "tls_key"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ConfigError(f"{name}: {path} is not a readable file")

    @property
    def tls(self) -> bool:
        """True when both receivers serve TLS."""
        return self.tls_cert is not None

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with the auth token hidden, for logs."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if values["auth_token"]:
            values["auth_token"] = "***"
        return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one flag per field to ``parser`` (defaults stay None: 'not given')."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"TOML file with a [{CONFIG_TABLE}] table of these settings (env {ENV_CONFIG})",
    )
    for f in FIELDS:
        default = "unset" if f.default is None else f.default
        parser.add_argument(
            f.flag,
            dest=f.name,
            metavar=f.metavar or None,
            default=None,
            help=f"{f.help} (env {f.env}; default: {default})",
        )


def _parse(f: Field, raw: object, source: str) -> Any:
    if isinstance(raw, list):  # a TOML array for a list setting
        raw = ",".join(str(item) for item in raw)
    text = str(raw).lower() if isinstance(raw, bool) else str(raw)
    try:
        return f.parse(text)
    except ValueError as exc:
        detail = str(exc) if "invalid literal" not in str(exc) and "could not convert" not in str(exc) else ""
        raise ConfigError(
            f"{f.name} from {source}: invalid value {text!r}{': ' + detail if detail else ''}"
        ) from None


def load_config_file(path: Path) -> dict[str, Any]:
    """The ``[processor]`` table of a TOML file; unknown keys and tables, and keys outside any
    table, are an error."""
    try:
        with path.open("rb") as fh:
            document = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    loose = sorted(key for key, value in document.items() if not isinstance(value, dict))
    if loose:
        raise ConfigError(
            f"config file {path}: key(s) {', '.join(loose)} outside any table; "
            f"put them under one of {', '.join(f'[{t}]' for t in CONFIG_TABLES)}"
        )
    unknown_tables = sorted(set(document) - set(CONFIG_TABLES))
    if unknown_tables:
        raise ConfigError(
            f"config file {path}: unknown table(s) {', '.join(f'[{t}]' for t in unknown_tables)}; "
            f"valid: {', '.join(f'[{t}]' for t in CONFIG_TABLES)}"
        )
    table = document.get(CONFIG_TABLE, {})
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: [{CONFIG_TABLE}] must be a table")
    unknown = sorted(set(table) - set(_BY_NAME))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(_BY_NAME)}"
        )
    return table


def resolve(
    flags: Mapping[str, Any] | argparse.Namespace | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build :class:`Settings` from parsed flags, the environment and the config file they name."""
    given = vars(flags) if isinstance(flags, argparse.Namespace) else dict(flags or {})
    env = os.environ if environ is None else environ
    config_path = given.get("config") or env.get(ENV_CONFIG)
    table = load_config_file(Path(config_path)) if config_path else {}
    values: dict[str, Any] = {}
    for f in FIELDS:
        if given.get(f.name) is not None:
            values[f.name] = _parse(f, given[f.name], f"flag {f.flag}")
        elif env.get(f.env) is not None:
            values[f.name] = _parse(f, env[f.env], f"env {f.env}")
        elif f.name in table:
            values[f.name] = _parse(f, table[f.name], f"config file {config_path}")
    return Settings(**values)
