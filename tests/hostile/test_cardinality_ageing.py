"""Caps that age: after a flood of junk label values, a real new value gets its slot back.

Before the caps aged, the first ``--max-label-values`` values kept their slots for good, so one
burst of junk feature names sent every later real feature to ``__other__`` until a restart.
"""

from __future__ import annotations

from prometheus_client.registry import CollectorRegistry

from llmpulse.contract import attributes as A
from llmpulse.processor.metrics import names as M
from llmpulse.processor.metrics.derived import Accounting, DerivedMetrics
from llmpulse.processor.metrics.exposition import build_registry
from llmpulse.processor.metrics.windows import RollingWindows
from llmpulse.processor.pipeline.queue import Pipeline
from llmpulse.testing.clock import FakeClock
from llmpulse.testing.otlp import llm_attributes, make_request, make_span
from tests.processor.conftest import llm_labels

HOUR = 3600.0
OK = {"finish_reason": "stop", "outcome": "ok"}


class _Setup:
    def __init__(self, *, max_label_values: int = 5, max_series: int = 2000) -> None:
        self.clock = FakeClock(1000.0)
        self.derived = DerivedMetrics(
            max_label_values=max_label_values, max_series=max_series, idle_seconds=HOUR, clock=self.clock
        )
        accounting = Accounting(1000)
        self.pipeline = Pipeline(
            capacity=1000,
            derived=self.derived,
            accounting=accounting,
            windows=RollingWindows(clock=self.clock),
        )
        self.registry: CollectorRegistry = build_registry(self.derived, accounting)
        self.scrape = build_registry(self.derived, accounting, announce_new_series=True)

    def send(self, *features: str, **attrs: object) -> None:
        spans = [make_span(llm_attributes(**{A.FEATURE: f, **attrs})) for f in features]
        self.pipeline.process(make_request(spans))

    def requests(self, feature: str) -> float | None:
        return self.registry.get_sample_value(M.REQUESTS_TOTAL, {**llm_labels(feature=feature), **OK})

    def features(self) -> set[str]:
        return {
            s.labels["feature"] for f in self.registry.collect() for s in f.samples if "feature" in s.labels
        }


def test_a_new_feature_gets_a_slot_once_the_junk_flood_has_aged_out() -> None:
    s = _Setup()
    s.send("steady")
    s.send(*(f"junk-{i}" for i in range(200)))
    s.send("checkout")
    assert s.requests("checkout") is None  # the flood took every slot
    assert s.requests(M.OVERFLOW_VALUE) == 197
    # "steady" and "checkout" keep sending every ten minutes; the junk never comes back
    for _ in range(7):
        s.clock.advance(600)
        s.send("steady", "checkout")
    assert s.requests("checkout") is not None and s.requests("checkout") >= 1
    assert s.requests("steady") == 8  # a value in use never loses its slot or its counts
    assert not any(f.startswith("junk-") for f in s.features())
    evicted = s.registry.get_sample_value(M.LABEL_EVICTIONS_TOTAL, {"label": M.FEATURE})
    assert evicted == 4  # junk-0 .. junk-3 held the four slots "steady" left


def test_the_capped_feature_the_engines_get_follows_the_freed_slot() -> None:
    s = _Setup(max_label_values=2)
    s.send("a", "b")
    assert s.derived.feature_label("late") == M.OVERFLOW_VALUE
    s.clock.advance(1.2 * HOUR)
    s.send("late")
    assert s.derived.feature_label("late") == "late"
    assert s.requests("late") == 1
    assert s.requests("a") is None and s.requests("b") is None


def test_the_series_cap_ages_too() -> None:
    s = _Setup(max_label_values=100, max_series=3)
    s.send("f1", "f2", "f3", "f4")
    everything_other = dict.fromkeys(M.LLM_LABELS, M.OVERFLOW_VALUE)
    assert s.registry.get_sample_value(M.REQUESTS_TOTAL, {**everything_other, **OK}) == 1
    s.clock.advance(1.2 * HOUR)
    s.send("f5")
    assert s.requests("f5") == 1
    assert len(s.derived.llm) == 1


def test_an_aged_out_error_type_leaves_the_series_that_still_lives() -> None:
    s = _Setup(max_label_values=3)
    s.send("support", **{A.ERROR_TYPE: "Timeout"})
    for _ in range(8):
        s.clock.advance(600)
        s.send("support")
    errors = s.registry.get_sample_value(M.ERRORS_TOTAL, {**llm_labels(), "error_type": "Timeout"})
    assert errors is None
    assert s.registry.get_sample_value(M.LABEL_EVICTIONS_TOTAL, {"label": M.ERROR_TYPE}) == 1
    assert s.requests("support") is not None


def test_a_series_that_comes_back_is_announced_at_zero_again() -> None:
    s = _Setup()
    s.send("gone")
    sample = {**llm_labels(feature="gone"), **OK}
    s.scrape.get_sample_value(M.REQUESTS_TOTAL, sample)  # first scrape: announced at zero
    assert s.scrape.get_sample_value(M.REQUESTS_TOTAL, sample) == 1
    s.clock.advance(1.2 * HOUR)
    s.send("other")  # runs the ageing: "gone" leaves
    assert s.scrape.get_sample_value(M.REQUESTS_TOTAL, sample) is None
    s.send("gone")
    assert s.scrape.get_sample_value(M.REQUESTS_TOTAL, sample) == 0
    assert s.scrape.get_sample_value(M.REQUESTS_TOTAL, sample) == 1
