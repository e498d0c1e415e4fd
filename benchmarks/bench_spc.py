"""Quality-engine benchmark: EWMA run lengths against theory, and the cost of ``observe``.

* Run lengths: for each shift (in sigma) the zero-state ARL of the EWMA chart from the
  Lucas & Saccucci Markov-chain approximation and from a vectorised simulation of the chart as
  implemented, with steady-state and with time-varying limits.
* Cost: microseconds per :meth:`QualityEngine.observe` on a content-carrying sample (cheap checks,
  signals, chart windows, sampling decision), against a baseline loop that only builds the
  sample, measured in the same run. The processor's per-span budget at 50,000 spans/s is 20 us.

Run: ``python benchmarks/bench_spc.py [--runs 20000] [--lambda 0.1 --L 2.814]``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from prometheus_client.registry import CollectorRegistry

from llmpulse.processor.quality.engine import QualityEngine
from llmpulse.processor.quality.settings import JudgeSettings, QualitySettings
from llmpulse.processor.quality.types import QualitySample
from llmpulse.processor.spc.arl import markov_arl, simulate_run_lengths

SHIFTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--lambda", dest="lambda_", type=float, default=0.1)
    parser.add_argument("--L", type=float, default=2.814)
    parser.add_argument("--calls", type=int, default=50_000)
    args = parser.parse_args(argv)
    arl_table(args.runs, args.lambda_, args.L)
    asyncio.run(observe_cost(args.calls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
