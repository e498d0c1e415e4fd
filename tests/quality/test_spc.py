"""EWMA chart: run lengths against theory, alarms on a drop, persistence and reset."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from llmpulse.processor.spc.arl import markov_arl, simulate_run_lengths
from llmpulse.processor.spc.ewma import EwmaChart, limit_factor

RUNS = 5000


def test_markov_chain_reproduces_the_published_table() -> None:
    # Lucas & Saccucci (1990): lambda 0.1, L 2.814 -> ARL 500 in control, 10.3 for a 1-sigma shift.
    assert markov_arl(0.1, 2.814, 0.0) == pytest.approx(500, rel=0.01)
    assert markov_arl(0.1, 2.814, 1.0) == pytest.approx(10.3, rel=0.01)


@pytest.mark.parametrize("time_varying", [False, True])
@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_simulated_run_lengths_within_ten_percent_of_theory(shift: float, time_varying: bool) -> None:
    theory = markov_arl(0.1, 2.814, shift, time_varying=time_varying)
    lengths = simulate_run_lengths(
        RUNS, np.random.default_rng(20261125), 0.1, 2.814, shift, time_varying=time_varying
    )
    assert lengths.max() < 100_000  # every run ended in an alarm, none censored
    assert lengths.mean() == pytest.approx(theory, rel=0.10)


def _first_alarm(chart: EwmaChart, values: list[float]) -> int:
    for value in values:
        state = chart.update(value)
        if state.alarm:
            return state.index
    return -1


@pytest.mark.parametrize("seed", range(40))
def test_chart_alarms_where_the_vectorised_simulation_does(seed: int) -> None:
    simulated = int(simulate_run_lengths(1, np.random.default_rng(seed), shift=1.0)[0])
    rng = np.random.default_rng(seed)
    values = [1.0 + float(rng.standard_normal(1)[0]) for _ in range(simulated + 5)]
    chart = EwmaChart()
    chart.set_baseline(0.0, 1.0)
    assert _first_alarm(chart, values) == simulated


def test_injected_quality_drop_alarms_and_a_stable_stream_does_not() -> None:
    rng = np.random.default_rng(7)
    stable = EwmaChart(warmup=30, one_sided="lower")
    drop = EwmaChart(warmup=30, one_sided="lower")
    warm = 4.2 + 0.15 * rng.standard_normal(30)
    for value in warm:
        assert stable.update(float(value)).in_warmup
        drop.update(float(value))
    assert stable.baseline is not None
    assert stable.baseline.mean == pytest.approx(4.2, abs=0.1)
    after = 0.15 * rng.standard_normal(200)
    assert not any(stable.update(4.2 + float(v)).alarm for v in after)
    # A drop of 2 sigma in mean judge score: alarmed within a few dozen windows.
    first = _first_alarm(drop, [4.2 - 0.3 + float(v) for v in after])
    assert 0 < first <= 20


def test_limits_follow_the_time_varying_factor() -> None:
    chart = EwmaChart()
    chart.set_baseline(10.0, 2.0)
    state = chart.update(10.0)
    assert state.upper - 10.0 == pytest.approx(2.814 * 2.0 * 0.1)  # first point: sqrt(l^2) = l
    for _ in range(500):
        state = chart.update(10.0)
    assert state.upper - 10.0 == pytest.approx(2.814 * 2.0 * limit_factor(0.1, 0, time_varying=False))


def test_flat_warmup_uses_the_sigma_floor() -> None:
    chart = EwmaChart(warmup=5, sigma_floor=0.01)
    for _ in range(5):
        chart.update(0.0)
    assert chart.baseline is not None and chart.baseline.sigma == 0.01
    assert not chart.update(0.001).alarm


def test_snapshot_round_trip_through_json_continues_identically() -> None:
    rng = np.random.default_rng(3)
    values = [float(v) for v in rng.standard_normal(60)]
    original = EwmaChart(warmup=10)
    for value in values[:35]:
        original.update(value)
    restored = EwmaChart.from_dict(json.loads(json.dumps(original.to_dict())))
    assert restored.baseline == original.baseline
    for value in values[35:]:
        assert restored.update(value) == original.update(value)


def test_snapshot_during_warmup_keeps_the_warmup_values() -> None:
    chart = EwmaChart(warmup=4)
    chart.update(1.0)
    chart.update(3.0)
    restored = EwmaChart.from_dict(chart.to_dict())
    restored.update(1.0)
    restored.update(3.0)
    assert restored.baseline is not None and restored.baseline.mean == 2.0


def test_reset_forgets_the_baseline() -> None:
    chart = EwmaChart(warmup=3)
    for value in (1.0, 2.0, 3.0, 50.0):
        chart.update(value)
    assert chart.alarms == 1
    chart.reset()
    assert chart.in_warmup and chart.alarms == 0
    state = chart.update(50.0)
    assert state.in_warmup and math.isnan(state.upper)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="lambda_"):
        EwmaChart(lambda_=0.0)
    with pytest.raises(ValueError, match="non-finite"):
        EwmaChart().update(math.nan)
    with pytest.raises(ValueError, match="version"):
        EwmaChart.from_dict({"version": 99})
    with pytest.raises(ValueError, match="malformed"):
        EwmaChart.from_dict({"version": 1})
