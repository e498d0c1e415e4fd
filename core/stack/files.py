"""Where the local stack finds its files: the shipped configs and its state directories.

``llmpulse up`` and ``llmpulse demo`` read the alert rules, Alertmanager's config and the
collector's config (and name the collector's build manifest when the collector is missing).
They live at the top of the repository (``alerting/``, ``otel-collector.yaml``,
``collector/``), where compose, promtool and the docs use them too; the wheel carries copies
as package data under ``llmpulse/stack/data/`` with the same relative paths (``setup_hooks.py``
puts them there at build time). :func:`root` is the one place that decides which is read:

* installed from a wheel: the package data;
* a checkout (editable install, ``make up``): the package has no ``data/`` folder, so the
  repository's own files, exactly as before they were packaged.

State (pids, generated configs, logs) goes to ``<checkout>/.cache/<name>`` in a checkout and to
``$XDG_STATE_HOME/llmpulse/<name>`` (``~/.local/state/llmpulse/<name>``) otherwise: one place per
user, so ``llmpulse down`` finds the stack from any directory.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping
from pathlib import Path

from llmpulse.errors import LLMPulseError

__all__ = [
    "ALERTMANAGER_CONFIG",
    "COLLECTOR_CONFIG",
    "COLLECTOR_KAFKA_CONFIG",
    "COLLECTOR_MANIFEST",
    "RULES",
    "SHIPPED",
    "StackFilesMissing",
    "alertmanager_config",
    "checkout_root",
    "collector_config",
    "collector_kafka_config",
    "collector_manifest",
    "root",
    "rule_files",
    "rules_dir",
    "state_dir",
]

# Paths relative to root(): the repository's layout, which the package data mirrors.
RULES = "alerting/rules"  # every *.yml in it is loaded by Prometheus
ALERTMANAGER_CONFIG = "alerting/alertmanager.yml"
COLLECTOR_CONFIG = "otel-collector.yaml"
COLLECTOR_KAFKA_CONFIG = "otel-collector-kafka.yaml"  # llmpulse up --replicas
COLLECTOR_MANIFEST = "collector/builder-config.yaml"
SHIPPED = (RULES, ALERTMANAGER_CONFIG, COLLECTOR_CONFIG, COLLECTOR_KAFKA_CONFIG, COLLECTOR_MANIFEST)

_DATA = "data"
_PACKAGE = __name__.rpartition(".")[0]
_HERE = Path(__file__).resolve()


class StackFilesMissing(LLMPulseError, FileNotFoundError):
    """A file the stack needs is in neither the package data nor a checkout: a broken install."""


def checkout_root() -> Path | None:
    """The llmpulse repository this module runs from (editable install), or None (a wheel)."""
    source_root = _HERE.parents[2]
    if _HERE.parents[1].name == "core" and (source_root / "pyproject.toml").is_file():
        return source_root
    return None


def _package_data() -> Path | None:
    data = importlib.resources.files(_PACKAGE) / _DATA
    # pip installs wheels unpacked, so the data is a real directory; Prometheus and the
    # collector need real paths, which a zip import could not give them.
    return data if isinstance(data, Path) and data.is_dir() else None


def root() -> Path:
    """The directory the shipped stack files are read from (see the module docstring)."""
    packaged = _package_data()
    if packaged is not None:
        return packaged
    checkout = checkout_root()
    if checkout is not None:
        return checkout
    return Path(str(importlib.resources.files(_PACKAGE) / _DATA))  # absent: the lookups say so


def _existing(relative: str) -> Path:
    path = root() / relative
    if not path.exists():
        raise StackFilesMissing(
            f"{path} is missing: this llmpulse install lacks its stack files; "
            "reinstall it (pip install --force-reinstall llmpulse) or run from a checkout"
        )
    return path


def rules_dir() -> Path:
    """The folder of the shipped Prometheus rule files (not checked: callers glob it)."""
    return root() / RULES


def rule_files() -> list[Path]:
    """The shipped Prometheus rule files, sorted."""
    found = sorted(_existing(RULES).glob("*.yml"))
    if not found:
        raise StackFilesMissing(f"no rule files (*.yml) in {root() / RULES}")
    return found


def alertmanager_config() -> Path:
    """The shipped Alertmanager config (its webhook is rewritten by whoever starts it)."""
    return _existing(ALERTMANAGER_CONFIG)


def collector_config() -> Path:
    """The shipped collector config; its endpoints are ``${env:...}`` filled at start."""
    return _existing(COLLECTOR_CONFIG)


def collector_kafka_config() -> Path:
    """The shipped collector config with the kafka exporter (``llmpulse up --replicas``)."""
    return _existing(COLLECTOR_KAFKA_CONFIG)


def collector_manifest() -> Path:
    """The OpenTelemetry Collector Builder manifest the llmpulse collector is built from."""
    return _existing(COLLECTOR_MANIFEST)


def state_dir(name: str, environ: Mapping[str, str]) -> Path:
    """Default state directory of ``name`` (``stack`` for ``llmpulse up``, ``demo``).

    ``environ`` is read for ``XDG_STATE_HOME`` (a relative value is ignored, as the XDG
    base directory specification says).
    """
    checkout = checkout_root()
    if checkout is not None:
        return checkout / ".cache" / name
    xdg = environ.get("XDG_STATE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "llmpulse" / name
