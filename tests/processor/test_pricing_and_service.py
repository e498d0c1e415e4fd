"""Server-side pricing and the service label on spans shaped like the peers' instrumentations.

Two services share a feature called ``chat``. Each sends calls as the official OpenTelemetry
GenAI instrumentation, OpenLLMetry and OpenInference write them (tokens, no cost), plus
llmpulse's own span that carries its cost, a failed call and a call to an unknown model. Cost
and counts must be exact per service.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.registry import CollectorRegistry

from llmpulse.contract import attributes as A
from llmpulse.contract.pricing import PricingSource, PricingTable
from llmpulse.processor.metrics import names as M
from llmpulse.processor.metrics.derived import Accounting, DerivedMetrics
from llmpulse.processor.metrics.exposition import build_registry
from llmpulse.processor.metrics.windows import RollingWindows
from llmpulse.processor.pipeline.pricing import CallPricer
from llmpulse.processor.pipeline.queue import Pipeline
from llmpulse.processor.pipeline.records import LLMCall
from llmpulse.testing.clock import FakeClock
from llmpulse.testing.otlp import make_request, make_span

TABLE = PricingTable.load()

OFFICIAL = {  # opentelemetry-instrumentation-genai-openai
    A.GEN_AI_OPERATION_NAME: "chat",
    A.GEN_AI_PROVIDER_NAME: "openai",
    A.GEN_AI_REQUEST_MODEL: "gpt-4.1-mini",
    A.GEN_AI_RESPONSE_MODEL: "gpt-4.1-mini-2025-04-14",
    A.GEN_AI_USAGE_INPUT_TOKENS: 1200,
    A.GEN_AI_USAGE_OUTPUT_TOKENS: 300,
    A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 1000,
    A.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
    A.FEATURE: "chat",
}
OPENLLMETRY = {  # opentelemetry-instrumentation-anthropic (traceloop)
    A.LEGACY_GEN_AI_SYSTEM: "Anthropic",
    A.OPENLLMETRY_REQUEST_TYPE: "chat",
    A.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-5",
    A.GEN_AI_RESPONSE_MODEL: "claude-sonnet-4-5-20250929",
    A.LEGACY_GEN_AI_USAGE_PROMPT_TOKENS: 5000,
    A.LEGACY_GEN_AI_USAGE_COMPLETION_TOKENS: 200,
    A.OPENLLMETRY_CACHE_READ_INPUT_TOKENS: 3000,
    A.OPENLLMETRY_CACHE_CREATION_INPUT_TOKENS: 1000,
    A.OPENLLMETRY_GEN_AI_TOTAL_TOKENS: 5200,
    A.FEATURE: "chat",
}
OPENINFERENCE = {  # openinference-instrumentation-openai
    A.OPENINFERENCE_SPAN_KIND: "LLM",
    A.OPENINFERENCE_PROVIDER: "openai",
    A.OPENINFERENCE_MODEL_NAME: "gpt-4o-mini",
    A.OPENINFERENCE_TOKEN_COUNT_PROMPT: 800,
    A.OPENINFERENCE_TOKEN_COUNT_COMPLETION: 100,
    A.OPENINFERENCE_TOKEN_COUNT_CACHE_READ: 400,
    A.OPENINFERENCE_TOKEN_COUNT_TOTAL: 900,
    A.FEATURE: "chat",
}
OWN = {  # llmpulse's instrumentation, cost on the span
    A.SPAN_KIND: A.SPAN_KIND_LLM,
    A.GEN_AI_OPERATION_NAME: "chat",
    A.GEN_AI_PROVIDER_NAME: "anthropic",
    A.GEN_AI_REQUEST_MODEL: "claude-haiku-4-5",
    A.GEN_AI_USAGE_INPUT_TOKENS: 2000,
    A.GEN_AI_USAGE_OUTPUT_TOKENS: 100,
    A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 1500,
    A.CACHE_CREATION_1H_INPUT_TOKENS: 500,
    A.COST_USD: 0.0123,
    A.PRICING_VERSION: "2026.12.1",
    A.FINISH_REASON: "stop",
    A.FEATURE: "chat",
}
FAILED = {  # a failed call reports no usage
    **OFFICIAL,
    A.ERROR_TYPE: "RateLimitError",
    A.GEN_AI_USAGE_INPUT_TOKENS: None,
    A.GEN_AI_USAGE_OUTPUT_TOKENS: None,
    A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: None,
}
UNKNOWN = {**OFFICIAL, A.GEN_AI_REQUEST_MODEL: "gpt-6-preview", A.GEN_AI_RESPONSE_MODEL: "gpt-6-preview"}


def _span(attributes: dict[str, Any], i: int, *, status: int = 0) -> Any:
    attributes = {k: v for k, v in attributes.items() if v is not None}
    return make_span(
        attributes, span_id=i.to_bytes(8, "big"), trace_id=i.to_bytes(16, "big"), status_code=status
    )


def _pipeline(pricer: CallPricer | None = None) -> tuple[Pipeline, CollectorRegistry]:
    derived, accounting = DerivedMetrics(), Accounting(10_000)
    pipeline = Pipeline(
        capacity=10_000,
        derived=derived,
        accounting=accounting,
        windows=RollingWindows(clock=FakeClock()),
        pricer=pricer,
    )
    return pipeline, build_registry(derived, accounting)


def _labels(service: str, provider: str, model: str, environment: str = "") -> dict[str, str]:
    return {
        "service": service,
        "deployment_environment": environment,
        "feature": "chat",
        "provider": provider,
        "model": model,
        "operation": "chat",
    }


def test_peer_spans_are_priced_exactly_per_service() -> None:
    pipeline, registry = _pipeline()
    shop = [_span(OFFICIAL, 1), _span(OPENLLMETRY, 2), _span(OPENINFERENCE, 3), _span(OWN, 4)]
    shop += [_span(FAILED, 5, status=2), _span(UNKNOWN, 6)]
    blog = [_span(OFFICIAL, 11), _span(OFFICIAL, 12)]
    request = make_request(shop, resource={"service.name": "shop", "deployment.environment.name": "prod"})
    request.resource_spans.extend(
        make_request(
            blog, resource={"service.name": "blog", "deployment.environment": "staging"}
        ).resource_spans
    )
    request.resource_spans.extend(make_request([_span(OFFICIAL, 21)]).resource_spans)  # no service.name
    assert pipeline.process(request).rejected == 0
    get = registry.get_sample_value
    version = TABLE.version
    official = (200 * 0.4 + 1000 * 0.1 + 300 * 1.6) / 1e6
    openllmetry = (1000 * 3.0 + 3000 * 0.3 + 1000 * 3.75 + 200 * 15.0) / 1e6
    openinference = (400 * 0.15 + 400 * 0.075 + 100 * 0.6) / 1e6
    cost = {"pricing_version": version}
    shop_openai = _labels("shop", "openai", "gpt-4.1-mini", "prod")
    assert get(M.COST_USD_TOTAL, {**shop_openai, **cost}) == pytest.approx(official, rel=1e-12)
    anthropic = _labels("shop", "anthropic", "claude-sonnet-4-5", "prod")
    assert get(M.COST_USD_TOTAL, {**anthropic, **cost}) == pytest.approx(openllmetry, rel=1e-12)
    mini = _labels("shop", "openai", "gpt-4o-mini", "prod")
    assert get(M.COST_USD_TOTAL, {**mini, **cost}) == pytest.approx(openinference, rel=1e-12)
    own = _labels("shop", "anthropic", "claude-haiku-4-5", "prod")
    assert get(M.COST_USD_TOTAL, {**own, "pricing_version": "2026.12.1"}) == 0.0123  # kept, not re-priced
    blog_openai = _labels("blog", "openai", "gpt-4.1-mini", "staging")
    assert get(M.COST_USD_TOTAL, {**blog_openai, **cost}) == pytest.approx(2 * official, rel=1e-12)
    nobody = _labels("unknown_service", "openai", "gpt-4.1-mini")
    assert get(M.COST_USD_TOTAL, {**nobody, **cost}) == pytest.approx(official, rel=1e-12)
    # the failed call to a priced model is not unpriced; the unknown model is, by model
    assert get(M.UNPRICED_REQUESTS_TOTAL, shop_openai) == 0
    assert get(M.REQUESTS_TOTAL, {**shop_openai, "finish_reason": "stop", "outcome": "error"}) == 1
    assert get(M.UNPRICED_REQUESTS_TOTAL, _labels("shop", "openai", "gpt-6-preview", "prod")) == 1
    assert get(M.REQUESTS_TOTAL, {**blog_openai, "finish_reason": "stop", "outcome": "ok"}) == 2
    assert get(M.TOKENS_TOTAL, {**anthropic, "token_type": "cache_read"}) == 3000
    assert get(M.TOKENS_TOTAL, {**mini, "token_type": "cache_read"}) == 400
    # the status windows: one row per (service, feature), unpriced share of the successful calls
    snapshot = pipeline.windows.snapshot()
    assert sorted(snapshot) == ["blog", "shop", "unknown_service"]
    shop_window = snapshot["shop"]["chat"]["1m"]
    assert shop_window["requests"] == 6 and shop_window["unpriced"] == 1
    assert shop_window["unpriced_share"] == pytest.approx(1 / 5)
    assert shop_window["cost_usd_total"] == pytest.approx(official + openllmetry + openinference + 0.0123)
    assert snapshot["blog"]["chat"]["1m"]["requests"] == 2


@pytest.mark.parametrize(
    "tokens",
    [(1000, 100, 0, 0, 0), (5000, 200, 3000, 1000, 0), (10_000, 500, 2000, 3000, 1000), (0, 0, 0, 0, 0)],
)
def test_processor_prices_like_the_instrumentation(tokens: tuple[int, int, int, int, int]) -> None:
    """One function prices both sides: the processor's cost is the contract's cost_of."""
    call = LLMCall()
    call.model, call.response_model, call.outcome = "claude-sonnet-4-5", "", M.OUTCOME_OK
    call.input_tokens, call.output_tokens, call.cache_read_tokens = tokens[:3]
    call.cache_creation_tokens, call.cache_creation_1h_tokens = tokens[3:]
    call.cost_usd = None
    CallPricer().price(call)
    cache = dict(zip(("cache_read", "cache_write", "cache_write_1h"), tokens[2:], strict=True))
    assert call.cost_usd == TABLE.cost_of("claude-sonnet-4-5", tokens[0], tokens[1], **cache)


def test_pricing_file_change_reaches_the_running_pipeline(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps({"version": "acme", "models": {"gpt-6-preview": {"input": 10.0, "output": 20.0}}})
    )
    clock = FakeClock()
    pipeline, registry = _pipeline(CallPricer(PricingSource(path, clock=clock)))
    pipeline.process(make_request([_span(UNKNOWN, 1)], resource={"service.name": "shop"}))
    labels = _labels("shop", "openai", "gpt-6-preview")
    expected = (1200 * 10.0 + 300 * 20.0) / 1e6  # no cached_input price: cache reads at the input price
    assert registry.get_sample_value(
        M.COST_USD_TOTAL, {**labels, "pricing_version": f"{TABLE.version}+acme"}
    ) == (pytest.approx(expected, rel=1e-12))
    path.write_text("{broken")
    os.utime(path, ns=(5_000_000_000, 5_000_000_000))
    clock.advance(2.0)
    pipeline.process(make_request([_span(UNKNOWN, 2)], resource={"service.name": "shop"}))
    assert registry.get_sample_value(
        M.COST_USD_TOTAL, {**labels, "pricing_version": f"{TABLE.version}+acme"}
    ) == (pytest.approx(2 * expected, rel=1e-12))  # the broken file left the previous table in force
    assert registry.get_sample_value(M.UNPRICED_REQUESTS_TOTAL, labels) == 0
