"""Average run lengths of the EWMA chart: Markov-chain theory and a vectorised simulation.

:func:`markov_arl` is the Brook & Evans / Lucas & Saccucci (1990) Markov-chain approximation:
the in-control region of the EWMA is cut into ``states`` cells, each a state of a chain whose
transitions follow from ``z_i = (1 - lambda) z_{i-1} + lambda x_i`` with ``x ~ N(shift, 1)``.
With steady-state limits the ARL is ``p0' (I - P)^-1 1``; with time-varying limits the chain is
stepped with the shrinking in-control region until the limits have settled, then closed with the
same formula.

:func:`simulate_run_lengths` runs many charts at once with numpy, using the same limit factor
as :class:`~llmpulse.processor.spc.ewma.EwmaChart`, so tests can compare the chart with the theory.
Both work in standardised units (baseline mean 0, sigma 1).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from llmpulse.processor.spc.ewma import DEFAULT_L, DEFAULT_LAMBDA, limit_factor

__all__ = ["markov_arl", "simulate_run_lengths"]


def _normal_cdf(x: NDArray[np.float64]) -> NDArray[np.float64]:
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * (1.0 + erf(x / math.sqrt(2.0)))


def markov_arl(
    lambda_: float = DEFAULT_LAMBDA,
    L: float = DEFAULT_L,
    shift: float = 0.0,
    *,
    time_varying: bool = False,
    states: int = 301,
    settle_tol: float = 1e-9,
) -> float:
    """Zero-state ARL of a two-sided EWMA chart started at the baseline mean.

    ``shift`` is the change of the process mean in units of sigma, present from the first
    observation. ``states`` should be odd so the starting point is the centre of a cell.
    """
    h = L * limit_factor(lambda_, 0, time_varying=False)
    width = 2.0 * h / states
    centres = -h + width * (np.arange(states) + 0.5)
    upper_edges = centres + width / 2.0
    lower_edges = centres - width / 2.0
    # P[j, k]: from cell j into cell k in one step.
    mean_next = (1.0 - lambda_) * centres[:, None]
    transitions = _normal_cdf((upper_edges[None, :] - mean_next) / lambda_ - shift) - _normal_cdf(
        (lower_edges[None, :] - mean_next) / lambda_ - shift
    )
    start = np.zeros(states)
    start[states // 2] = 1.0
    identity = np.eye(states)
    if not time_varying:
        return float(start @ np.linalg.solve(identity - transitions, np.ones(states)))
    # Step the distribution over cells while the limits widen; mass outside has alarmed.
    arl = 1.0  # P(RL > 0)
    dist = start
    i = 0
    while True:
        i += 1
        dist = dist @ transitions
        half = L * limit_factor(lambda_, i, time_varying=True)
        dist = np.where(np.abs(centres) <= half, dist, 0.0)
        if h - half < settle_tol * h:
            break
        arl += float(dist.sum())  # P(RL > i)
    # From here the limits are the steady ones: E[remaining run] = dist' (I - P)^-1 1.
    return arl + float(dist @ np.linalg.solve(identity - transitions, np.ones(states)))


def simulate_run_lengths(
    runs: int,
    rng: np.random.Generator,
    lambda_: float = DEFAULT_LAMBDA,
    L: float = DEFAULT_L,
    shift: float = 0.0,
    *,
    time_varying: bool = True,
    max_steps: int = 100_000,
) -> NDArray[np.int64]:
    """Run lengths (index of the first alarm) of ``runs`` independent charts.

    Each chart starts at the baseline mean 0 with sigma 1 and observes ``N(shift, 1)``; charts
    still in control after ``max_steps`` report ``max_steps``. All active charts advance together
    so the cost is one small numpy operation per step.
    """
    z = np.zeros(runs)
    lengths = np.full(runs, max_steps, dtype=np.int64)
    active = np.arange(runs)
    for i in range(1, max_steps + 1):
        z = (1.0 - lambda_) * z + lambda_ * (shift + rng.standard_normal(active.size))
        half = L * limit_factor(lambda_, i, time_varying=time_varying)
        alarmed = np.abs(z) > half
        if alarmed.any():
            lengths[active[alarmed]] = i
            keep = ~alarmed
            active = active[keep]
            z = z[keep]
            if active.size == 0:
                break
    return lengths
