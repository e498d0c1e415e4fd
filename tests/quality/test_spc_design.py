"""Charts with estimated baselines: designed limits, binomial sigma, minimum effects, old snapshots."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.charts import MIN_EFFECT, QualityCharts
from llmpulse.processor.quality.settings import QualitySettings, SpcSettings
from llmpulse.processor.spc.design import DESIGNED, alarm_probability, designed_L, solve_L
from llmpulse.processor.spc.ewma import DEFAULT_L, DEFAULT_LAMBDA, EwmaChart


def test_the_table_is_what_the_solver_finds() -> None:
    for (lambda_, L, warmup, two_sided, sigma_estimated), table in DESIGNED.items():
        solved = solve_L(lambda_, L, warmup, two_sided=two_sided, sigma_estimated=sigma_estimated, seed=5)
        assert solved == pytest.approx(table, abs=0.03)
    assert 2.95 < designed_L(DEFAULT_LAMBDA, DEFAULT_L, 100) < 3.07


def test_designed_limits_restore_the_known_baseline_false_alarm_rate() -> None:
    known = alarm_probability(DEFAULT_LAMBDA, DEFAULT_L, None, runs=40_000)
    naive = alarm_probability(DEFAULT_LAMBDA, DEFAULT_L, 100, runs=40_000)
    designed = alarm_probability(DEFAULT_LAMBDA, designed_L(DEFAULT_LAMBDA, DEFAULT_L, 100), 100, runs=40_000)
    assert 0.08 < known < 0.12  # one-sided, L 2.814, first 100 windows
    assert naive > 1.3 * known  # the problem: an estimated baseline alarms sooner
    assert designed == pytest.approx(known, rel=0.12)
    # a shorter warm-up needs wider limits; an unknown setting is solved (and cached) on use
    assert designed_L(DEFAULT_LAMBDA, DEFAULT_L, 20) > designed_L(DEFAULT_LAMBDA, DEFAULT_L, 30) > 3.1
    # very wide limits are matched in the tail, still wider than asked
    assert designed_L(DEFAULT_LAMBDA, 5.0, 100) > 5.0


def test_a_chart_that_estimated_its_baseline_uses_the_designed_limit() -> None:
    rng = np.random.default_rng(3)
    chart = EwmaChart()
    assert chart.warmup == 100
    for value in rng.standard_normal(100):
        chart.update(float(value))
    assert chart.baseline is not None and chart.baseline.source == "sample"
    assert pytest.approx(designed_L(DEFAULT_LAMBDA, DEFAULT_L, 100, two_sided=True)) == chart.baseline.L
    _, upper = chart.limits(10**6)
    assert upper - chart.baseline.mean == pytest.approx(
        chart.baseline.L * chart.baseline.sigma * math.sqrt(0.1 / 1.9)
    )
    # switched off, and for a baseline set by hand (known), L is used as given
    off = EwmaChart(warmup=5, design_limits=False)
    for value in (1.0, 2.0, 3.0, 2.0, 1.0):
        off.update(value)
    assert off.baseline is not None and off.baseline.L == DEFAULT_L
    by_hand = EwmaChart()
    by_hand.set_baseline(0.0, 1.0)
    assert by_hand.baseline is not None and by_hand.baseline.L == DEFAULT_L


def test_rates_use_the_binomial_sigma_unless_over_dispersed() -> None:
    rng = np.random.default_rng(8)
    chart = EwmaChart(warmup=100, binomial_n=200, one_sided="upper")
    for errors in rng.binomial(200, 0.05, 100):
        chart.update(errors / 200)
    base = chart.baseline
    assert base is not None and base.source == "binomial"
    assert base.sigma == pytest.approx(math.sqrt(base.mean * (1 - base.mean) / 200))
    assert pytest.approx(designed_L(DEFAULT_LAMBDA, DEFAULT_L, 100, sigma_estimated=False)) == base.L
    # errors that come in bursts scatter the windows far beyond the binomial: the sample sigma
    bursty = EwmaChart(warmup=100, binomial_n=200, one_sided="upper")
    for i in range(100):
        bursty.update(0.3 if i % 10 == 0 else 0.01)
    assert bursty.baseline is not None and bursty.baseline.source == "sample"
    assert bursty.baseline.sigma > 5 * math.sqrt(bursty.baseline.mean * (1 - bursty.baseline.mean) / 200)


def test_no_alarm_below_the_minimum_effect() -> None:
    def run(min_effect: tuple[float, float], level: float) -> bool:
        chart = EwmaChart(warmup=2, one_sided="upper", min_effect=min_effect, design_limits=False)
        chart.set_baseline(0.010, 0.001)
        return any(chart.update(level).alarm for _ in range(50))

    assert run((0.0, 0.0), 0.015)  # five sigma out of control
    assert not run((0.02, 0.5), 0.015)  # but half a point more errors: nobody pages for it
    assert not run((0.0, 0.5), 0.0149)  # relative effect (50% of 1%) not reached
    assert run((0.002, 0.2), 0.015)  # both minimum effects exceeded
    chart = EwmaChart(one_sided="upper", min_effect=(0.02, 0.5))
    chart.set_baseline(0.01, 0.001)
    state = chart.update(0.01)
    assert state.upper < state.alert_upper == pytest.approx(0.03)


def test_quality_charts_get_binomial_sigma_and_minimum_effects() -> None:
    charts = QualityCharts(SpcSettings(requests_per_window=50), window_sizes={"quiet": 10})
    error = charts.chart("svc", "quiet", Q.STAT_ERROR_RATE)
    assert error.binomial_n == 10 and error.min_effect == MIN_EFFECT[Q.STAT_ERROR_RATE] == (0.02, 0.5)
    assert charts.chart("svc", "busy", Q.STAT_REFUSAL_RATE).binomial_n == 50
    latency = charts.chart("svc", "busy", Q.STAT_LATENCY_P95)
    assert latency.binomial_n is None and latency.min_effect == (0.05, 0.2)
    assert charts.chart("svc", "busy", Q.STAT_JUDGE_SCORE).min_effect == (0.25, 0.05)
    assert latency.warmup == 100 and latency.design_limits
    settings = QualitySettings.from_dict({"spc": {"design_limits": False}})
    assert not QualityCharts(settings.spc).chart("s", "f", Q.STAT_COST).design_limits


V1_SNAPSHOT = {
    "version": 1,
    "lambda": 0.1,
    "L": 2.814,
    "warmup": 20,
    "time_varying": True,
    "sigma_floor": 0.001,
    "one_sided": "upper",
    "baseline": {"mean": 0.8, "sigma": 0.05, "n": 20},
    "warmup_values": [],
    "ewma": 0.81,
    "index": 40,
    "alarms": 0,
}


def test_a_version_1_snapshot_loads_and_learns_a_new_baseline() -> None:
    chart = EwmaChart.from_dict(json.loads(json.dumps(V1_SNAPSHOT)))
    assert chart.in_warmup and chart.warmup == 20 and chart.L == 2.814 and not chart.design_limits
    charts = QualityCharts(SpcSettings())
    charts.load({("svc", "chat", Q.STAT_LATENCY_P95): V1_SNAPSHOT})
    loaded = charts.chart("svc", "chat", Q.STAT_LATENCY_P95)
    assert loaded.in_warmup and loaded.warmup == 100 and loaded.design_limits
    # and the new snapshot round-trips with its designed limit
    rng = np.random.default_rng(1)
    for value in 0.8 + 0.05 * rng.standard_normal(100):
        loaded.update(float(value))
    snapshot = loaded.to_dict()
    assert snapshot["version"] == 2 and snapshot["baseline"]["source"] == "sample"
    again = EwmaChart.from_dict(json.loads(json.dumps(snapshot)))
    assert again.baseline == loaded.baseline and again.min_effect == (0.05, 0.2)
    with pytest.raises(ValueError, match="version"):
        EwmaChart.from_dict({**snapshot, "version": 3})
