"""The drift engine inside a real processor: OTLP spans with content in, drift metrics and routes out."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from llmpulse.contract import attributes as A
from llmpulse.contract.attributes import UNKNOWN_SERVICE
from llmpulse.processor.drift.engine import DriftEngine, DriftSettings
from llmpulse.processor.drift.extension import drift_extension
from llmpulse.processor.drift.synthetic import SyntheticStream
from llmpulse.processor.service import ProcessorService
from llmpulse.processor.settings import Settings
from llmpulse.testing.otlp import make_request, make_span
from llmpulse.testing.polling import wait_until_async

T0 = 1_700_000_000_000_000_000


def _span(i: int, prompt: str | None, answer: str) -> Span:
    attributes: dict[str, Any] = {
        A.SPAN_KIND: A.SPAN_KIND_LLM,
        A.GEN_AI_OPERATION_NAME: "chat",
        A.GEN_AI_PROVIDER_NAME: "openai",
        A.GEN_AI_REQUEST_MODEL: "gpt-4o",
        A.FEATURE: "support",
        A.FINISH_REASON: "stop",
        A.GEN_AI_OUTPUT_MESSAGES: json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]
        ),
    }
    if prompt is not None:
        attributes[A.GEN_AI_INPUT_MESSAGES] = json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": prompt}]}]
        )
    return make_span(
        attributes,
        trace_id=i.to_bytes(16, "big"),
        span_id=(i + 1).to_bytes(8, "big"),
        name="chat gpt-4o",
        start_ns=T0,
        duration_s=0.5,
        status_code=None,
    )


def _request(spans: list[Span]) -> bytes:
    return make_request(spans, scope=None).SerializeToString()


def _metric(text: str, name: str, labels: dict[str, str]) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


async def test_spans_with_content_drive_drift_metrics_and_refreeze() -> None:
    settings = DriftSettings(
        reference_size=40, window_size=40, min_current=40, test_every=40, permutations=199
    )
    engine = DriftEngine(registry=CollectorRegistry(), settings=settings)
    service = ProcessorService(
        Settings(grpc_port=0, http_port=0, admin_port=0, drain_timeout=2.0),
        extensions=[drift_extension(engine)],
    )
    await service.startup()
    try:
        stream = SyntheticStream(31)
        baseline = [c.text for c in stream.calls(40)]
        shifted = [c.text for c in stream.calls(40, shift=1.0, shift_topic="coding")]
        spans = [_span(i, text, "x" * 100) for i, text in enumerate(baseline + shifted)]
        spans.append(_span(999, None, "no content captured"))  # counted by the processor, ignored by drift
        async with httpx.AsyncClient() as client:
            sent = await client.post(
                f"http://127.0.0.1:{service.http.port}/v1/traces",
                content=_request(spans),
                headers={"content-type": "application/x-protobuf"},
            )
            assert sent.status_code == 200
            await wait_until_async(lambda: engine.pending == 80, interval=0.01)
            assert engine.pending == 80
            assert await asyncio.to_thread(engine.run_once) == 80

            admin = f"http://127.0.0.1:{service.admin.port}"
            await client.get(f"{admin}/metrics")  # a new series is exposed at zero on its first scrape
            metrics = (await client.get(f"{admin}/metrics")).text
            labels = {"service": UNKNOWN_SERVICE, "feature": "support", "signal": "input"}
            assert _metric(metrics, "llmpulse_drift_drifted", labels) == 1
            assert (
                _metric(
                    metrics,
                    "llmpulse_drift_samples_total",
                    {"service": UNKNOWN_SERVICE, "feature": "support"},
                )
                == 80
            )
            assert (
                _metric(
                    metrics, "llmpulse_requests_total", {"service": UNKNOWN_SERVICE, "feature": "support"}
                )
                == 81
            )
            status = (await client.get(f"{admin}/api/status")).json()
            assert status["drift"]["features"][0]["tests"]["input"]["drifted"] is True

            refrozen = await client.post(
                f"{admin}/api/drift/refreeze",
                params={"service": UNKNOWN_SERVICE, "feature": "support", "from": "current"},
            )
            assert refrozen.status_code == 200 and refrozen.json()["reference_samples"] == 40
            metrics = (await client.get(f"{admin}/metrics")).text
            assert _metric(metrics, "llmpulse_drift_drifted", labels) == 0
    finally:
        await service.shutdown()
