"""Alertmanager routing: the config is valid, routes by severity/component, inhibits, delivers."""

from __future__ import annotations

import subprocess
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


def test_processor_down_pages_and_inhibits_the_alerts_that_depend_on_it(
    start_alertmanager: Any, alertmanager_config_for: Callable[[str], str]
) -> None:
    with WebhookSink() as sink:
        _, port = start_alertmanager(alertmanager_config_for(sink.url))
        api = f"http://127.0.0.1:{port}/api/v2"
        alerts = [
            {
                "labels": {
                    "alertname": "LLMPulseProcessorDown",
                    "severity": "critical",
                    "component": "processor",
                    "job": "llmpulse-processor",
                    "instance": "processor:9464",
                }
            },
            {
                "labels": {
                    "alertname": "LLMPulseErrorRateHigh",
                    "severity": "critical",
                    "component": "llm",
                    "feature": "chat",
                    "provider": "openai",
                    "model": "gpt-4o",
                }
            },
            {
                "labels": {
                    "alertname": "LLMPulseInputDrift",
                    "severity": "warning",
                    "component": "drift",
                    "feature": "chat",
                    "signal": "input",
                    "job": "llmpulse-processor",
                    "instance": "processor:9464",
                }
            },
        ]
        assert httpx.post(f"{api}/alerts", json=alerts).status_code == 200
        notification = sink.wait_for("LLMPulseProcessorDown", timeout=20)
        assert notification is not None, "Alertmanager never delivered LLMPulseProcessorDown"
        assert notification.payload["receiver"] == "llmpulse-critical"

        def inhibited_by(alertname: str) -> list[str]:
            listed = httpx.get(f"{api}/alerts", params={"filter": f'alertname="{alertname}"'}).json()
            return [s for a in listed for s in a["status"]["inhibitedBy"]]

        for dependent in ("LLMPulseErrorRateHigh", "LLMPulseInputDrift"):
            message = f"{dependent} is not inhibited while the processor is down"
            wait_until(lambda d=dependent: inhibited_by(d), timeout=10, interval=0.1, message=message)
            assert inhibited_by(dependent), f"{dependent} is not inhibited while the processor is down"
            assert all(dependent not in n.alertnames for n in sink.notifications)


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
