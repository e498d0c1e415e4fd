"""Two-sample tests for drift: MMD (RBF kernel, permutation p-value), Kolmogorov-Smirnov, chi-square.

All functions are pure numpy, take an explicit ``numpy.random.Generator`` where they draw random
numbers, and return a :class:`TestResult`. See docs/drift.md for why MMD with a permutation
p-value is the input-drift test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["TestResult", "chi2_sf", "chi_square_homogeneity", "ks_two_sample", "mmd_permutation_test"]


@dataclass(frozen=True, slots=True)
class TestResult:
    """The outcome of one two-sample test.

    ``score`` is the test's effect size (unbiased MMD², the KS distance D, or Cramér's V for
    the finish-reason mix); ``p_value`` the probability of a score at least this large when
    both samples come from one distribution.
    """

    score: float
    p_value: float
    n_reference: int
    n_current: int


def _pairwise_sq_dists(z: np.ndarray) -> np.ndarray:
    sq = np.einsum("ij,ij->i", z, z)
    d = sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)
    np.maximum(d, 0.0, out=d)
    return d


def mmd_permutation_test(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    permutations: int = 500,
    rng: np.random.Generator,
    bandwidth: float | None = None,
) -> TestResult:
    """Maximum mean discrepancy with an RBF kernel and a permutation p-value.

    The kernel is ``exp(-|x - y|² / (2 sigma²))`` with ``sigma²`` the median pairwise squared
    distance of the pooled sample (the median heuristic; pass ``bandwidth`` to fix sigma). The
    score is the unbiased MMD² estimate; the p-value is ``(1 + #{permuted >= observed}) /
    (1 + permutations)``, computed on the biased statistic, which orders permutations the same
    way as the unbiased one because the kernel diagonal is constant. Cost is one
    ``(n+m)²`` kernel plus ``permutations`` quadratic forms on it.
    """
    x = np.asarray(reference, dtype=np.float64)
    y = np.asarray(current, dtype=np.float64)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"MMD needs at least 2 samples on each side, got {n} and {m}")
    z = np.concatenate([x, y], axis=0)
    d = _pairwise_sq_dists(z)
    if bandwidth is None:
        off = d[np.triu_indices(n + m, k=1)]
        positive = off[off > 0]
        sigma2 = float(np.median(positive)) if positive.size else 1.0
    else:
        sigma2 = bandwidth * bandwidth
    k = np.exp(-d / (2.0 * sigma2))

    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    score = (
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2.0 * kxy.mean()
    )

    weights = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    observed = float(weights @ k @ weights)
    # Each row of `perm` is a random relabelling of the pooled sample.
    perm = np.argsort(rng.random((permutations, n + m)), axis=1)
    a = weights[perm]
    stats = np.einsum("pi,pi->p", a @ k, a)
    exceed = int(np.count_nonzero(stats >= observed - 1e-12))
    p_value = (1 + exceed) / (1 + permutations)
    return TestResult(float(score), float(p_value), n, m)


def ks_two_sample(
    reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray
) -> TestResult:
    """Two-sample Kolmogorov-Smirnov test with the asymptotic p-value (Stephens' correction).

    Ties (integer lengths) make the asymptotic p-value conservative, which suits an alarm.
    """
    x = np.sort(np.asarray(reference, dtype=np.float64))
    y = np.sort(np.asarray(current, dtype=np.float64))
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        raise ValueError(f"KS needs samples on both sides, got {n} and {m}")
    grid = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, grid, side="right") / n
    cdf_y = np.searchsorted(y, grid, side="right") / m
    d = float(np.max(np.abs(cdf_x - cdf_y)))
    en = math.sqrt(n * m / (n + m))
    return TestResult(d, _kolmogorov_sf((en + 0.12 + 0.11 / en) * d), n, m)


def _kolmogorov_sf(t: float) -> float:
    if t < 0.2:
        return 1.0
    total = 0.0
    for j in range(1, 101):
        term = 2.0 * (-1) ** (j - 1) * math.exp(-2.0 * j * j * t * t)
        total += term
        if abs(term) < 1e-12:
            break
    return min(1.0, max(0.0, total))


def chi_square_homogeneity(reference: Sequence[str], current: Sequence[str]) -> TestResult:
    """Chi-square test that two samples of categories (finish reasons) share one distribution.

    The score is Cramér's V (0 = same mix, 1 = disjoint categories). Categories seen in neither
    sample do not count; a single category overall gives p = 1.
    """
    n, m = len(reference), len(current)
    if n == 0 or m == 0:
        raise ValueError(f"chi-square needs samples on both sides, got {n} and {m}")
    categories = sorted(set(reference) | set(current))
    if len(categories) < 2:
        return TestResult(0.0, 1.0, n, m)
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((2, len(categories)))
    for c in reference:
        table[0, index[c]] += 1
    for c in current:
        table[1, index[c]] += 1
    total = n + m
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / total
    statistic = float(((table - expected) ** 2 / expected).sum())
    dof = len(categories) - 1
    cramers_v = math.sqrt(statistic / total)  # min(rows, cols) - 1 == 1
    return TestResult(min(1.0, cramers_v), chi2_sf(statistic, dof), n, m)


def chi2_sf(x: float, dof: int) -> float:
    """Survival function of the chi-square distribution: the regularised upper gamma Q(dof/2, x/2)."""
    if x <= 0:
        return 1.0
    a, t = dof / 2.0, x / 2.0
    log_prefix = a * math.log(t) - t - math.lgamma(a)
    if t < a + 1.0:  # series for the lower function P converges fast here
        term = total = 1.0 / a
        k = a
        for _ in range(1000):
            k += 1.0
            term *= t / k
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    # Lentz's continued fraction for Q.
    tiny = 1e-300
    b = t + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(log_prefix) * h)
