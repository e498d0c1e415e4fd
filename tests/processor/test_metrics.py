"""Metric values derived by the pipeline, read back from the registry."""

from __future__ import annotations

from typing import Any

from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import CollectorRegistry

from llmpulse.contract import attributes as A
from llmpulse.processor.metrics import names as M
from llmpulse.processor.metrics.derived import Accounting, DerivedMetrics, is_model_mismatch
from llmpulse.processor.metrics.exposition import MetricsCollector, build_registry
from llmpulse.processor.metrics.windows import RollingWindows
from llmpulse.processor.pipeline.dedup import Deduplicator
from llmpulse.processor.pipeline.queue import Pipeline
from llmpulse.testing.clock import FakeClock
from llmpulse.testing.otlp import llm_attributes, make_request, make_span
from tests.processor.conftest import llm_labels


def _pipeline(
    max_label_values: int = 100, clock: FakeClock | None = None
) -> tuple[Pipeline, CollectorRegistry]:
    clock = clock or FakeClock()
    derived, accounting = DerivedMetrics(max_label_values=max_label_values), Accounting(1000)
    pipeline = Pipeline(
        capacity=1000,
        derived=derived,
        accounting=accounting,
        windows=RollingWindows(clock=clock),
        dedup=Deduplicator(hold_seconds=2.0, clock=clock),
    )
    return pipeline, build_registry(derived, accounting)


def test_llm_metrics_match_what_was_sent() -> None:
    pipeline, registry = _pipeline()
    spans = [
        make_span(llm_attributes(), duration_s=0.5, span_id=b"\x01" * 8),
        make_span(
            llm_attributes(
                **{A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 30, A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 0.03}
            ),
            duration_s=3.0,
            span_id=b"\x02" * 8,
        ),
        make_span(
            llm_attributes(**{A.ERROR_TYPE: "APITimeoutError", A.COST_USD: None, A.UNPRICED: True}),
            status_code=2,
            span_id=b"\x03" * 8,
        ),
    ]
    result = pipeline.process(make_request(spans))
    assert result.rejected == 0
    labels = llm_labels()
    get = registry.get_sample_value
    assert get(M.REQUESTS_TOTAL, {**labels, "finish_reason": "stop", "outcome": "ok"}) == 2
    assert get(M.REQUESTS_TOTAL, {**labels, "finish_reason": "stop", "outcome": "error"}) == 1
    assert get(M.ERRORS_TOTAL, {**labels, "error_type": "APITimeoutError"}) == 1
    assert get(M.TOKENS_TOTAL, {**labels, "token_type": "input"}) == 300
    assert get(M.TOKENS_TOTAL, {**labels, "token_type": "output"}) == 60
    assert get(M.TOKENS_TOTAL, {**labels, "token_type": "cache_read"}) == 30
    assert get(M.COST_USD_TOTAL, {**labels, "pricing_version": "reported"}) == 0.005
    # the failed call carries tokens but no cost: the processor prices it (gpt-4o list prices)
    table = pipeline.pricer.version
    assert get(M.COST_USD_TOTAL, {**labels, "pricing_version": table}) == 100 * 2.5e-6 + 20 * 10e-6
    assert get(M.UNPRICED_REQUESTS_TOTAL, labels) == 0  # failed calls are never "unpriced"
    assert get(M.OPERATION_DURATION + "_count", labels) == 3
    assert get(M.OPERATION_DURATION + "_sum", labels) == 4.0
    assert get(M.OPERATION_DURATION + "_bucket", {**labels, "le": "0.64"}) == 2
    assert get(M.OPERATION_DURATION + "_bucket", {**labels, "le": "2.56"}) == 2
    assert get(M.OPERATION_DURATION + "_bucket", {**labels, "le": "5.12"}) == 3
    assert get(M.TIME_TO_FIRST_CHUNK + "_count", labels) == 1
    assert get(M.TOKEN_USAGE + "_bucket", {**labels, "token_type": "input", "le": "64.0"}) == 0
    assert get(M.TOKEN_USAGE + "_bucket", {**labels, "token_type": "input", "le": "256.0"}) == 3
    assert get(M.TOKEN_USAGE + "_sum", {**labels, "token_type": "output"}) == 60
    # gpt-4o-2024-08-06 is a dated version of gpt-4o: not a mismatch
    assert get(M.MODEL_MISMATCH_TOTAL, {**labels, "response_model": "gpt-4o-2024-08-06"}) is None
    assert get(M.SPANS_ACCEPTED_TOTAL, {"kind": "llm"}) == 3


def test_every_exposed_series_is_declared_in_metric_names() -> None:
    pipeline, registry = _pipeline()
    pipeline.process(
        make_request(
            [
                make_span(
                    llm_attributes(
                        **{
                            A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 0.1,
                            A.ERROR_TYPE: "X",
                            A.PROMPT_VERSION: "p1",
                        }
                    )
                ),
                make_span(llm_attributes(**{A.GEN_AI_RESPONSE_MODEL: "gpt-3.5", A.REFUSAL: True})),
                make_span({A.SPAN_KIND: A.SPAN_KIND_STEP, A.STEP_NAME: "rerank"}, status_code=2),
                make_span(
                    {A.SPAN_KIND: A.SPAN_KIND_FEEDBACK, A.FEEDBACK_KIND: "thumbs", A.FEEDBACK_VALUE: 1}
                ),
            ]
        )
    )
    exposed = {sample.name for family in registry.collect() for sample in family.samples}
    assert exposed == set(M.EXPORTED_SERIES) - {M.LABEL_OVERFLOW_TOTAL}
    for family in registry.collect():
        spec = M.METRICS_BY_NAME[family.name + ("_total" if family.type == "counter" else "")]
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == set(spec.labels), family.name


def test_model_mismatch_refusals_steps_feedback() -> None:
    pipeline, registry = _pipeline()
    pipeline.process(
        make_request(
            [
                make_span(
                    llm_attributes(**{A.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini", A.FINISH_REASON: "refusal"})
                ),
                make_span(
                    {A.SPAN_KIND: A.SPAN_KIND_STEP, A.STEP_NAME: "retrieval", A.FEATURE: "support"},
                    duration_s=0.2,
                ),
                make_span({A.GEN_AI_OPERATION_NAME: "execute_tool", A.FEATURE: "support"}, status_code=2),
                make_span(
                    {A.SPAN_KIND: A.SPAN_KIND_FEEDBACK, A.FEEDBACK_KIND: "thumbs", A.FEEDBACK_VALUE: 0.0}
                ),
                make_span({"http.route": "/health"}),
            ]
        )
    )
    get = registry.get_sample_value
    assert get(M.MODEL_MISMATCH_TOTAL, {**llm_labels(), "response_model": "gpt-4o-mini"}) == 1
    assert get(M.REFUSALS_TOTAL, llm_labels()) == 1
    assert get(M.REQUESTS_TOTAL, {**llm_labels(), "finish_reason": "refusal", "outcome": "refusal"}) == 1
    where = {"service": "unknown_service", "deployment_environment": ""}
    assert (
        get(M.STEP_DURATION + "_bucket", {**where, "feature": "support", "step": "retrieval", "le": "0.25"})
        == 1
    )
    assert get(M.STEP_ERRORS_TOTAL, {**where, "feature": "support", "step": "execute_tool"}) == 1
    assert (
        get(M.FEEDBACK_TOTAL, {**where, "feature": "unknown", "kind": "thumbs", "sentiment": "negative"}) == 1
    )
    for kind, n in (("llm", 1), ("step", 2), ("feedback", 1), ("other", 1)):
        assert get(M.SPANS_ACCEPTED_TOTAL, {"kind": kind}) == n


def test_model_mismatch_rule() -> None:
    assert not is_model_mismatch("gpt-4o", "gpt-4o")
    assert not is_model_mismatch("gpt-4o", "gpt-4o-2024-08-06")
    assert is_model_mismatch("gpt-4o", "gpt-4.1")
    assert is_model_mismatch("gpt-4o", "gpt-4o-mini")
    assert not is_model_mismatch("claude-3-5-sonnet-latest", "claude-3-5-sonnet-20241022")
    assert not is_model_mismatch("gpt-4o", "")


def test_bad_spans_are_rejected_and_batch_mates_kept() -> None:
    pipeline, registry = _pipeline()
    spans = [
        make_span(llm_attributes()),
        make_span(llm_attributes(**{A.GEN_AI_USAGE_INPUT_TOKENS: -5})),
        make_span(llm_attributes(**{A.COST_USD: float("nan")})),
        make_span(llm_attributes(**{A.FINISH_REASON: 7})),
        make_span(llm_attributes()),
    ]
    result = pipeline.process(make_request(spans))
    assert result.rejected == 3
    assert "invalid_cost=1" in result.message and "invalid_tokens=1" in result.message
    get = registry.get_sample_value
    assert get(M.REQUESTS_TOTAL, {**llm_labels(), "finish_reason": "stop", "outcome": "ok"}) == 2
    assert get(M.TOKENS_TOTAL, {**llm_labels(), "token_type": "input"}) == 200
    assert get(M.COST_USD_TOTAL, {**llm_labels(), "pricing_version": "reported"}) == 0.005
    for reason in (M.REJECT_INVALID_TOKENS, M.REJECT_INVALID_COST, M.REJECT_INVALID_FINISH_REASON):
        assert get(M.SPANS_REJECTED_TOTAL, {"reason": reason}) == 1


def test_label_cardinality_is_capped_and_overflow_counted() -> None:
    pipeline, registry = _pipeline(max_label_values=3)
    spans = [make_span(llm_attributes(**{A.FEATURE: f"feature-{i}"})) for i in range(5)]
    spans.append(make_span(llm_attributes(**{A.FEATURE: "feature-4"})))
    pipeline.process(make_request(spans))
    get = registry.get_sample_value
    other = llm_labels(feature=M.OVERFLOW_VALUE)
    assert get(M.REQUESTS_TOTAL, {**other, "finish_reason": "stop", "outcome": "ok"}) == 3
    assert (
        get(M.REQUESTS_TOTAL, {**llm_labels(feature="feature-0"), "finish_reason": "stop", "outcome": "ok"})
        == 1
    )
    assert get(M.LABEL_OVERFLOW_TOTAL, {"label": "feature"}) == 3
    features = {s.labels["feature"] for f in registry.collect() for s in f.samples if "feature" in s.labels}
    assert features == {"feature-0", "feature-1", "feature-2", M.OVERFLOW_VALUE}


def test_exemplars_carry_the_trace_id_in_openmetrics_only() -> None:
    pipeline, registry = _pipeline()
    trace_id = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    pipeline.process(
        make_request(
            [
                make_span(llm_attributes(), trace_id=trace_id, duration_s=7.0),
                make_span(
                    {A.SPAN_KIND: A.SPAN_KIND_STEP, A.STEP_NAME: "retrieval"},
                    trace_id=trace_id,
                    duration_s=0.04,
                ),
            ]
        )
    )
    text = generate_openmetrics(registry).decode()
    duration_line = next(
        line
        for line in text.splitlines()
        if line.startswith(M.OPERATION_DURATION + "_bucket{") and 'le="10.24"' in line
    )
    assert f'# {{trace_id="{trace_id.hex()}"}} 7.0' in duration_line
    step_line = next(
        line
        for line in text.splitlines()
        if line.startswith(M.STEP_DURATION + "_bucket{") and 'le="0.04"' in line
    )
    assert trace_id.hex() in step_line
    assert "trace_id" not in generate_latest(registry).decode()


def test_anthropic_sdk_child_of_another_span_is_counted_once() -> None:
    pipeline, registry = _pipeline()
    anthropic = llm_attributes(**{A.GEN_AI_PROVIDER_NAME: "anthropic", A.GEN_AI_REQUEST_MODEL: "claude"})
    sdk_child = make_span(
        {
            A.GEN_AI_OPERATION_NAME: "chat",
            A.LEGACY_GEN_AI_SYSTEM: "anthropic",
            A.GEN_AI_REQUEST_MODEL: "claude",
        },
        span_id=b"\x09" * 8,
        parent_span_id=b"\x02" * 8,
    )
    # child first (it ends first), in its own scope; the parent arrives in a later request
    pipeline.process(make_request([sdk_child], scope=A.ANTHROPIC_SDK_SCOPE))
    pipeline.process(make_request([make_span(anthropic, span_id=b"\x02" * 8)]))
    assert pipeline.dedup.release(everything=True) == []
    labels = llm_labels(provider="anthropic", model="claude")
    assert (
        registry.get_sample_value(M.REQUESTS_TOTAL, {**labels, "finish_reason": "stop", "outcome": "ok"}) == 1
    )
    assert registry.get_sample_value(M.SPANS_ACCEPTED_TOTAL, {"kind": "duplicate"}) == 1


def test_anthropic_sdk_twin_in_another_trace_matched_by_response_id() -> None:
    pipeline, registry = _pipeline()
    primary = make_span(
        llm_attributes(**{A.GEN_AI_PROVIDER_NAME: "anthropic", A.GEN_AI_RESPONSE_ID: "msg_1"}),
        trace_id=b"\x05" * 16,
    )
    sdk = make_span(
        {A.GEN_AI_OPERATION_NAME: "chat", A.LEGACY_GEN_AI_SYSTEM: "anthropic", A.GEN_AI_RESPONSE_ID: "msg_1"},
        trace_id=b"\x06" * 16,
    )
    pipeline.process(make_request([primary]))
    pipeline.process(make_request([sdk], scope=A.ANTHROPIC_SDK_SCOPE))
    assert registry.get_sample_value(M.SPANS_ACCEPTED_TOTAL, {"kind": "duplicate"}) == 1
    assert registry.get_sample_value(M.SPANS_ACCEPTED_TOTAL, {"kind": "llm"}) == 1


def test_lone_anthropic_sdk_span_is_counted_after_the_hold() -> None:
    clock = FakeClock()
    pipeline, registry = _pipeline(clock=clock)
    sdk = make_span(
        {
            A.GEN_AI_OPERATION_NAME: "chat",
            A.LEGACY_GEN_AI_SYSTEM: "anthropic",
            A.GEN_AI_REQUEST_MODEL: "claude",
        }
    )
    pipeline.process(make_request([sdk], scope=A.ANTHROPIC_SDK_SCOPE))
    assert pipeline.dedup.release() == []  # still within the hold
    assert registry.get_sample_value(M.SPANS_ACCEPTED_TOTAL, {"kind": "llm"}) == 0
    clock.now += 2.5
    released = pipeline.dedup.release()
    assert len(released) == 1
    pipeline._count_released(released)
    labels = llm_labels(feature="unknown", provider="anthropic", model="claude")
    assert (
        registry.get_sample_value(M.REQUESTS_TOTAL, {**labels, "finish_reason": "none", "outcome": "ok"}) == 1
    )
    assert registry.get_sample_value(M.SPANS_ACCEPTED_TOTAL, {"kind": "llm"}) == 1


def test_label_set_count_is_capped_too() -> None:
    derived, accounting = DerivedMetrics(max_label_values=10, max_series=4), Accounting(1000)
    pipeline = Pipeline(capacity=1000, derived=derived, accounting=accounting, windows=RollingWindows())
    registry = build_registry(derived, accounting)
    spans = [
        make_span(
            llm_attributes(**{A.FEATURE: f"f{i}", A.GEN_AI_REQUEST_MODEL: f"m{i}"}),
            span_id=bytes([i + 1]) * 8,
        )
        for i in range(6)
    ]
    pipeline.process(make_request(spans))
    folded = {label: M.OVERFLOW_VALUE for label in M.LLM_LABELS if label != "operation"}
    labels = {**folded, "operation": M.OVERFLOW_VALUE, "finish_reason": "stop", "outcome": "ok"}
    assert registry.get_sample_value(M.REQUESTS_TOTAL, labels) == 2
    assert registry.get_sample_value(M.LABEL_OVERFLOW_TOTAL, {"label": M.OVERFLOW_SERIES}) == 2
    assert len(derived.llm) == 5


def test_long_label_values_are_cut() -> None:
    pipeline, registry = _pipeline()
    pipeline.process(make_request([make_span(llm_attributes(**{A.FEATURE: "x" * 1000}))]))
    labels = {**llm_labels(feature="x" * 128), "finish_reason": "stop", "outcome": "ok"}
    assert registry.get_sample_value(M.REQUESTS_TOTAL, labels) == 1


def _histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile over cumulative (upper bound, count) pairs, +Inf last."""
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    raise AssertionError("rank beyond the last bucket")


def test_step_p95_read_from_the_buckets_is_close_to_the_true_one() -> None:
    pipeline, registry = _pipeline()
    durations = [0.110 + 0.020 * i / 99 for i in range(100)]  # 110-130 ms retrievals, p95 129 ms
    spans = [
        make_span(
            {A.SPAN_KIND: A.SPAN_KIND_STEP, A.STEP_NAME: "retrieval", A.FEATURE: "support"},
            duration_s=d,
            span_id=(i + 1).to_bytes(8, "big"),
        )
        for i, d in enumerate(durations)
    ]
    pipeline.process(make_request(spans))
    labels = {
        "service": "unknown_service",
        "deployment_environment": "",
        "feature": "support",
        "step": "retrieval",
    }
    bounds = [*M.STEP_DURATION_BUCKETS, float("inf")]
    buckets = [
        (b, registry.get_sample_value(M.STEP_DURATION + "_bucket", {**labels, "le": _le(b)}) or 0.0)
        for b in bounds
    ]
    assert buckets[-1][1] == 100
    p95 = _histogram_quantile(0.95, buckets)
    assert 0.110 <= p95 <= 0.150, f"p95 read from the step buckets is {p95:.3f} s for 110-130 ms steps"


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def _parsed(
    text: str, *, openmetrics: bool
) -> list[tuple[str, str, tuple[tuple[str, str], ...], float, Any]]:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
    from prometheus_client.parser import text_string_to_metric_families as parse_text

    parse = parse_om if openmetrics else parse_text
    return sorted(
        (f.name, s.name, tuple(sorted(s.labels.items())), s.value, s.exemplar)
        for f in parse(text)
        for s in f.samples
    )


def test_the_scrape_fast_path_writes_what_prometheus_client_writes() -> None:
    derived, accounting = DerivedMetrics(), Accounting(1000)
    pipeline = Pipeline(capacity=1000, derived=derived, accounting=accounting, windows=RollingWindows())
    spans = [
        make_span(
            llm_attributes(**{A.FEATURE: 'q"uo\\te\nnl', A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 0.25}),
            span_id=b"\x01" * 8,
        ),
        make_span(
            llm_attributes(**{A.ERROR_TYPE: "Timeout", A.GEN_AI_REQUEST_MODEL: "m2"}), span_id=b"\x02" * 8
        ),
        make_span(llm_attributes(**{A.FEATURE: "x" * 300}), span_id=b"\x03" * 8),
    ]
    pipeline.process(make_request(spans))
    collector = MetricsCollector(derived, accounting)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    for openmetrics, encode in ((True, generate_openmetrics), (False, generate_latest)):
        fast = collector.render(openmetrics=openmetrics) + ("# EOF\n" if openmetrics else "")
        slow = encode(registry).decode()
        assert _parsed(fast, openmetrics=openmetrics) == _parsed(slow, openmetrics=openmetrics)
        assert {line for line in fast.splitlines() if line.startswith("#")} == {
            line for line in slow.splitlines() if line.startswith("#")
        }


def test_scope_counter_reads_every_producer_and_falls_back_to_service_version() -> None:
    from llmpulse.processor.quality.ingest import sample_from_call

    pipeline, registry = _pipeline(max_label_values=2)
    seen: list[Any] = []

    class Recorder:
        def on_call(self, call: Any, span: Any) -> None:
            seen.append(sample_from_call(call, span))

    pipeline.listeners = (Recorder(),)
    spans = [
        make_span(
            llm_attributes(
                **{A.PROMPT_VERSION: "p1", A.QUERY_CATEGORY: "refunds", A.RAG_INDEX_VERSION: "kb-7"}
            ),
            span_id=b"\x01" * 8,
        ),
        make_span(llm_attributes(**{A.OPENINFERENCE_PROMPT_TEMPLATE_VERSION: "p2"}), span_id=b"\x02" * 8),
        # Traceloop's prompt registry writes the version as an integer
        make_span(
            llm_attributes(**{A.OPENLLMETRY_PROMPT_VERSION: 3, A.APP_VERSION: "2.0"}), span_id=b"\x03" * 8
        ),
        make_span(llm_attributes(**{A.OPENLLMETRY_QUERY_CATEGORY: "billing"}), span_id=b"\x04" * 8),
    ]
    pipeline.process(make_request(spans, resource={"service.version": "1.9"}))
    labels = llm_labels()

    def get(dimension: str, value: str) -> float | None:
        return registry.get_sample_value(
            M.SCOPE_REQUESTS_TOTAL, {**labels, "dimension": dimension, "value": value}
        )

    assert get("prompt_version", "p1") == 1 and get("prompt_version", "p2") == 1
    assert get("prompt_version", "__other__") == 1  # the cap of 2 values per dimension
    assert get("app_version", "1.9") == 3 and get("app_version", "2.0") == 1  # the span's own wins
    assert get("query_category", "refunds") == 1 and get("query_category", "billing") == 1
    assert get("rag_index_version", "kb-7") == 1
    assert registry.get_sample_value(M.LABEL_OVERFLOW_TOTAL, {"label": "prompt_version"}) == 1
    # the quality engine's samples carry the raw values (they are stored, never labels)
    assert [(s.prompt_version, s.app_version, s.query_category) for s in seen] == [
        ("p1", "1.9", "refunds"),
        ("p2", "1.9", None),
        ("3", "2.0", None),
        (None, "1.9", "billing"),
    ]
    assert seen[0].rag_index_version == "kb-7" and seen[0].response_model == "gpt-4o-2024-08-06"
