"""The ingest path for calls without content (``observe_numbers``, no sample object) counts,
checks, charts and flags exactly as ``observe`` does with the sample built from the same call."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.registry import CollectorRegistry

from llmpulse.contract import attributes as A
from llmpulse.processor.pipeline.normalize import normalize_span
from llmpulse.processor.pipeline.records import LLMCall
from llmpulse.processor.quality.engine import QualityEngine
from llmpulse.processor.quality.ingest import sample_from_call
from llmpulse.processor.quality.settings import JudgeSettings, QualitySettings, SpcSettings
from llmpulse.testing.clock import FakeClock
from llmpulse.testing.otlp import llm_attributes, make_span


def _calls() -> list[LLMCall]:
    variants = [
        {},
        {A.FINISH_REASON: "length"},
        {A.FINISH_REASON: "content_filter"},
        {A.FINISH_REASON: "refusal"},
        {A.ERROR_TYPE: "RateLimitError", A.FINISH_REASON: "error"},
        {A.GEN_AI_USAGE_INPUT_TOKENS: 127_000, A.GEN_AI_REQUEST_MODEL: "gpt-4o"},  # near its context
        {A.COST_USD: None},
    ]
    calls = []
    for n in range(140):
        attrs = llm_attributes(**{A.FEATURE: ("chat", "faq")[n % 2], **variants[n % len(variants)]})
        span = make_span(
            {k: v for k, v in attrs.items() if v is not None},
            span_id=(n + 1).to_bytes(8, "big"),
            status_code=2 if A.ERROR_TYPE in variants[n % len(variants)] else 0,
        )
        call = normalize_span(span, service=("shop", "blog")[n % 3 % 2])
        assert isinstance(call, LLMCall) and not call.has_content
        calls.append(call)
    return calls


def _engine(tmp_path: Path, name: str) -> tuple[QualityEngine, CollectorRegistry]:
    registry = CollectorRegistry()
    settings = QualitySettings(
        judge=JudgeSettings(enabled=False),
        db_path=str(tmp_path / f"{name}.db"),
        spc=SpcSettings(warmup_windows=2, requests_per_window=5),
    )
    clock = FakeClock(1_764_000_000.0)
    return QualityEngine(settings, registry=registry, clock=clock, monotonic=clock), registry


async def test_numbers_path_equals_the_sample_path(tmp_path: Path) -> None:
    by_sample, samples_registry = _engine(tmp_path, "sample")
    by_numbers, numbers_registry = _engine(tmp_path, "numbers")
    errors = []
    for call in _calls():
        by_sample.observe(sample_from_call(call), defer_counts=True)
        errors.append(by_numbers.observe_numbers(call))
    by_sample.flush_counts()
    by_numbers.flush_counts()
    assert sum(errors) == 20  # the failed variant, 140 / 7 times

    def exported(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect()
            for s in family.samples
        }

    got = exported(numbers_registry)
    assert got == exported(samples_registry)
    assert got[("llmpulse_quality_checked_total", (("feature", "chat"), ("service", "shop")))] > 0
    assert by_numbers.charts.states() == by_sample.charts.states()
    assert len(by_numbers.charts.states()) > 8  # both features of both services charted
    await by_sample._flags.store_remaining()
    await by_numbers._flags.store_remaining()
    flagged = [
        [(s.record.service, s.record.feature, s.record.reasons) for s in engine.store.query(limit=None)]
        for engine in (by_sample, by_numbers)
    ]
    assert flagged[0] == flagged[1] and flagged[0]
