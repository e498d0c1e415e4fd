"""The first error burst of a brand-new series reaches an alert, in a real Prometheus.

A counter series that Prometheus first sees at its non-zero value gives ``rate()`` nothing to
compare with. The processor exposes a new label set at zero on its first scrape (see
``llmpulse.processor.metrics.exposition``); this test sends one burst of calls of a feature and
model never seen before and waits for the project's own ``LLMPulseErrorRateHigh`` expression
(its ``for:`` set to 0 so the test need not wait minutes) to fire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from llmpulse.contract import attributes as A
from llmpulse.processor.metrics import names as M
from llmpulse.processor.service import ProcessorService
from llmpulse.testing.otlp import llm_attributes, make_request, make_span
from llmpulse.testing.polling import wait_until_async
from tests.processor.conftest import grpc_export

RULES = Path(__file__).resolve().parents[2] / "alerting" / "rules"
ALERT = "LLMPulseErrorRateHigh"


def _rule_files(tmp_path: Path) -> list[Path]:
    """The real recording rules, and the real error alert with ``for: 0s``."""
    alerts = yaml.safe_load((RULES / "llmpulse-alerts.yml").read_text())
    rules = [rule for group in alerts["groups"] for rule in group["rules"] if rule.get("alert") == ALERT]
    assert rules, f"{ALERT} is not in llmpulse-alerts.yml"
    for rule in rules:
        rule["for"] = "0s"
    path = tmp_path / "first-burst-alert.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "first-burst", "rules": rules}]}))
    return [RULES / "llmpulse-recording.yml", path]


def _burst(ok: int, errors: int) -> Any:
    attributes = {A.FEATURE: "brand-new", A.GEN_AI_REQUEST_MODEL: "gpt-4.1-mini"}
    spans = [
        make_span(llm_attributes(**attributes), span_id=i.to_bytes(8, "big")) for i in range(1, ok + 1)
    ] + [
        make_span(
            llm_attributes(**attributes, **{A.ERROR_TYPE: "RateLimitError", A.COST_USD: None}),
            span_id=(10_000 + i).to_bytes(8, "big"),
            status_code=2,
        )
        for i in range(errors)
    ]
    return make_request(spans, resource={"service.name": "shop"})


async def test_first_error_burst_of_a_new_series_fires_the_error_alert(
    service: ProcessorService, start_prometheus: Callable[[str], Any], tmp_path: Path
) -> None:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in _rule_files(tmp_path)],
        "scrape_configs": [
            {
                "job_name": "llmpulse-processor",
                "static_configs": [{"targets": [f"127.0.0.1:{service.admin.port}"]}],
            }
        ],
    }
    _, port = await asyncio.to_thread(start_prometheus, yaml.safe_dump(config))
    api = f"http://127.0.0.1:{port}/api/v1"
    async with httpx.AsyncClient() as client:

        async def query(expr: str) -> list[Any]:
            result: list[Any] = (await client.get(f"{api}/query", params={"query": expr})).json()["data"][
                "result"
            ]
            return result

        await wait_until_async(
            lambda: query('up{job="llmpulse-processor"} == 1'), timeout=60, message="Prometheus never scraped"
        )
        # one burst, never repeated: 100 good calls and 120 failures of a feature and model never seen
        await grpc_export(service.grpc.port, _burst(ok=100, errors=120))

        async def firing() -> list[Any] | None:
            alerts = (await client.get(f"{api}/alerts")).json()["data"]["alerts"]
            found = [a for a in alerts if a["labels"]["alertname"] == ALERT and a["state"] == "firing"]
            return found or None

        alerts = await wait_until_async(
            firing, timeout=60, interval=0.5, message=f"{ALERT} never fired on the first burst"
        )
        history = await query(f'{M.REQUESTS_TOTAL}{{feature="brand-new", outcome="error"}}[5m]')
    labels = alerts[0]["labels"]
    assert (labels["service"], labels["feature"], labels["model"]) == ("shop", "brand-new", "gpt-4.1-mini")
    # Prometheus stored the new series at 0 before its first count
    assert [value for _, value in history[0]["values"]][:2] == ["0", "120"]
