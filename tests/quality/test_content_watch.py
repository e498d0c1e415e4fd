"""The content watch: through a real processor, each feature's content state, the reason when
none arrives, its metrics, its status section and its rate-limited log line."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.registry import CollectorRegistry

from llmpulse.contract import attributes as A
from llmpulse.processor.admin.status_client import render_table
from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.engine import QualityEngine
from llmpulse.processor.quality.extension import quality_extension
from llmpulse.processor.quality.settings import JudgeSettings, QualitySettings
from llmpulse.processor.service import ProcessorService
from llmpulse.processor.settings import Settings
from llmpulse.testing.clock import FakeClock
from llmpulse.testing.otlp import llm_attributes, make_request, make_span
from llmpulse.testing.polling import wait_until_async
from tests.processor.conftest import grpc_export

RESOURCE = {"service.name": "shop"}
INPUT = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "How do I get a refund?"}]}])


def _output(text: str) -> str:
    return json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": text}]}])


# feature -> span attributes of its calls (all of one kind)
CASES: dict[str, dict[str, Any]] = {
    "off": {},
    "zero": {A.SAMPLE_RATE: 0.0},
    "unlucky": {A.SAMPLE_RATE: 0.1},
    "hidden": {A.GEN_AI_INPUT_MESSAGES: INPUT, A.GEN_AI_OUTPUT_MESSAGES: _output("__REDACTED__")},
    "failing": {A.ERROR_TYPE: "InternalServerError", A.FINISH_REASON: "error"},
    "fine": {A.GEN_AI_INPUT_MESSAGES: INPUT, A.GEN_AI_OUTPUT_MESSAGES: _output("Within 30 days.")},
}
EXPECTED = {
    "off": Q.CONTENT_CAPTURE_OFF,
    "zero": Q.CONTENT_SAMPLE_RATE_ZERO,
    "unlucky": Q.CONTENT_NOT_SAMPLED,
    "hidden": Q.CONTENT_REDACTED,
    "failing": Q.CONTENT_ERRORS_ONLY,
    "fine": Q.CONTENT_SEEN,
}


def _spans(start: int) -> list[Any]:
    spans = []
    for n, (feature, extra) in enumerate(CASES.items()):
        attrs = llm_attributes(**{A.FEATURE: feature, **extra})
        status = 2 if A.ERROR_TYPE in extra else 0
        spans.append(make_span(attrs, span_id=(start + n).to_bytes(8, "big"), status_code=status))
    return spans


async def test_each_feature_says_whether_content_arrives_and_why_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(1_000.0)
    registry = CollectorRegistry()
    settings = QualitySettings(
        judge=JudgeSettings(enabled=False), db_path=str(tmp_path / "q.db"), content_missing_after_s=300.0
    )
    engine = QualityEngine(settings, registry=registry, clock=clock, monotonic=clock, tick_s=3600.0)
    service = ProcessorService(
        Settings(grpc_port=0, http_port=0, admin_port=0, drain_timeout=2.0),
        extensions=[quality_extension(engine, registry=registry)],
    )
    await service.startup()
    try:
        caplog.set_level(logging.WARNING, logger="llmpulse.processor.quality.content_watch")
        await grpc_export(service.grpc.port, make_request(_spans(1), resource=RESOURCE))
        await _wait_for(registry, len(CASES))
        for feature, state in EXPECTED.items():
            for name in Q.CONTENT_STATES:
                value = registry.get_sample_value(
                    Q.CONTENT_STATE, {"service": "shop", "feature": feature, "state": name}
                )
                assert value == (1.0 if name == state else 0.0), (feature, name, value)
        assert "event=content_missing" not in caplog.text  # not missing "for a while" yet

        # Five minutes on, every feature but "fine" (which gets content again) is logged, once.
        clock.advance(301.0)
        await grpc_export(service.grpc.port, make_request(_spans(100), resource=RESOURCE))
        await grpc_export(service.grpc.port, make_request(_spans(200), resource=RESOURCE))
        await _wait_for(registry, 3 * len(CASES))
        logged = [r.getMessage() for r in caplog.records if "event=content_missing" in r.getMessage()]
        assert sorted(m.split()[2] for m in logged) == sorted(f"feature={f}" for f in CASES if f != "fine")
        assert {m.split()[1] for m in logged} == {"service=shop"}
        off = next(m for m in logged if "feature=off" in m)
        assert "reason=capture_off seconds=301" in off
        assert "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=sampled" in off
        assert registry.get_sample_value(Q.CONTENT_AGE, {"service": "shop", "feature": "off"}) == 301.0
        assert registry.get_sample_value(Q.CONTENT_AGE, {"service": "shop", "feature": "fine"}) == 0.0

        document = service.status()
        content = document["quality"]["services"]["shop"]["zero"]["content"]
        assert content == {
            "state": "sample_rate_zero",
            "age_s": 301.0,
            "hint": "the app samples content at rate 0: raise LLMPULSE_SAMPLE_RATE",
        }
        table = render_table(json.loads(json.dumps(document)), "5m")
        assert "judge: off" in table
        section = table.split("content for the judge and drift")[1].splitlines()
        line = next(x for x in section if x.strip().startswith("shop/hidden"))
        assert line.split()[1:3] == ["redacted", "5m"]
    finally:
        await service.shutdown()


async def _wait_for(registry: CollectorRegistry, calls: int) -> None:
    def checked() -> float:
        return sum(
            registry.get_sample_value(Q.CHECKED_TOTAL, {"service": "shop", "feature": f}) or 0.0
            for f in CASES
        )

    await wait_until_async(lambda: checked() == calls, message=f"the engine never checked {calls} calls")
