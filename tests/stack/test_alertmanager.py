"""Alertmanager routing: the config is valid, routes by severity/component, inhibits, delivers."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmpulse.stack import components
from llmpulse.testing.polling import wait_until
from llmpulse.testing.webhook_sink import WebhookSink

REPO = components.REPO_ROOT
SHIPPED = REPO / "alerting" / "alertmanager.yml"
EXAMPLE = REPO / "alerting" / "alertmanager.receivers.example.yml"
DEFAULT_WEBHOOK = "http://127.0.0.1:9099/alerts"

# also on Alertmanager 0.35 (the Makefile's second pytest run)
pytestmark = pytest.mark.prometheus3


@pytest.mark.parametrize("config", [SHIPPED, EXAMPLE], ids=lambda p: p.name)
def test_amtool_check_config(amtool: Path, config: Path) -> None:
    result = subprocess.run([str(amtool), "check-config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("config", "labels", "receiver"),
    [
        (SHIPPED, ["component=processor", "severity=critical"], "llmpulse-critical"),
        (SHIPPED, ["component=processor", "severity=warning"], "llmpulse-warning"),
        (SHIPPED, ["component=llm", "severity=critical", "feature=chat"], "llmpulse-critical"),
        (SHIPPED, ["component=llm", "severity=warning", "feature=chat"], "llmpulse-warning"),
        (SHIPPED, ["component=quality", "severity=warning", "feature=chat"], "llmpulse-warning"),
        (SHIPPED, ["component=drift", "severity=warning", "feature=chat"], "llmpulse-warning"),
        (SHIPPED, ["severity=info"], "llmpulse-default"),
        (EXAMPLE, ["component=llm", "severity=critical", "feature=checkout"], "pagerduty-and-slack-checkout"),
        (EXAMPLE, ["component=llm", "severity=warning", "feature=checkout"], "slack-checkout"),
        (EXAMPLE, ["component=llm", "severity=critical", "feature=chat"], "pagerduty-ops"),
        (EXAMPLE, ["component=processor", "severity=warning"], "slack-ops"),
        (EXAMPLE, ["severity=info"], "email-ops"),
    ],
)
def test_routes(amtool: Path, config: Path, labels: list[str], receiver: str) -> None:
    result = subprocess.run(
        [str(amtool), "config", "routes", "test", f"--config.file={config}", *labels],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receiver


def test_shipped_webhooks_point_at_the_local_sink() -> None:
    config = yaml.safe_load(SHIPPED.read_text())
    urls = {hook["url"] for r in config["receivers"] for hook in r.get("webhook_configs", [])}
    assert urls == {DEFAULT_WEBHOOK}


PROCESSORS = {"component": "processor", "job": "llmpulse-processor"}
SIGNALS = [  # one alert of each component computed from the apps' calls
    {"alertname": "LLMPulseErrorRateHigh", "severity": "critical", "component": "llm", "service": "shop"}
    | {"feature": "chat", "provider": "openai", "model": "gpt-4o"},
    {"alertname": "LLMPulseQualitySPCAlarm", "severity": "warning", "component": "quality"}
    | {"service": "shop", "feature": "chat", "statistic": "judge_score"},
    {"alertname": "LLMPulseInputDrift", "severity": "warning", "component": "drift"}
    | {"service": "shop", "feature": "chat", "signal": "input"},
    {"alertname": "LLMPulseAgentRunaway", "severity": "warning", "component": "agents"}
    | {"service": "shop", "agent": "planner", "reason": "llm_calls"},
]


def _replica(alertname: str, severity: str, instance: str, **labels: str) -> dict[str, str]:
    return {"alertname": alertname, "severity": severity, **PROCESSORS, "instance": instance, **labels}


def _inhibited(api: str) -> dict[str, bool]:
    """Each alert Alertmanager holds (by alertname and instance): whether it is inhibited."""
    listed = httpx.get(f"{api}/alerts", timeout=10).json()
    return {
        f"{a['labels']['alertname']} {a['labels'].get('instance', '')}".strip(): bool(
            a["status"]["inhibitedBy"]
        )
        for a in listed
    }


def test_monitoring_down_pages_once_and_inhibits_every_signal_and_the_replica_warnings(
    start_alertmanager: Any, alertmanager_config_for: Callable[[str], str]
) -> None:
    """No processor answers: one page that monitoring is down; the alerts on the apps' calls
    (llm, quality, drift, agents) and the per-replica processor alerts are inhibited."""
    with WebhookSink() as sink:
        _, port = start_alertmanager(alertmanager_config_for(sink.url))
        api = f"http://127.0.0.1:{port}/api/v2"
        down = {"alertname": "LLMPulseMonitoringDown", "severity": "critical", **PROCESSORS}
        replicas = [
            _replica("LLMPulseProcessorDown", "warning", "replica-a:9464"),
            _replica("LLMPulseProcessorDown", "warning", "replica-b:9464"),
            _replica("LLMPulseKafkaConsumerLagHigh", "warning", "replica-b:9464", topic="llmpulse-owners"),
        ]
        alerts = [{"labels": labels} for labels in [down, *SIGNALS, *replicas]]
        assert httpx.post(f"{api}/alerts", json=alerts, timeout=10).status_code == 200
        notification = sink.wait_for("LLMPulseMonitoringDown", timeout=20)
        assert notification is not None, "Alertmanager never delivered LLMPulseMonitoringDown"
        assert notification.payload["receiver"] == "llmpulse-critical"

        expected = {name: True for name in _inhibited(api)} | {"LLMPulseMonitoringDown": False}
        assert len(expected) == 1 + len(SIGNALS) + len(replicas), expected
        wait_until(
            lambda: _inhibited(api) == expected, timeout=10, interval=0.1, message=lambda: _inhibited(api)
        )
        time.sleep(2)  # group_wait and group_interval are 1 s here: anything not inhibited is sent by now
        sent = {name for n in sink.notifications for name in n.alertnames}
        assert sent == {"LLMPulseMonitoringDown"}, sent


def test_one_replica_down_is_a_warning_that_mutes_only_its_own_alerts(
    start_alertmanager: Any, alertmanager_config_for: Callable[[str], str]
) -> None:
    """One of several replicas down: the others keep computing every signal, so its warning
    inhibits no signal alert, only the same replica's processor alerts."""
    with WebhookSink() as sink:
        _, port = start_alertmanager(alertmanager_config_for(sink.url))
        api = f"http://127.0.0.1:{port}/api/v2"
        alerts = [
            _replica("LLMPulseProcessorDown", "warning", "replica-a:9464"),
            _replica(
                "LLMPulseExportsRefused", "warning", "replica-a:9464", receiver="kafka", reason="queue_full"
            ),
            _replica(
                "LLMPulseExportsRefused", "warning", "replica-b:9464", receiver="kafka", reason="queue_full"
            ),
            *SIGNALS,
        ]
        assert (
            httpx.post(f"{api}/alerts", json=[{"labels": a} for a in alerts], timeout=10).status_code == 200
        )
        names = {a["alertname"] for a in SIGNALS} | {"LLMPulseProcessorDown"}
        for name in names:
            assert sink.wait_for(name, timeout=20) is not None, f"{name} was not delivered"
        down = next(n for n in sink.notifications if "LLMPulseProcessorDown" in n.alertnames)
        assert down.payload["receiver"] == "llmpulse-warning"
        state = _inhibited(api)
        assert state == {
            "LLMPulseProcessorDown replica-a:9464": False,
            "LLMPulseExportsRefused replica-a:9464": True,  # the dead replica's own
            "LLMPulseExportsRefused replica-b:9464": False,  # another replica's: news
            **{a["alertname"]: False for a in SIGNALS},
        }, state


def test_ingest_stalled_does_not_silence_canaries(
    start_alertmanager: Any, alertmanager_config_for: Callable[[str], str]
) -> None:
    """Canary probes run inside the processor: no app spans does not make their failure stale."""
    with WebhookSink() as sink:
        _, port = start_alertmanager(alertmanager_config_for(sink.url))
        api = f"http://127.0.0.1:{port}/api/v2"
        processor = {"job": "llmpulse-processor", "instance": "processor:9464"}
        ingest = {"alertname": "LLMPulseIngestStalled", "severity": "critical", "component": "processor"}
        canary = {"alertname": "LLMPulseCanaryFailing", "severity": "warning", "component": "quality"}
        spc = {"alertname": "LLMPulseQualitySPCAlarm", "severity": "warning", "component": "quality"}
        alerts = [
            {"labels": {**ingest, **processor}},
            {"labels": {**canary, "probe": "json", "model": "gpt-4o", **processor}},
            {"labels": {**spc, "feature": "chat", "statistic": "judge_score", **processor}},
        ]
        assert httpx.post(f"{api}/alerts", json=alerts).status_code == 200
        assert sink.wait_for("LLMPulseCanaryFailing", timeout=30) is not None, "the canary alert was silenced"

        def inhibited(alertname: str) -> bool:
            listed = httpx.get(f"{api}/alerts", params={"filter": f'alertname="{alertname}"'}).json()
            return any(a["status"]["inhibitedBy"] for a in listed)

        wait_until(lambda: inhibited("LLMPulseQualitySPCAlarm"), timeout=10, interval=0.1)
        assert inhibited("LLMPulseQualitySPCAlarm")
        assert not inhibited("LLMPulseCanaryFailing")
