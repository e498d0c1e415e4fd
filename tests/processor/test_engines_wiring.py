"""`llmpulse serve` runs the quality and drift engines on the spans it receives."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client.parser import text_string_to_metric_families

from llmpulse.contract import attributes as A
from llmpulse.processor.engines import ENV_JUDGE_BASE_URL, build_engines, quality_settings
from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.settings import ConfigError
from llmpulse.stack import components
from llmpulse.testing.fake_provider import FakeProvider, FakeReply, RecordedRequest
from llmpulse.testing.polling import wait_until

VERDICT = json.dumps({"correctness": 5, "completeness": 4, "tone": 5, "explanation": "fine"})


def _samples(admin: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://{admin}/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _send(endpoint: str, outputs: list[str]) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "wiring"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://{endpoint}/v1/traces"))
    )
    tracer = provider.get_tracer("test")
    for output in outputs:
        with tracer.start_as_current_span("chat gpt-4o-mini") as span:
            span.set_attributes(
                {
                    A.SPAN_KIND: A.SPAN_KIND_LLM,
                    A.FEATURE: "support",
                    A.GEN_AI_OPERATION_NAME: A.OP_CHAT,
                    A.GEN_AI_PROVIDER_NAME: "openai",
                    A.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                    A.GEN_AI_USAGE_INPUT_TOKENS: 10,
                    A.GEN_AI_USAGE_OUTPUT_TOKENS: 3,
                    A.FINISH_REASON: A.FINISH_STOP,
                    A.GEN_AI_INPUT_MESSAGES: json.dumps(
                        [
                            {
                                "role": "user",
                                "parts": [{"type": "text", "content": "How do I reset my password?"}],
                            }
                        ]
                    ),
                    A.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                        [{"role": "assistant", "parts": [{"type": "text", "content": output}]}]
                    ),
                }
            )
    provider.shutdown()


def test_serve_runs_cheap_checks_and_the_judge(tmp_path: Path) -> None:
    def judge(request: RecordedRequest) -> FakeReply:
        return FakeReply(text=VERDICT)

    with FakeProvider() as fake:
        fake.set_handler(judge)
        config = tmp_path / "llmpulse.toml"
        config.write_text(
            f"""
[quality]
judge_rate = 1.0
db_path = "{tmp_path / "quality.db"}"

[quality.judge]
base_url = "{fake.openai_base_url}"
model = "judge-model"
api_key = "test"
"""
        )
        grpc, http, admin = (components.free_port() for _ in range(3))
        argv = [sys.executable, "-m", "llmpulse.cli", "serve", "--config", str(config)]
        argv += ["--grpc-port", str(grpc), "--http-port", str(http), "--admin-port", str(admin)]
        with components.ManagedProcess(
            "processor", argv, f"http://127.0.0.1:{admin}/readyz", tmp_path / "p.log"
        ):
            _send(f"127.0.0.1:{http}", ["Open Settings, then Security, then Reset password.", "   "])

            def judged() -> dict[Any, float] | None:
                samples = _samples(f"127.0.0.1:{admin}")
                verdicts = sum(v for (name, _), v in samples.items() if name == Q.JUDGE_VERDICTS_TOTAL)
                return samples if verdicts >= 2 else None

            samples = wait_until(judged, interval=0.2, message="the judge never returned two verdicts")
            assert samples is not None, "the judge never returned two verdicts"
            failures = {
                dict(labels)["check"]: v
                for (name, labels), v in samples.items()
                if name == Q.CHECK_FAILURES_TOTAL
            }
            assert failures.get("empty_output") == 1.0, failures
            # counted per request batch (on_batch_end), so exact as soon as the export returned
            assert samples[(Q.CHECKED_TOTAL, (("feature", "support"), ("service", "wiring")))] == 2.0
            status = httpx.get(f"http://127.0.0.1:{admin}/api/status").json()
            assert "quality" in status and "drift" in status

            def drift_seen() -> dict[str, Any] | None:
                drift = httpx.get(f"http://127.0.0.1:{admin}/api/drift").json()
                return drift if "support" in json.dumps(drift) else None

            wait_until(drift_seen, interval=0.2, message="the drift engine never saw the feature's prompts")
            assert any(name.startswith("llmpulse_drift_") for name, _ in _samples(f"127.0.0.1:{admin}"))
        judge_calls = [r for r in fake.requests if r.body and r.body.get("model") == "judge-model"]
        assert len(judge_calls) == 2


def test_judge_is_off_without_an_endpoint(caplog: pytest.LogCaptureFixture) -> None:
    settings = quality_settings({}, {})
    assert settings.judge.enabled is False
    assert "judge_off" in caplog.text
    on = quality_settings({}, {ENV_JUDGE_BASE_URL: "http://127.0.0.1:1/v1"})
    assert on.judge.enabled is True and on.judge.base_url == "http://127.0.0.1:1/v1"


def test_a_judge_base_url_that_is_not_a_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"judge.base_url must be an http\(s\) URL .* got 'not a url'"):
        quality_settings({"judge": {"base_url": "not a url"}}, {})
    with pytest.raises(ConfigError, match=r"LLMPULSE_JUDGE_BASE_URL.*got 'localhost:8700'"):
        quality_settings({}, {ENV_JUDGE_BASE_URL: "localhost:8700"})


def test_engines_register_collectors_routes_and_status_sections(tmp_path: Path) -> None:
    engines = build_engines({"quality": {"db_path": str(tmp_path / "q.db")}}, {})
    listeners = [listener for e in engines for listener in e.listeners]
    collectors = [collector for e in engines for collector in e.collectors]
    assert len(listeners) == 3 and len(collectors) == 3
    assert {e.name for e in engines if e.status} == {"quality", "drift", "agents"}
    assert {route for e in engines for route in e.admin_routes} == {"/api/drift"}
    quality_only = build_engines(
        {
            "quality": {"db_path": str(tmp_path / "q.db")},
            "drift": {"enabled": False},
            "agents": {"enabled": False},
        },
        {},
    )
    assert {e.name for e in quality_only if e.status} == {"quality"}
    metrics_only = build_engines(
        {"quality": {"enabled": False}, "drift": {"enabled": False}, "agents": {"enabled": False}}, {}
    )
    assert metrics_only == []


def test_bad_agents_config_fails_fast() -> None:
    with pytest.raises(ConfigError, match=r"\[agents\]: unknown key\(s\) max_llm_call;"):
        build_engines({"quality": {"enabled": False}, "agents": {"max_llm_call": 3}}, {})
    with pytest.raises(ConfigError, match=r"\[agents\]: session_timeout_s = -1: expected a positive"):
        build_engines({"quality": {"enabled": False}, "agents": {"session_timeout_s": -1}}, {})
    with pytest.raises(ConfigError, match=r"agent_caps.planner = 3: expected a table"):
        build_engines({"quality": {"enabled": False}, "agents": {"agent_caps": {"planner": 3}}}, {})


def test_bad_drift_config_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        build_engines({"quality": {"db_path": str(tmp_path / "q.db")}, "drift": {"embeder": "hashed"}}, {})
    with pytest.raises(ConfigError, match="unknown embedder"):
        build_engines({"quality": {"db_path": str(tmp_path / "q.db")}, "drift": {"embedder": "nope"}}, {})
