"""Quality-engine benchmark: run lengths of the shipped charts over simulated warm-ups, EWMA run
lengths against theory, and the cost of ``observe``.

* Estimated baselines (the default section): for each chart type at the shipped defaults, a model
  of its per-window statistic (an error rate over 100 calls, a p95 of 100 latencies, a mean judge
  score of 20 verdicts, a drift block of 20 similarities ...) and ``--warmups`` simulated charts per
  design, all on the same windows (common random numbers): ``known`` (the true mean and sigma,
  L 2.814), ``old`` (20-window warm-up, sample sigma, L 2.814), ``new`` (the shipped chart:
  100-window warm-up, binomial sigma for rates, L designed by ``llmpulse.processor.spc.design``) and
  ``new+min`` (with the statistic's minimum effect). Printed: the in-control run-length
  distribution (mean, median, 10th percentile, P(alarm within 100 windows); runs are cut at
  ``--cap`` windows, so a mean marked ``>`` is a lower bound) and the mean run length after a
  shift of 0.5, 1 and 2 sigma in the bad direction from the first window after the warm-up.
  Targets (issue 14): P(alarm within 100) of ``new`` <= 1.2x ``known``; ARL at 1 sigma of ``new``
  <= 1.3x ``old``. A few runs are replayed through the real ``EwmaChart`` first, which must
  alarm at the same window as the simulation.
* Run lengths against theory: for each shift (in sigma) the zero-state ARL of the EWMA chart from
  the Lucas & Saccucci Markov-chain approximation and from a vectorised simulation of the chart
  as implemented, with steady-state and with time-varying limits.
* Cost: microseconds per :meth:`QualityEngine.observe` on a content-carrying sample (cheap checks,
  signals, chart windows, sampling decision), against a baseline loop that only builds the
  sample, measured in the same run. The processor's per-span budget at 50,000 spans/s is 20 us.

Run: ``python benchmarks/bench_spc.py [--warmups 1000] [--sections warmups,theory,cost]``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from prometheus_client.registry import CollectorRegistry

from llmpulse.processor.drift.state import DriftSettings, FeatureDrift
from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.charts import QualityCharts
from llmpulse.processor.quality.engine import QualityEngine
from llmpulse.processor.quality.settings import JudgeSettings, QualitySettings, SpcSettings
from llmpulse.processor.quality.types import QualitySample
from llmpulse.processor.spc.arl import markov_arl, simulate_run_lengths
from llmpulse.processor.spc.design import designed_L
from llmpulse.processor.spc.ewma import EwmaChart, limit_factor

SHIFTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
OUT_OF_CONTROL = (0.5, 1.0, 2.0)
Array = NDArray[np.float64]
OLD_WARMUP = 20


@dataclass(frozen=True)
class ChartType:
    name: str
    draw: Callable[[np.random.Generator, int], Array]
    """``n`` in-control window statistics."""
    chart: Callable[[], EwmaChart]
    """A fresh chart with the shipped settings."""


def _error_rate(p: float, n: int) -> Callable[[np.random.Generator, int], Array]:
    return lambda rng, k: rng.binomial(n, p, k) / n


def _p95(rng: np.random.Generator, k: int) -> Array:
    latencies = rng.lognormal(math.log(0.8), 0.5, (k, 100))
    return np.sort(latencies, axis=1)[:, 94]  # nearest rank of 100: the 95th value


def _cost(rng: np.random.Generator, k: int) -> Array:
    return rng.lognormal(math.log(0.003), 0.6, (k, 100)).mean(axis=1)


def _score(rng: np.random.Generator, k: int) -> Array:
    dims = rng.choice(np.arange(1.0, 6.0), size=(k, 20, 3), p=[0.02, 0.03, 0.10, 0.35, 0.50])
    return dims.mean(axis=(1, 2))


def _similarity(rng: np.random.Generator, k: int) -> Array:
    return rng.beta(30.0, 8.0, (k, 20)).mean(axis=1)


def _quality_chart(statistic: str) -> Callable[[], EwmaChart]:
    return lambda: QualityCharts(SpcSettings()).chart("svc", "feature", statistic)


def _drift_chart() -> EwmaChart:
    return FeatureDrift("feature", DriftSettings(), seed=0).chart


CHART_TYPES: tuple[ChartType, ...] = (
    ChartType("error rate (1%, 100 calls)", _error_rate(0.01, 100), _quality_chart(Q.STAT_ERROR_RATE)),
    ChartType("refusal rate (3%, 100 calls)", _error_rate(0.03, 100), _quality_chart(Q.STAT_REFUSAL_RATE)),
    ChartType("p95 latency (100 calls)", _p95, _quality_chart(Q.STAT_LATENCY_P95)),
    ChartType("cost per request (100 calls)", _cost, _quality_chart(Q.STAT_COST)),
    ChartType("judge score (20 verdicts)", _score, _quality_chart(Q.STAT_JUDGE_SCORE)),
    ChartType("drift similarity (20 prompts)", _similarity, _drift_chart),
)


@dataclass(frozen=True)
class Design:
    name: str
    warmup: int | None
    """Windows of warm-up (``None``: the known baseline)."""
    designed: bool
    min_effect: bool


DESIGNS = (
    Design("known", None, designed=False, min_effect=False),
    Design("old", OLD_WARMUP, designed=False, min_effect=False),
    Design("new", None, designed=True, min_effect=False),  # warm-up: the shipped chart's
    Design("new+min", None, designed=True, min_effect=True),
)


def _baselines(
    chart: EwmaChart, design: Design, warm: Array, true_mean: float, true_sd: float
) -> tuple[Array, Array, Array]:
    """Per run: (mean, sigma, L) as the chart would fix them from the warm-up ``warm``."""
    runs = warm.shape[0]
    if design.warmup is None and not design.designed:
        return (
            np.full(runs, true_mean),
            np.full(runs, max(true_sd, chart.sigma_floor)),
            np.full(runs, chart.L),
        )
    m = warm.shape[1]
    mean = warm.mean(axis=1)
    sd = warm.std(axis=1, ddof=1)
    sigma = sd.copy()
    binomial_used = np.zeros(runs, dtype=bool)
    if design.designed and chart.binomial_n is not None:
        p = np.clip(mean, 0.0, 1.0)
        binomial = np.sqrt(p * (1.0 - p) / chart.binomial_n)
        k = 2.0 / (9.0 * (m - 1))
        chi2 = (m - 1) * (1.0 - k + 2.3263 * math.sqrt(k)) ** 3
        binomial_used = (binomial == 0.0) | ((m - 1) * sd * sd <= chi2 * binomial * binomial)
        sigma = np.where(binomial_used, binomial, sd)
    sigma = np.maximum(sigma, chart.sigma_floor)
    L = np.full(runs, chart.L)
    if design.designed:
        two = chart.one_sided is None
        L_sample = designed_L(chart.lambda_, chart.L, m, two_sided=two, sigma_estimated=True)
        L_binomial = designed_L(chart.lambda_, chart.L, m, two_sided=two, sigma_estimated=False)
        L = np.where(binomial_used, L_binomial, L_sample)
    return mean, sigma, L


def run_lengths(
    chart: EwmaChart,
    design: Design,
    data: Array,
    *,
    true_mean: float,
    true_sd: float,
    shift_sd: float = 0.0,
) -> NDArray[np.int64]:
    """First alarm (windows after the warm-up) of each row of ``data``; ``cap`` when none.

    ``data`` holds each run's windows from its first; the warm-up is taken from the front
    (the known design takes none). ``shift_sd`` moves every charted window by that many true
    sigmas in the chart's bad direction.
    """
    warmup = chart.warmup if design.designed else (design.warmup or 0)
    mean, sigma, L = _baselines(chart, design, data[:, :warmup], true_mean, true_sd)
    after = data[:, warmup:]
    runs, cap = after.shape
    sign = -1.0 if chart.one_sided == "lower" else 1.0
    margin = np.zeros(runs)
    if design.min_effect:
        margin = np.maximum(chart.min_effect[0], chart.min_effect[1] * np.abs(mean))
    lengths = np.full(runs, cap, dtype=np.int64)
    active = np.arange(runs)
    z = mean.copy()
    lam = chart.lambda_
    for i in range(1, cap + 1):
        x = after[active, i - 1] + sign * shift_sd * true_sd
        z = lam * x + (1.0 - lam) * z
        half = np.maximum(L[active] * sigma[active] * limit_factor(lam, i), margin[active])
        dev = z - mean[active]
        if chart.one_sided == "upper":
            alarmed = dev > half
        elif chart.one_sided == "lower":
            alarmed = dev < -half
        else:
            alarmed = np.abs(dev) > half
        if alarmed.any():
            lengths[active[alarmed]] = i
            keep = ~alarmed
            active, z = active[keep], z[keep]
            if active.size == 0:
                break
    return lengths


def check_against_chart(kind: ChartType, data: Array, *, min_effect: bool, runs: int = 20) -> None:
    """Replay ``runs`` rows of ``data`` through the real chart; the first alarm must agree."""
    template = kind.chart()
    if not min_effect:
        template = replace_min_effect(template)
    design = DESIGNS[3] if min_effect else DESIGNS[2]
    expected = run_lengths(template, design, data[:runs], true_mean=0.0, true_sd=1.0)
    for row, want in zip(data[:runs], expected, strict=True):
        chart = EwmaChart.from_dict(template.to_dict())
        got = None
        for value in row:
            state = chart.update(float(value))
            if state.alarm:
                got = state.index
                break
        got = data.shape[1] - template.warmup if got is None else got
        if got != int(want):
            raise AssertionError(f"{kind.name}: the chart alarmed at {got}, the simulation at {want}")


def replace_min_effect(chart: EwmaChart) -> EwmaChart:
    """The same chart without a minimum effect."""
    snapshot = chart.to_dict()
    snapshot["min_effect"] = [0.0, 0.0]
    return EwmaChart.from_dict(snapshot)


def arl_table(runs: int, lambda_: float, L: float) -> None:
    rng = np.random.default_rng(20261125)
    print(f"EWMA lambda={lambda_} L={L}: zero-state ARL, theory (Markov chain) vs simulation ({runs} runs)")
    print(f"{'shift':>6} {'limits':>12} {'theory':>9} {'simulated':>10} {'+-2se':>7} {'diff':>7}")
    for shift in SHIFTS:
        for time_varying in (False, True):
            theory = markov_arl(lambda_, L, shift, time_varying=time_varying)
            lengths = simulate_run_lengths(runs, rng, lambda_, L, shift, time_varying=time_varying)
            mean = float(lengths.mean())
            se = float(lengths.std(ddof=1)) / np.sqrt(runs)
            kind = "time-varying" if time_varying else "steady"
            diff = mean / theory - 1
            print(f"{shift:>6.1f} {kind:>12} {theory:>9.2f} {mean:>10.2f} {2 * se:>7.2f} {diff:>+7.1%}")


def _samples(n: int) -> list[QualitySample]:
    messages = [{"role": "user", "parts": [{"type": "text", "content": "How do I reset my password?"}]}]
    return [
        QualitySample(
            trace_id=int(i * 0x9E3779B97F4A7C15).to_bytes(16, "big"),
            feature=f"feature-{i % 8}",
            model="gpt-4o-mini",
            response_id=f"chatcmpl-{i}",
            input_messages=messages,
            output_text="Open Settings, choose Security, then Reset password.",
            finish_reason="stop",
            input_tokens=20,
            duration_s=0.5 + (i % 7) / 10,
            cost_usd=0.0001,
        )
        for i in range(n)
    ]


async def observe_cost(n: int) -> None:
    samples = _samples(n)
    with tempfile.TemporaryDirectory() as tmp:
        settings = QualitySettings(judge=JudgeSettings(enabled=False), db_path=str(Path(tmp) / "q.db"))
        engine = QualityEngine(settings, registry=CollectorRegistry(), tick_s=3600)
        await engine.start()
        start = time.perf_counter()
        for _sample in samples:
            pass
        baseline = time.perf_counter() - start
        start = time.perf_counter()
        for sample in samples:
            engine.observe(sample)
        elapsed = time.perf_counter() - start
        await engine.stop()
    per_call = (elapsed - baseline) / n * 1e6
    print(
        f"\nobserve(): {per_call:.2f} us per call over {n} calls (baseline loop {baseline / n * 1e6:.3f} us)"
    )
    print(f"  = {1e6 / per_call:,.0f} calls/s on one core; budget at 50k spans/s is 20 us")


def warmup_table(warmups: int, cap: int, shift_cap: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    print(
        f"Run lengths over {warmups} simulated warm-ups per design (windows after the warm-up;"
        f" in-control runs cut at {cap}, shifted runs at {shift_cap})"
    )
    head = f"{'chart':<30} {'design':<8} {'L':>5} {'mean':>7} {'median':>7} {'p10':>5} {'P(<=100)':>8}"
    head += "".join(f" {f'ARL {s:g}sd':>9}" for s in OUT_OF_CONTROL)
    print(head)
    verdicts = []
    for kind in CHART_TYPES:
        template = kind.chart()
        pool = kind.draw(rng, 400_000)
        true_mean, true_sd = float(pool.mean()), float(pool.std())
        width = template.warmup + cap
        data = pool[rng.integers(0, pool.size, (warmups, width))]
        check_against_chart(kind, data[:, : template.warmup + 300], min_effect=False)
        check_against_chart(kind, data[:, : template.warmup + 300], min_effect=True)
        shifted = pool[rng.integers(0, pool.size, (warmups, template.warmup + shift_cap))]
        found: dict[str, tuple[float, float]] = {}
        for design in DESIGNS:
            chart = template if design.min_effect else replace_min_effect(template)
            rl = run_lengths(chart, design, data, true_mean=true_mean, true_sd=true_sd)
            censored = bool((rl >= cap).any())
            p100 = float(np.mean(rl <= 100))
            arl1 = []
            for s in OUT_OF_CONTROL:
                out = run_lengths(chart, design, shifted, true_mean=true_mean, true_sd=true_sd, shift_sd=s)
                arl1.append(float(out.mean()))
            L = _design_L(chart, design)
            mean = f"{'>' if censored else ''}{rl.mean():.0f}"
            line = f"{kind.name:<30} {design.name:<8} {L:>5.3f} {mean:>7} {np.median(rl):>7.0f}"
            line += f" {np.percentile(rl, 10):>5.0f} {p100:>8.3f}" + "".join(f" {a:>9.1f}" for a in arl1)
            print(line)
            found[design.name] = (p100, arl1[1])
        fa = found["new"][0] / found["known"][0]
        slow = found["new"][1] / found["old"][1]
        verdicts.append(
            f"{kind.name:<30} P(<=100) new/known {fa:.2f}x ({'ok' if fa <= 1.2 else 'MISSED'} <= 1.2x);"
            f" ARL at 1sd new/old {slow:.2f}x ({'ok' if slow <= 1.3 else 'MISSED'} <= 1.3x);"
            f" with minimum effects P(<=100) {found['new+min'][0]:.3f}"
        )
    print("\nTargets (issue 14):")
    for line in verdicts:
        print("  " + line)
    print("  (runs replayed through the real EwmaChart alarmed at the same window as the simulation)\n")


def _design_L(chart: EwmaChart, design: Design) -> float:
    if not design.designed:
        return chart.L
    sigma_estimated = chart.binomial_n is None
    return designed_L(
        chart.lambda_,
        chart.L,
        chart.warmup,
        two_sided=chart.one_sided is None,
        sigma_estimated=sigma_estimated,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sections", default="warmups,theory,cost", help="comma-separated: warmups,theory,cost"
    )
    parser.add_argument("--warmups", type=int, default=1000, help="simulated warm-ups per chart and design")
    parser.add_argument("--cap", type=int, default=5000, help="longest in-control run simulated")
    parser.add_argument("--shift-cap", type=int, default=1000, help="longest shifted run simulated")
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--runs", type=int, default=20_000, help="runs per shift in the theory section")
    parser.add_argument("--lambda", dest="lambda_", type=float, default=0.1)
    parser.add_argument("--L", type=float, default=2.814)
    parser.add_argument("--calls", type=int, default=50_000)
    args = parser.parse_args(argv)
    sections = set(args.sections.split(","))
    unknown = sections - {"warmups", "theory", "cost"}
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; known: warmups, theory, cost")
    if args.warmups < 20 or args.cap < 100:
        parser.error("--warmups must be at least 20 and --cap at least 100")
    started = time.perf_counter()
    if "warmups" in sections:
        warmup_table(args.warmups, args.cap, args.shift_cap, args.seed)
        print(f"(warm-up section: {time.perf_counter() - started:.0f} s)\n")
    if "theory" in sections:
        arl_table(args.runs, args.lambda_, args.L)
    if "cost" in sections:
        asyncio.run(observe_cost(args.calls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
