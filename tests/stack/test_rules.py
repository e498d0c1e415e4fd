"""The Prometheus rules: promtool accepts them, every alert is unit-tested and documented."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmpulse.stack import components

REPO = components.REPO_ROOT
RULE_FILES = sorted((REPO / "alerting" / "rules").glob("*.yml"))
RULE_TESTS = sorted((REPO / "alerting" / "tests").glob("*.test.yml"))
RUNBOOK_URL = "https://github.com/llmpulse/llmpulse/blob/main/docs/runbooks/{alert}.md"
# The console's incident page of the alert (docs/console.md): the base URL is Prometheus'
# external label console_url, which `llmpulse up` sets.
CONSOLE_URL = (
    "{{{{ $externalLabels.console_url }}}}/alert?alertname={alert}"
    "&service={{{{ $labels.service | urlquery }}}}&feature={{{{ $labels.feature | urlquery }}}}"
)
ANNOTATIONS = {"summary", "description", "runbook_url", "console_url"}
SEVERITIES = {"critical", "warning", "info"}
# The values alerting/alertmanager.yml routes and inhibits on.
COMPONENTS = {"llm", "processor", "quality", "drift", "agents"}


def _duration_minutes(text: str) -> float:
    value, unit = float(text[:-1]), text[-1]
    return value * {"s": 1 / 60, "m": 1, "h": 60}[unit]


@pytest.mark.prometheus3
def test_promtool_check_rules(promtool: Path) -> None:
    result = subprocess.run(
        [str(promtool), "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_test_rules(promtool: Path, test_file: Path) -> None:
    result = subprocess.run(
        [str(promtool), "test", "rules", test_file.name], capture_output=True, text=True, cwd=test_file.parent
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_test_rules_on_prometheus3(promtool3: Path, test_file: Path) -> None:
    """The same cases pass on Prometheus 3, whose ranges leave their left edge open."""
    version = subprocess.run([str(promtool3), "--version"], capture_output=True, text=True).stdout
    assert re.search(r"version 3\.", version), f"{promtool3} is not Prometheus 3: {version[:80]!r}"
    result = subprocess.run(
        [str(promtool3), "test", "rules", test_file.name],
        capture_output=True,
        text=True,
        cwd=test_file.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_group_has_a_test_file(rule_groups: list[dict[str, Any]]) -> None:
    alert_groups = {g["name"] for g in rule_groups if any("alert" in r for r in g["rules"])}
    tested = {path.name.removesuffix(".test.yml") for path in RULE_TESTS}
    # beside one file per group, one across groups: the rules with several processor replicas
    assert alert_groups == tested - {"llmpulse-replicas"}


def test_every_alert_is_shown_quiet_before_for_and_firing_after(
    alert_rules: dict[str, dict[str, Any]],
) -> None:
    """Each alert has a test where it does not fire, then fires with its labels and annotations."""
    quiet: dict[str, list[float]] = {}
    firing: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                at = _duration_minutes(check["eval_time"])
                if check.get("exp_alerts"):
                    firing.setdefault(check["alertname"], []).extend((at, a) for a in check["exp_alerts"])
                else:
                    quiet.setdefault(check["alertname"], []).append(at)
    for name, rule in alert_rules.items():
        assert name in firing, f"{name}: no promtool test shows it firing"
        first_fire = min(at for at, _ in firing[name])
        assert any(at < first_fire for at in quiet.get(name, [])), (
            f"{name}: never shown quiet before it fires"
        )
        for _, expected in firing[name]:
            assert expected["exp_labels"]["severity"] == rule["labels"]["severity"]
            assert set(expected["exp_annotations"]) == ANNOTATIONS
        assert "for" in rule, f"{name}: no `for:`, a single bad scrape would page"
        if rule["for"] == "0s":
            # a multi-window burn-rate alert: its short window is the confirmation, and it
            # needs a few bad calls in that window besides the ratio
            assert re.search(r":rate(5m|30m) >", rule["expr"]), name
            assert re.search(r":rate(1h|6h) >", rule["expr"]), name
            assert re.search(r":increase(5m|30m) >= 3", rule["expr"]), name


def test_every_alert_is_labelled_annotated_and_has_a_runbook(alert_rules: dict[str, dict[str, Any]]) -> None:
    for name, rule in alert_rules.items():
        assert name.startswith("LLMPulse"), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["labels"]["component"] in COMPONENTS, name
        annotations = rule["annotations"]
        assert set(annotations) == ANNOTATIONS, name
        assert "$value" in annotations["description"], f"{name}: the description must say the value"
        # The description names what the alert is about: the feature (or, for canaries, the
        # probe), else the processor instance (pipeline and judge alerts), or the job for what is
        # judged over all replicas (ingest stall, the shared judge budget).
        subject = [f"$labels.{label}" for label in ("feature", "probe", "instance", "job", "agent", "tool")]
        named = [s for s in subject if s in annotations["description"]]
        if rule["labels"]["component"] == "llm":
            # per-call alerts are per service: two apps with one feature name are two alerts
            assert annotations["summary"].startswith("{{ $labels.service }}: "), name
            per_model = (
                "$labels.service" in annotations["description"]
                and "$labels.model" in annotations["description"]
            )
            assert "$labels.feature" in named or per_model, f"{name}: the description must name the feature"
        else:
            assert named, f"{name}: the description must name the feature, probe or instance"
        assert annotations["runbook_url"] == RUNBOOK_URL.format(alert=name)
        assert annotations["console_url"] == CONSOLE_URL.format(alert=name), name
        runbook = REPO / "docs" / "runbooks" / f"{name}.md"
        assert runbook.is_file(), f"{name}: missing {runbook}"
        text = runbook.read_text()
        for section in ("## Triage", "## Scope", "## Isolate", "## Respond", "## Learn"):
            assert section in text, f"{runbook.name}: missing section {section!r}"
        assert (
            re.search(r"llmpulse triage (--service \S+ )?--feature", text)
            or rule["labels"]["component"] == "processor"
        )


def test_every_runbook_belongs_to_an_alert(alert_rules: dict[str, dict[str, Any]]) -> None:
    pages = {p.stem for p in (REPO / "docs" / "runbooks").glob("LLMPulse*.md")}
    assert pages == set(alert_rules)
