"""Fixtures for the stack tests: the rule files, the generated dashboards, promtool and amtool."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmpulse.stack import components

REPO = components.REPO_ROOT
RULES_DIR = REPO / "alerting" / "rules"
RULE_TESTS_DIR = REPO / "alerting" / "tests"
GENERATED_DASHBOARDS = REPO / "dashboards" / "generated"
SHIPPED_ALERTMANAGER = REPO / "alerting" / "alertmanager.yml"


@dataclass(frozen=True)
class PanelQuery:
    """One PromQL target of one dashboard panel."""

    dashboard: str
    panel: str
    expr: str
    exemplar: bool

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel}: {self.expr}"


def _binary(find: Any) -> Path:
    try:
        return Path(find())
    except components.ComponentMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def promtool() -> Path:
    return _binary(components.promtool_binary)


PROMTOOL3 = REPO / ".cache" / "prometheus3" / "bin" / "promtool"


@pytest.fixture(scope="session")
def promtool3() -> Path:
    """Prometheus 3's promtool, built by ``make setup`` (scripts/build_prometheus3.sh)."""
    if not PROMTOOL3.is_file():
        pytest.fail(
            f"Prometheus 3's promtool is not at {PROMTOOL3}: run `make setup` (or `make prometheus3`), "
            "which builds it from the Go module proxy (scripts/build_prometheus3.sh)",
            pytrace=False,
        )
    return PROMTOOL3


@pytest.fixture(scope="session")
def amtool() -> Path:
    return _binary(components.amtool_binary)


@pytest.fixture(scope="session")
def rule_groups() -> list[dict[str, Any]]:
    """Every rule group of every file in alerting/rules/, in file order."""
    groups: list[dict[str, Any]] = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    assert groups, f"no rule groups in {RULES_DIR}"
    return groups


@pytest.fixture(scope="session")
def alert_rules(rule_groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """alertname -> rule (with its group name under ``_group``)."""
    return {
        rule["alert"]: {**rule, "_group": group["name"]}
        for group in rule_groups
        for rule in group["rules"]
        if "alert" in rule
    }


@pytest.fixture(scope="session")
def recorded_names(rule_groups: list[dict[str, Any]]) -> frozenset[str]:
    return frozenset(rule["record"] for group in rule_groups for rule in group["rules"] if "record" in rule)


def load_dashboards() -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON of every committed generated dashboard."""
    boards = {}
    for path in sorted(GENERATED_DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        boards[board["uid"]] = board
    return boards


def panel_queries(boards: dict[str, dict[str, Any]]) -> list[PanelQuery]:
    """Every PromQL target of every panel (rows included) of ``boards``."""
    found = []
    for uid, board in boards.items():
        panels = list(board.get("panels", []))
        while panels:
            panel = panels.pop(0)
            panels.extend(panel.get("panels", []))
            for target in panel.get("targets", []):
                found.append(PanelQuery(uid, panel["title"], target["expr"], bool(target.get("exemplar"))))
    return found


@pytest.fixture(scope="session")
def dashboards() -> dict[str, dict[str, Any]]:
    boards = load_dashboards()
    assert boards, f"no generated dashboards in {GENERATED_DASHBOARDS}"
    return boards


@pytest.fixture(scope="session")
def dashboard_queries(dashboards: dict[str, dict[str, Any]]) -> list[PanelQuery]:
    return panel_queries(dashboards)


@pytest.fixture(scope="session")
def alertmanager_config_for() -> Callable[[str], str]:
    """Render alerting/alertmanager.yml for a test: webhooks to the given URL, 1 s batching waits."""

    def render(webhook_url: str) -> str:
        config: dict[str, Any] = yaml.safe_load(SHIPPED_ALERTMANAGER.read_text())
        for receiver in config["receivers"]:
            for hook in receiver.get("webhook_configs", []):
                hook["url"] = webhook_url

        def quick(route: dict[str, Any]) -> None:
            for key in ("group_wait", "group_interval"):
                if key in route:
                    route[key] = "1s"
            for child in route.get("routes", []):
                quick(child)

        quick(config["route"])
        return yaml.safe_dump(config)

    return render
