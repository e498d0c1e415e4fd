"""Two apps with a feature of the same name keep apart in the quality and drift engines: their
SPC charts, counts, flagged samples, content state, drift references and the CLI views.

Through a real processor over OTLP/gRPC: ``shop`` and ``blog`` both call their feature ``chat``;
every call of ``shop`` fails, none of ``blog``'s does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.registry import CollectorRegistry

from llmpulse.contract import attributes as A
from llmpulse.processor.drift.engine import AmbiguousFeature, DriftEngine
from llmpulse.processor.drift.extension import drift_extension
from llmpulse.processor.drift.state import DriftSettings
from llmpulse.processor.quality import cli as quality_cli
from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.chart_store import ChartStore
from llmpulse.processor.quality.charts import QualityCharts
from llmpulse.processor.quality.engine import QualityEngine
from llmpulse.processor.quality.extension import quality_extension
from llmpulse.processor.quality.settings import JudgeSettings, QualitySettings, SpcSettings
from llmpulse.processor.service import ProcessorService
from llmpulse.processor.settings import Settings
from llmpulse.testing.otlp import llm_attributes, make_request, make_span
from llmpulse.testing.polling import wait_until_async
from tests.processor.conftest import grpc_export

WINDOW = 5
SERVICES = ("shop", "blog")


def _input(text: str) -> str:
    return json.dumps([{"role": "user", "parts": [{"type": "text", "content": text}]}])


def _spans(service: str, start: int, n: int) -> list[Any]:
    spans = []
    for i in range(n):
        attrs = llm_attributes(
            **{A.FEATURE: "chat", A.GEN_AI_INPUT_MESSAGES: _input(f"{service} question {start + i}")}
        )
        failing = service == "shop"
        if failing:
            attrs[A.ERROR_TYPE] = "InternalServerError"
            attrs[A.FINISH_REASON] = "error"
        spans.append(  # one request, one trace: the drift engine takes one prompt per trace
            make_span(
                attrs,
                trace_id=(start + i).to_bytes(16, "big"),
                span_id=(start + i).to_bytes(8, "big"),
                status_code=2 if failing else 0,
            )
        )
    return spans


@pytest.fixture
async def stack(tmp_path: Path) -> Any:
    registry = CollectorRegistry()
    settings = QualitySettings(
        judge=JudgeSettings(enabled=False),
        db_path=str(tmp_path / "quality.db"),
        spc=SpcSettings(warmup_windows=3, requests_per_window=WINDOW),
    )
    quality = QualityEngine(settings, registry=registry, tick_s=3600.0)
    drift_registry = CollectorRegistry()
    drift = DriftEngine(
        registry=drift_registry,
        settings=DriftSettings(
            reference_size=20, window_size=20, min_current=10, test_every=10, permutations=19
        ),
    )
    service = ProcessorService(
        Settings(grpc_port=0, http_port=0, admin_port=0, drain_timeout=2.0),
        extensions=[
            quality_extension(quality, registry=registry),
            drift_extension(drift, interval=0.05),
        ],
    )
    await service.startup()
    try:
        yield service, quality, drift, registry, drift_registry
    finally:
        await service.shutdown()


async def test_two_services_sharing_a_feature_keep_their_own_quality_and_drift_state(
    stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service, quality, drift, registry, drift_registry = stack
    calls = 4 * WINDOW
    for n, name in enumerate(SERVICES):
        request = make_request(_spans(name, 1000 * (n + 1), calls), resource={"service.name": name})
        await grpc_export(service.grpc.port, request)

    def value(name: str, service_name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"service": service_name, "feature": "chat", **labels})

    await wait_until_async(
        lambda: all(value(Q.CHECKED_TOTAL, name) == calls for name in SERVICES),
        message="the quality engine never checked every call of both services",
    )
    # One error-rate chart each: all errors for shop, none for blog; neither sees the other's calls.
    assert value(Q.SPC_VALUE, "shop", statistic=Q.STAT_ERROR_RATE) == 1.0
    assert value(Q.SPC_VALUE, "blog", statistic=Q.STAT_ERROR_RATE) == 0.0
    states = quality.charts.states()
    assert {key for key in states if key[2] == Q.STAT_ERROR_RATE} == {
        ("shop", "chat", Q.STAT_ERROR_RATE),
        ("blog", "chat", Q.STAT_ERROR_RATE),
    }
    # 4 windows each: 3 of warm-up, then the first monitored point (not 8 windows of mixed calls)
    assert states[("blog", "chat", Q.STAT_ERROR_RATE)].index == 1  # type: ignore[union-attr]
    # Content state per service: blog's calls carry prompts but no answer text, shop's only fail.
    status = service.status()["quality"]["services"]
    assert status["shop"]["chat"]["content"]["state"] == Q.CONTENT_ERRORS_ONLY
    assert status["blog"]["chat"]["content"]["state"] == Q.CONTENT_REDACTED
    assert value(Q.CONTENT_STATE, "shop", state=Q.CONTENT_ERRORS_ONLY) == 1.0

    # Drift: one reference per service, filled by that service's prompts only.
    await wait_until_async(
        lambda: (
            len(drift.features()) == 2 and all(f["state"] == "monitoring" for f in drift.status()["features"])
        ),
        message="the drift engine never froze both references",
    )
    assert drift.features() == [("blog", "chat"), ("shop", "chat")]
    assert (
        drift_registry.get_sample_value(
            "llmpulse_drift_reference_samples", {"service": "shop", "feature": "chat"}
        )
        == 20
    )
    with pytest.raises(AmbiguousFeature, match="blog, shop"):
        drift.refreeze("chat")
    assert drift.refreeze("chat", service="shop")["service"] == "shop"

    # Flagged samples carry their service; the CLI narrows by it.
    await quality.drain(timeout=10)
    await quality.tick()
    with ChartStore(quality.store.path) as charts:
        assert ("shop", "chat", Q.STAT_ERROR_RATE) in charts.load_charts()
    db = quality.store.path
    assert quality_cli.main(["spc", "--db", db, "show", "--service", "blog"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0].split()[:3] == ["SERVICE", "FEATURE", "STATISTIC"]
    assert {line.split()[0] for line in shown[1:]} == {"blog"}
    assert quality_cli.main(["spc", "--db", db, "reset", "--feature", "chat", "--service", "blog"]) == 0
    assert "for service blog feature chat" in capsys.readouterr().out
    await quality.tick()  # the engine takes the request: blog's charts restart, shop's stay
    assert quality.charts.chart("blog", "chat", Q.STAT_ERROR_RATE).in_warmup
    assert not quality.charts.chart("shop", "chat", Q.STAT_ERROR_RATE).in_warmup


def test_a_chart_saved_before_per_service_charts_is_taken_over_by_the_first_service() -> None:
    spc = SpcSettings(warmup_windows=3, requests_per_window=2)
    learnt = QualityCharts(spc)
    for value in (0.1, 0.2, 0.15, 0.12):
        learnt._point(("unknown_service", "chat"), Q.STAT_LATENCY_P95, value)
    snapshot = learnt.take_dirty()[("unknown_service", "chat", Q.STAT_LATENCY_P95)]
    charts = QualityCharts(spc)
    charts.load({("", "chat", Q.STAT_LATENCY_P95): snapshot})  # as migrated from a feature-only file
    adopted = charts.chart("shop", "chat", Q.STAT_LATENCY_P95)
    assert (
        adopted.baseline is not None
        and adopted.baseline == learnt.chart("unknown_service", "chat", Q.STAT_LATENCY_P95).baseline
    )
    assert charts.chart("blog", "chat", Q.STAT_LATENCY_P95).in_warmup  # taken once, by one service
    assert ("shop", "chat", Q.STAT_LATENCY_P95) in charts.take_dirty()  # saved under its service
