"""Control limits designed for a baseline estimated from a warm-up (after Jones, Champ & Rigdon 2001).

A chart whose mean and sigma come from ``m`` warm-up windows is a known-baseline chart that
watches standardised data with a random offset and scale: with ``x ~ N(0, 1)``, ``mu^ ~ N(0, 1/m)``
and ``s^ ~ sqrt(chi2(m - 1) / (m - 1))`` it alarms when ``z_i - mu^ > L s^ c_i``. Averaged over
warm-ups it false-alarms far sooner than the nominal chart (the warm-ups that under-estimate sigma
dominate), and the spread from one warm-up to the next is wide.

:func:`designed_L` returns the widened ``L'`` for which the *unconditional* probability of a false
alarm within :data:`HORIZON` windows after the warm-up equals that of the known-baseline chart with
``L``. It is solved by simulation with common random numbers: for each simulated warm-up the largest
standardised EWMA excursion over the horizon is recorded, once against the known baseline and once
against the estimated one; the target probability is the share of known-baseline maxima above
``L`` and ``L'`` is the matching upper quantile of the estimated-baseline maxima. No root finding,
one pass: well under a second for the 60,000 warm-ups used at run time. The shipped settings are in a table
(:data:`DESIGNED`, from :func:`solve_L` with 400,000 warm-ups); anything else is solved on first
use and cached for the process.

Two kinds of estimate: ``sigma_estimated=True`` (mean and sigma from the warm-up sample) and
``False`` (only the mean is estimated; sigma follows from it, as a binomial rate's
``sqrt(p (1 - p) / n)`` does). Targets below ``1e-3`` (very wide limits, such as a demo's ``L = 5``)
are beyond what a quick simulation resolves; there a per-window tail match is used instead,
``E[P(Z > L' s^ + mu^ / c)] = P(Z > L)`` with ``c`` the steady-state limit factor, which errs wide
(at ``L = 2.814`` it gives 3.14 where the simulation gives 3.01).
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["DESIGNED", "HORIZON", "alarm_probability", "designed_L", "solve_L"]

HORIZON = 100
"""Windows after the warm-up over which the false-alarm probability is matched."""

_MIN_TARGET = 1e-3

# (lambda, L, warm-up windows, two_sided, sigma_estimated) -> L'; from
# ``solve_L(..., runs=400_000, seed=20261203)``.
DESIGNED: dict[tuple[float, float, int, bool, bool], float] = {
    (0.1, 2.814, 100, False, True): 3.0104,
    (0.1, 2.814, 100, False, False): 2.9611,
    (0.1, 2.814, 100, True, True): 3.0165,
    (0.1, 2.814, 100, True, False): 2.9722,
}


def _factor(lambda_: float, i: int | None) -> float:
    """sigma of z_i in units of sigma (``None``: steady state); the same as ``ewma.limit_factor``."""
    steady = lambda_ / (2.0 - lambda_)
    return math.sqrt(steady if i is None else steady * (1.0 - (1.0 - lambda_) ** (2 * i)))


def _key(lambda_: float, L: float, warmup: int, two_sided: bool, sigma_estimated: bool) -> tuple:
    return (round(lambda_, 6), round(L, 6), int(warmup), bool(two_sided), bool(sigma_estimated))


def _maxima(
    lambda_: float,
    warmup: int,
    *,
    two_sided: bool,
    sigma_estimated: bool,
    horizon: int,
    runs: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Largest standardised excursion in ``horizon`` windows: (known baseline, estimated baseline)."""
    factors = np.array([_factor(lambda_, i) for i in range(1, horizon + 1)])
    carried = 1.0 - (1.0 - lambda_) ** np.arange(1, horizon + 1)  # weight of z_0 gone by window i
    mean = rng.standard_normal(runs) / math.sqrt(warmup)
    sigma = np.sqrt(rng.chisquare(warmup - 1, runs) / (warmup - 1)) if sigma_estimated else np.ones(runs)
    z = np.zeros(runs)
    known = np.full(runs, -np.inf)
    estimated = np.full(runs, -np.inf)
    for i in range(horizon):
        z *= 1.0 - lambda_
        z += lambda_ * rng.standard_normal(runs)
        k = z / factors[i]
        e = (z - mean * carried[i]) / (sigma * factors[i])
        if two_sided:
            k, e = np.abs(k), np.abs(e)
        np.maximum(known, k, out=known)
        np.maximum(estimated, e, out=estimated)
    return known, estimated


def solve_L(
    lambda_: float,
    L: float,
    warmup: int,
    *,
    two_sided: bool = False,
    sigma_estimated: bool = True,
    horizon: int = HORIZON,
    runs: int = 60_000,
    seed: int = 20261203,
) -> float:
    """Solve ``L'`` by simulation (see the module docstring); deterministic for a given ``seed``."""
    if warmup < 2:
        raise ValueError(f"warmup must be at least 2 windows, got {warmup}")
    rng = np.random.default_rng(seed)
    known_parts, estimated_parts = [], []
    for start in range(0, runs, 50_000):
        k, e = _maxima(
            lambda_,
            warmup,
            two_sided=two_sided,
            sigma_estimated=sigma_estimated,
            horizon=horizon,
            runs=min(50_000, runs - start),
            rng=rng,
        )
        known_parts.append(k)
        estimated_parts.append(e)
    known, estimated = np.concatenate(known_parts), np.concatenate(estimated_parts)
    target = float(np.mean(known > L))
    if target < _MIN_TARGET:
        return _tail_match(lambda_, L, warmup, two_sided=two_sided, sigma_estimated=sigma_estimated)
    return float(np.quantile(estimated, 1.0 - target))


def _tail(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.vectorize(math.erfc, otypes=[float])(x / math.sqrt(2.0))


def _tail_match(lambda_: float, L: float, warmup: int, *, two_sided: bool, sigma_estimated: bool) -> float:
    rng = np.random.default_rng(7)
    draws = 4_000
    offset = rng.standard_normal(draws) / math.sqrt(warmup) / _factor(lambda_, None)
    scale = np.sqrt(rng.chisquare(warmup - 1, draws) / (warmup - 1)) if sigma_estimated else np.ones(draws)

    def excess(candidate: float) -> float:
        p = _tail(candidate * scale + offset)
        if two_sided:
            p = p + _tail(candidate * scale - offset)
        return float(p.mean()) - (2.0 if two_sided else 1.0) * float(_tail(np.array([L]))[0])

    low, high = L, 4.0 * L
    for _ in range(40):
        middle = 0.5 * (low + high)
        if excess(middle) > 0:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


@functools.lru_cache(maxsize=64)
def _solved(key: tuple) -> float:
    lambda_, L, warmup, two_sided, sigma_estimated = key
    return solve_L(lambda_, L, warmup, two_sided=two_sided, sigma_estimated=sigma_estimated)


def designed_L(
    lambda_: float, L: float, warmup: int, *, two_sided: bool = False, sigma_estimated: bool = True
) -> float:
    """``L'`` for a chart whose baseline is estimated from ``warmup`` windows (table or solved once)."""
    key = _key(lambda_, L, warmup, two_sided, sigma_estimated)
    found = DESIGNED.get(key)
    return found if found is not None else _solved(key)


def alarm_probability(
    lambda_: float,
    L: float,
    warmup: int | None,
    *,
    two_sided: bool = False,
    sigma_estimated: bool = True,
    horizon: int = HORIZON,
    runs: int = 100_000,
    seed: int = 1,
) -> float:
    """P(false alarm within ``horizon`` windows) of a chart with limit ``L``, over simulated warm-ups
    of ``warmup`` windows (``None``: the known baseline)."""
    rng = np.random.default_rng(seed)
    k, e = _maxima(
        lambda_,
        warmup or 2,
        two_sided=two_sided,
        sigma_estimated=sigma_estimated,
        horizon=horizon,
        runs=runs,
        rng=rng,
    )
    return float(np.mean((k if warmup is None else e) > L))
