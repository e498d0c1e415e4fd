"""Per-feature drift state: the frozen reference, the current window, the centroid and its SPC chart.

Memory is fixed per feature: the reference holds at most ``reference_size`` vectors, the current
window is a ring of ``window_size`` vectors, and the output-side windows (response lengths,
finish reasons) and similarities are bounded deques of the same sizes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmpulse.contract.attributes import UNKNOWN_SERVICE
from llmpulse.processor.drift import metric_names as names
from llmpulse.processor.drift.stats import (
    TestResult,
    chi_square_homogeneity,
    ks_two_sample,
    mmd_permutation_test,
)
from llmpulse.processor.spc.ewma import ChartState, EwmaChart

__all__ = ["SIMILARITY_MIN_EFFECT", "DriftSettings", "FeatureDrift", "similarity_chart"]

SIMILARITY_MIN_EFFECT = (0.02, 0.03)
"""(absolute, relative to the centre) smallest drop of the similarity EWMA that may alarm, as the
quality charts' ``MIN_EFFECT``: without it the chart's designed ~500-block in-control run length
meant a false alarm about every 11 hours at a block per 80 s (1.75 notifications a week after
``for: 10m`` in ``benchmarks/bench_alert_delay.py``); a topic shift worth a look moves the mean
similarity of a block by several hundredths."""


@dataclass(frozen=True, slots=True)
class DriftSettings:
    """Tuning of the drift engine; the defaults meet the issue's targets (see docs/drift.md).

    Args:
        reference_size: samples frozen as the reference window of a feature.
        window_size: samples in the current (sliding) window.
        test_every: run the two-sample tests after this many new samples in the current window.
        min_current: samples the current window needs before the first test.
        min_output_samples: response lengths / finish reasons each side needs for their tests.
        max_test_samples: cap on samples per side in one test (random subset beyond it).
        permutations: permutations for the MMD p-value.
        alpha: significance level of every test; ``p < alpha`` sets the drifted flag.
        centroid_rate: weight of a new sample in the slowly updated centroid.
        spc_block: samples per block whose mean similarity is charted.
        spc_warmup: blocks that estimate the chart's baseline after a (re)freeze.
        spc_design_limits: widen the chart's L for its estimated baseline, so false alarms within
            100 blocks after the warm-up are as rare as with a known baseline.
        max_queue: samples waiting to be embedded; more are dropped and counted.
        batch_size: texts per embedder call.
        max_features: distinct features tracked; samples of further features are dropped.
        max_text_chars: prompt characters embedded per sample.
        seed: seed for the permutation tests, so a run is reproducible.
    """

    reference_size: int = 200
    window_size: int = 200
    test_every: int = 50
    min_current: int = 100
    min_output_samples: int = 30
    max_test_samples: int = 500
    permutations: int = 500
    alpha: float = 0.01
    centroid_rate: float = 0.001
    spc_block: int = 20
    spc_warmup: int = 100
    spc_design_limits: bool = True
    max_queue: int = 10_000
    batch_size: int = 64
    max_features: int = 50
    max_text_chars: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        for field_name in ("reference_size", "window_size", "test_every", "min_current", "batch_size"):
            if getattr(self, field_name) < 1:
                raise ValueError(f"DriftSettings.{field_name} must be at least 1")
        if self.min_current > self.window_size:
            raise ValueError("DriftSettings.min_current cannot exceed window_size")
        if self.min_current < 2 or self.reference_size < 2:
            raise ValueError("DriftSettings needs at least 2 samples per side for a test")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"DriftSettings.alpha must be in (0, 1), got {self.alpha}")
        if not 0.0 < self.centroid_rate <= 1.0:
            raise ValueError(f"DriftSettings.centroid_rate must be in (0, 1], got {self.centroid_rate}")
        if self.permutations < 19:
            raise ValueError("DriftSettings.permutations must be at least 19 (p-values below 0.05)")


def similarity_chart(settings: DriftSettings) -> EwmaChart:
    """The EWMA chart of a feature's block-mean centroid similarity (lower side only)."""
    return EwmaChart(
        warmup=settings.spc_warmup,
        one_sided="lower",
        sigma_floor=1e-4,
        design_limits=settings.spc_design_limits,
        min_effect=SIMILARITY_MIN_EFFECT,
    )


class FeatureDrift:
    """Everything the engine knows about one feature. Not thread-safe: the engine locks around it."""

    def __init__(
        self, feature: str, settings: DriftSettings, seed: int, service: str = UNKNOWN_SERVICE
    ) -> None:
        self.service = service
        self.feature = feature
        self.key = (service, feature)
        self.settings = settings
        self._seed = seed
        self.tests_run = 0
        self.frozen_at: float | None = None
        self.results: dict[str, TestResult] = {}
        self.chart = self._new_chart()
        self.generation = 0
        """Counts changes of what :meth:`snapshot` saves (a freeze, a re-freeze, a chart baseline),
        so the owner can persist on change."""
        self._clear(reference=True)

    def _new_chart(self) -> EwmaChart:
        return similarity_chart(self.settings)

    # --- windows --------------------------------------------------------------------------
    def _clear(self, *, reference: bool) -> None:
        s = self.settings
        if reference:
            self._ref_vectors: list[np.ndarray] = []
            self.reference: np.ndarray | None = None
            self.ref_lengths: list[int] = []
            self.ref_reasons: list[str] = []
            self.centroid: np.ndarray | None = None
            self.frozen_at = None
        self._cur: np.ndarray | None = None
        self._cur_n = 0
        self._cur_pos = 0
        self.cur_lengths: deque[int] = deque(maxlen=s.window_size)
        self.cur_reasons: deque[str] = deque(maxlen=s.window_size)
        self.similarities: deque[float] = deque(maxlen=s.window_size)
        self._block: list[float] = []
        self._since_test = 0
        self.results = {}
        self.chart.reset()

    @property
    def frozen(self) -> bool:
        """True once the reference window is complete."""
        return self.reference is not None

    @property
    def reference_count(self) -> int:
        """Samples in the reference (frozen or still being collected)."""
        return len(self.reference) if self.reference is not None else len(self._ref_vectors)

    @property
    def window_count(self) -> int:
        """Samples in the current window."""
        return self._cur_n

    def current_vectors(self) -> np.ndarray:
        """The current window's vectors, oldest first."""
        if self._cur is None:
            return np.zeros((0, 0), dtype=np.float32)
        if self._cur_n < len(self._cur):
            return self._cur[: self._cur_n].copy()
        return np.roll(self._cur, -self._cur_pos, axis=0)

    def memory_bytes(self) -> int:
        """Bytes held in vector buffers (reference plus current ring)."""
        ref = (
            self.reference.nbytes if self.reference is not None else sum(v.nbytes for v in self._ref_vectors)
        )
        return ref + (self._cur.nbytes if self._cur is not None else 0)

    # --- updates --------------------------------------------------------------------------
    def add(
        self, vector: np.ndarray, response_length: int | None, finish_reason: str | None, now: float
    ) -> tuple[float | None, ChartState | None]:
        """Add one embedded sample; returns its centroid similarity and any new chart state."""
        if not self.frozen:
            self._ref_vectors.append(vector)
            if response_length is not None:
                self.ref_lengths.append(response_length)
            if finish_reason is not None:
                self.ref_reasons.append(finish_reason)
            if len(self._ref_vectors) >= self.settings.reference_size:
                self._freeze(np.stack(self._ref_vectors), now)
            return None, None
        assert self.centroid is not None
        if self._cur is None:
            self._cur = np.zeros((self.settings.window_size, vector.shape[0]), dtype=np.float32)
        self._cur[self._cur_pos] = vector
        self._cur_pos = (self._cur_pos + 1) % len(self._cur)
        self._cur_n = min(self._cur_n + 1, len(self._cur))
        if response_length is not None:
            self.cur_lengths.append(response_length)
        if finish_reason is not None:
            self.cur_reasons.append(finish_reason)
        self._since_test += 1
        similarity = _cosine(vector, self.centroid)
        rate = self.settings.centroid_rate
        self.centroid = (1.0 - rate) * self.centroid + rate * vector
        self.similarities.append(similarity)
        self._block.append(similarity)
        state = None
        if len(self._block) >= self.settings.spc_block:
            warming = self.chart.baseline is None
            state = self.chart.update(float(np.mean(self._block)))
            self._block = []
            if warming and self.chart.baseline is not None:
                self.generation += 1
        return similarity, state

    def _freeze(self, vectors: np.ndarray, now: float) -> None:
        self.reference = vectors.astype(np.float32, copy=False)
        self._ref_vectors = []
        self.centroid = self.reference.mean(axis=0)
        self.frozen_at = now
        self.generation += 1

    def refreeze(self, *, from_current: bool, now: float) -> None:
        """Start a new reference: collect the next ``reference_size`` samples, or adopt the current window.

        Raises ValueError when ``from_current`` is asked with fewer than ``min_current`` samples.
        """
        if from_current:
            if self._cur_n < self.settings.min_current:
                raise ValueError(
                    f"feature {self.feature!r} has {self._cur_n} samples in its current window, "
                    f"{self.settings.min_current} are needed to freeze it as the reference"
                )
            vectors, lengths, reasons = self.current_vectors(), list(self.cur_lengths), list(self.cur_reasons)
            self._clear(reference=True)
            self.ref_lengths, self.ref_reasons = lengths, reasons
            self._freeze(vectors, now)
        else:
            self._clear(reference=True)
            self.generation += 1

    # --- tests ----------------------------------------------------------------------------
    def test_due(self) -> bool:
        """True when the current window is full enough and ``test_every`` samples arrived."""
        s = self.settings
        return self.frozen and self._cur_n >= s.min_current and self._since_test >= s.test_every

    def run_tests(self) -> dict[str, TestResult]:
        """Run every test whose samples suffice and remember the results."""
        s = self.settings
        assert self.reference is not None
        rng = np.random.default_rng([s.seed, self._seed, self.tests_run])
        self.tests_run += 1
        self._since_test = 0
        reference = _cap(self.reference, s.max_test_samples, rng)
        current = _cap(self.current_vectors(), s.max_test_samples, rng)
        results = {
            names.SIGNAL_INPUT: mmd_permutation_test(reference, current, permutations=s.permutations, rng=rng)
        }
        if min(len(self.ref_lengths), len(self.cur_lengths)) >= s.min_output_samples:
            results[names.SIGNAL_RESPONSE_LENGTH] = ks_two_sample(self.ref_lengths, list(self.cur_lengths))
        if min(len(self.ref_reasons), len(self.cur_reasons)) >= s.min_output_samples:
            results[names.SIGNAL_FINISH_REASON] = chi_square_homogeneity(
                self.ref_reasons, list(self.cur_reasons)
            )
        self.results.update(results)
        return results

    # --- persistence ----------------------------------------------------------------------
    def snapshot(self) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """Arrays and JSON-ready metadata of a frozen reference (None while collecting)."""
        if self.reference is None or self.centroid is None:
            return None
        arrays = {
            "reference": self.reference,
            "centroid": np.asarray(self.centroid, dtype=np.float32),
            "ref_lengths": np.asarray(self.ref_lengths, dtype=np.int64),
        }
        meta = {
            "service": self.service,
            "feature": self.feature,
            "frozen_at": self.frozen_at,
            "ref_reasons": list(self.ref_reasons),
            "tests_run": self.tests_run,
            "chart": self.chart.to_dict(),
        }
        return arrays, meta

    def restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Adopt a reference saved by :meth:`snapshot`; the current window starts empty."""
        self._clear(reference=True)
        self._freeze(np.asarray(arrays["reference"], dtype=np.float32), float(meta["frozen_at"] or 0.0))
        self.centroid = np.asarray(arrays["centroid"], dtype=np.float32)
        self.ref_lengths = [int(v) for v in arrays["ref_lengths"]]
        self.ref_reasons = [str(v) for v in meta["ref_reasons"]]
        self.tests_run = int(meta["tests_run"])
        saved = EwmaChart.from_dict(meta["chart"])
        wanted = self._new_chart()
        # a chart saved with other settings (or an older snapshot version) learns a new baseline
        if (saved.lambda_, saved.L, saved.warmup, saved.design_limits) == (
            wanted.lambda_,
            wanted.L,
            wanted.warmup,
            wanted.design_limits,
        ):
            saved.min_effect = wanted.min_effect  # snapshots from before the minimum effect
            self.chart = saved
        else:
            self.chart = wanted

    def status(self) -> dict[str, Any]:
        """A JSON-ready view of this feature."""
        last = self.chart.last
        return {
            "service": self.service,
            "feature": self.feature,
            "state": "monitoring" if self.frozen else "collecting_reference",
            "reference_samples": self.reference_count,
            "reference_frozen_at": self.frozen_at,
            "window_samples": self._cur_n,
            "similarity_mean": float(np.mean(self.similarities)) if self.similarities else None,
            "similarity_chart": None
            if last is None or last.in_warmup
            else {"ewma": last.ewma, "centre": last.centre, "lower": last.lower, "alarm": last.alarm},
            "tests_run": self.tests_run,
            "tests": {
                signal: {
                    "score": r.score,
                    "p_value": r.p_value,
                    "drifted": r.p_value < self.settings.alpha,
                    "n_reference": r.n_reference,
                    "n_current": r.n_current,
                }
                for signal, r in sorted(self.results.items())
            },
        }


def _cosine(vector: np.ndarray, centroid: np.ndarray) -> float:
    norm = float(np.linalg.norm(centroid)) * float(np.linalg.norm(vector))
    return float(vector @ centroid) / norm if norm > 0 else 0.0


def _cap(vectors: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    if len(vectors) <= cap:
        return vectors
    return vectors[np.sort(rng.choice(len(vectors), size=cap, replace=False))]
