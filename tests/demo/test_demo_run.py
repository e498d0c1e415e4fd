"""The whole demo at high speed on real components: every incident with an alert rule fires it
at the webhook, and nothing else fires.

Real processor, collector, Prometheus (the shipped rules compressed by the speed factor),
Alertmanager (its routing, timings compressed alike) and webhook sink, on free ports; the demo's
app is a separate process instrumented by ``LLMPULSE_ENABLED=1`` only. About 7 minutes.

Incidents whose alert is not defined in alerting/rules/ are reported "no alert rule yet" and
not asserted; every incident whose alert is defined must be detected (today all ten).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from llmpulse.demo.provider import WORSE_MODEL
from llmpulse.demo.report import DETECTED, render_table
from llmpulse.demo.rules import alert_rules
from llmpulse.demo.runner import DemoOptions, run_demo
from llmpulse.demo.scenario import INCIDENTS
from llmpulse.demo.view import PlainView
from llmpulse.stack.local import free_ports

pytestmark = pytest.mark.components

# 9.8 simulated hours in 6.5 minutes. Not faster: a compressed hour must hold the 100 calls the
# survivorship alert asks for while the abandonment surge thins support-chat's traffic to about
# 4 calls/s (at speed 120 an hour is 30 s, about 120 calls, under 100 whenever traffic dips).
SPEED = 90.0


def test_every_incident_with_a_rule_reaches_the_webhook_and_nothing_else_fires(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    ports = free_ports()
    out = io.StringIO()
    options = DemoOptions(tmp_path / "state", speed=SPEED, ports=ports, refresh_s=10.0)
    result = run_demo(options, PlainView(out))
    table = render_table(result)
    print("\n" + table)

    defined = alert_rules()
    # Every incident whose alert is defined is checked; "engine not running" is a failure here,
    # because the stack the demo starts runs the quality and drift engines.
    checked = [r for r in result.incidents if r.expected is not None]
    assert {r.incident.key for r in checked} >= {
        "error_burst",
        "retrieval_slowdown",
        "cost_spike",
        "silent_model_change",
        "tool_failure",
        "agent_loop",
        "first_answer_exit",
    }, table
    missed = [f"{r.incident.title}: {r.expected}" for r in checked if r.status != DETECTED]
    assert not missed, f"incidents whose alert never reached the webhook: {missed}\n{table}\n{out.getvalue()}"
    assert not result.false_alarms, f"alerts that fired with no incident:\n{table}"
    for r in checked:
        assert r.alert is not None and r.alert.name in defined
        assert r.alert.webhook_at >= r.started_at
        record_property(f"{r.incident.key}_to_webhook_seconds", round(r.delay_s or 0.0, 1))

    # The report: Markdown with a plot per incident that has data, and the JSON twin.
    report = (tmp_path / "state" / "report" / "report.md").read_text()
    assert all(i.title in report for i in INCIDENTS)
    for r in checked:
        assert (tmp_path / "state" / "report" / f"incident-{r.incident.key}.png").stat().st_size > 1000
        # each detected incident links to its console page (the alert's console_url label)
        assert r.alert is not None
        link = f"http://127.0.0.1:{ports.console}/alert?alertname={r.alert.name}&"
        assert link in report, (link, report)
    # The quality regression's bundles (the console forwards them to the sink): the weaker model
    # that answers is where the flagged samples concentrate and is what changed.
    bundles = [
        b
        for line in (tmp_path / "state" / "notifications.jsonl").read_text().splitlines()
        for b in json.loads(line).get("bundles", [])
        if b.get("alertname") in ("LLMPulseQualityScoreDrop", "LLMPulseQualitySPCAlarm")
    ]
    worse = {"dimension": "response model", "value": WORSE_MODEL}
    assert any(worse in b["concentrates_in"] for b in bundles), bundles
    assert any(
        {"dimension": c["dimension"], "value": c["value"]} == worse
        for b in bundles
        for c in b["what_changed"]
    ), bundles
    assert (tmp_path / "state" / "report" / "report.json").is_file()
    # The plain view printed progress and the live numbers.
    assert "incident: provider error burst" in out.getvalue()
    # (among the other alerts firing then, sorted by name: the slow error burn fires too)
    assert re.search(r"firing: .*LLMPulseErrorRateHigh\{support-chat\}", out.getvalue())
