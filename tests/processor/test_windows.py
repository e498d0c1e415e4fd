"""Rolling per-feature windows."""

from __future__ import annotations

import numpy as np
import pytest

from llmpulse.processor.metrics.windows import FeatureBatch, RollingWindows
from llmpulse.processor.pipeline.records import LLMCall
from llmpulse.testing.clock import FakeClock


def _call(duration: float, *, error: str = "", outcome: str = "ok", cost: float | None = 0.01) -> LLMCall:
    call = LLMCall()
    call.duration_s = duration
    call.error_type = error
    call.outcome = "error" if error else outcome
    call.cost_usd = cost
    call.input_tokens = 100
    call.output_tokens = 10
    return call


def _batch(calls: list[LLMCall]) -> FeatureBatch:
    batch = FeatureBatch()
    for call in calls:
        batch.add(call)
    return batch


def test_exact_percentiles_and_rates() -> None:
    clock = FakeClock()
    windows = RollingWindows(clock=clock)
    durations = [float(i) for i in range(1, 101)]  # 1..100 s
    calls = [_call(d) for d in durations]
    calls[0] = _call(1.0, error="Timeout", cost=None)
    calls[1] = _call(2.0, outcome="refusal")
    calls[2] = _call(3.0, cost=None)  # a successful call without a price
    windows.add({("app", "qa"): _batch(calls)})
    w = windows.snapshot()["app"]["qa"]["1m"]
    expected = np.percentile(durations, [50, 95, 99])
    assert (w["latency_p50_s"], w["latency_p95_s"], w["latency_p99_s"]) == tuple(float(x) for x in expected)
    assert w["latency_exact"] is True
    assert w["requests"] == 100
    assert w["error_rate"] == 0.01
    assert w["refusal_rate"] == 0.01
    assert w["cost_usd_total"] == pytest.approx(0.98)
    assert w["cost_usd_mean"] == w["cost_usd_total"] / 98
    # the failed call without a cost is not unpriced: 1 of the 99 successful calls is
    assert (w["unpriced"], w["unpriced_share"]) == (1, 1 / 99)
    assert (w["input_tokens_mean"], w["output_tokens_mean"]) == (100.0, 10.0)


def test_old_slots_leave_the_short_window_but_stay_in_the_long_ones() -> None:
    clock = FakeClock()
    windows = RollingWindows(clock=clock)
    windows.add({("app", "qa"): _batch([_call(1.0)])})
    clock.now += 90
    windows.add({("app", "qa"): _batch([_call(3.0)])})
    snap = windows.snapshot()["app"]["qa"]
    assert snap["1m"]["requests"] == 1
    assert snap["1m"]["latency_p50_s"] == 3.0
    assert snap["5m"]["requests"] == 2
    assert snap["1h"]["requests"] == 2
    clock.now += 3600
    snap = windows.snapshot()["app"]["qa"]
    assert snap["1h"]["requests"] == 0
    assert snap["1h"]["latency_p50_s"] is None
    assert snap["1h"]["error_rate"] is None


def test_latency_samples_are_bounded_beyond_the_cap() -> None:
    clock = FakeClock()
    windows = RollingWindows(clock=clock, latency_samples_per_slot=50, seed=1)
    for _ in range(10):
        windows.add(
            {("app", "qa"): _batch([_call(0.5) for _ in range(40)] + [_call(1.5) for _ in range(40)])}
        )
    w = windows.snapshot()["app"]["qa"]["1m"]
    assert w["requests"] == 800
    assert w["latency_exact"] is False
    assert w["latency_p50_s"] in (0.5, 1.0, 1.5)
    rings = windows._features["app", "qa"]
    assert all(slot.filled <= 50 for ring in rings for slot in ring.slots)
