"""EWMA control charts (statistical process control) with a warm-up baseline.

The chart follows Montgomery / Lucas & Saccucci (1990)::

    z_i = lambda * x_i + (1 - lambda) * z_{i-1},    z_0 = mu_0
    limits_i = mu_0 +/- L * sigma * sqrt(lambda / (2 - lambda) * (1 - (1 - lambda) ** (2 i)))

``mu_0`` and ``sigma`` come from an in-control baseline: either given explicitly
(:meth:`EwmaChart.set_baseline`) or estimated from the first ``warmup`` observations after a
(re)start or :meth:`EwmaChart.reset`. The defaults ``lambda 0.1, L 2.814`` give an in-control
average run length (ARL) of about 500 windows with steady-state limits.

The textbook chart assumes independent observations with known sigma. Per-request values are
neither, so feed the chart one statistic per window (a mean score per N samples, an error rate per
minute, ...), never raw requests.

A chart is plain state: :meth:`EwmaChart.to_dict` / :meth:`EwmaChart.from_dict` persist the
baseline and the running EWMA across restarts. Theory helpers for checking a chart's run
lengths live in :mod:`llmpulse.processor.spc.arl`.

Example::

    chart = EwmaChart(lambda_=0.1, L=2.814, warmup=20)
    for window_mean in stream:
        state = chart.update(window_mean)
        if state.alarm:
            ...
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_L", "DEFAULT_LAMBDA", "Baseline", "ChartState", "EwmaChart", "limit_factor"]

DEFAULT_LAMBDA = 0.1
DEFAULT_L = 2.814  # Lucas & Saccucci: in-control ARL 500 with lambda 0.1
_FORMAT_VERSION = 1


def limit_factor(lambda_: float, i: int, *, time_varying: bool = True) -> float:
    """The standard deviation of ``z_i`` in units of sigma: ``sqrt(l/(2-l) * (1-(1-l)^(2i)))``.

    ``i`` counts observations since the baseline was fixed (1 for the first). With
    ``time_varying=False`` the steady-state factor (``i -> infinity``) is returned.
    """
    steady = lambda_ / (2.0 - lambda_)
    if not time_varying:
        return math.sqrt(steady)
    return math.sqrt(steady * (1.0 - (1.0 - lambda_) ** (2 * i)))


@dataclass(frozen=True, slots=True)
class Baseline:
    """The in-control mean and standard deviation of the charted statistic."""

    mean: float
    sigma: float
    n: int = 0
    """How many observations estimated it (0 when set by hand)."""


@dataclass(frozen=True, slots=True)
class ChartState:
    """What the chart says after one observation.

    During warm-up ``ewma``, ``centre``, ``upper`` and ``lower`` are NaN and ``alarm`` is False.
    ``alarm`` is True when the EWMA lies outside the limits *at this observation*.
    """

    value: float
    ewma: float
    centre: float
    upper: float
    lower: float
    alarm: bool
    in_warmup: bool
    index: int
    """Observations charted since the baseline was fixed (0 during warm-up)."""


@dataclass(slots=True)
class EwmaChart:
    """An EWMA chart that estimates its baseline from a warm-up period.

    Args:
        lambda_: smoothing weight of the newest observation, in (0, 1].
        L: width of the limits in standard deviations of the EWMA.
        warmup: observations used to estimate the baseline (at least 2) when none is given.
        time_varying: use the exact limits for early observations (default) rather than the
            steady-state ones.
        sigma_floor: lower bound for the baseline sigma, so a perfectly flat warm-up (an error
            rate of zero throughout) does not make every later wobble an alarm.
        one_sided: ``"upper"`` or ``"lower"`` to alarm on one side only (e.g. a falling score),
            ``None`` for both.
    """

    lambda_: float = DEFAULT_LAMBDA
    L: float = DEFAULT_L
    warmup: int = 20
    time_varying: bool = True
    sigma_floor: float = 0.0
    one_sided: str | None = None
    _baseline: Baseline | None = field(default=None, init=False)
    _warmup_values: list[float] = field(default_factory=list, init=False)
    _ewma: float = field(default=math.nan, init=False)
    _index: int = field(default=0, init=False)
    _alarms: int = field(default=0, init=False)
    _last: ChartState | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.lambda_ <= 1.0:
            raise ValueError(f"lambda_ must be in (0, 1], got {self.lambda_}")
        if self.L <= 0:
            raise ValueError(f"L must be positive, got {self.L}")
        if self.warmup < 2:
            raise ValueError(f"warmup must be at least 2 observations, got {self.warmup}")
        if self.one_sided not in (None, "upper", "lower"):
            raise ValueError(f"one_sided must be None, 'upper' or 'lower', got {self.one_sided!r}")

    # --- baseline -------------------------------------------------------------------------
    @property
    def baseline(self) -> Baseline | None:
        """The baseline in use, or None while warming up."""
        return self._baseline

    @property
    def in_warmup(self) -> bool:
        """True until a baseline exists."""
        return self._baseline is None

    @property
    def alarms(self) -> int:
        """Observations that alarmed since the baseline was fixed."""
        return self._alarms

    @property
    def last(self) -> ChartState | None:
        """The state after the most recent observation, if any."""
        return self._last

    def set_baseline(self, mean: float, sigma: float, n: int = 0) -> None:
        """Fix the baseline by hand and restart the EWMA at ``mean``."""
        if not math.isfinite(mean) or not math.isfinite(sigma) or sigma < 0:
            raise ValueError(f"baseline needs a finite mean and sigma >= 0, got {mean}, {sigma}")
        self._baseline = Baseline(mean, max(sigma, self.sigma_floor), n)
        self._warmup_values = []
        self._ewma = mean
        self._index = 0
        self._alarms = 0

    def reset(self) -> None:
        """Forget the baseline and warm up again (after an intended model or prompt change)."""
        self._baseline = None
        self._warmup_values = []
        self._ewma = math.nan
        self._index = 0
        self._alarms = 0
        self._last = None

    # --- charting -------------------------------------------------------------------------
    def limits(self, i: int) -> tuple[float, float]:
        """The (lower, upper) control limits for the ``i``-th observation after the baseline."""
        if self._baseline is None:
            return math.nan, math.nan
        half = self.L * self._baseline.sigma * limit_factor(self.lambda_, i, time_varying=self.time_varying)
        return self._baseline.mean - half, self._baseline.mean + half

    def update(self, x: float) -> ChartState:
        """Chart one observation (a per-window statistic) and return the chart's state.

        Non-finite observations are rejected with ValueError: a window without data should
        simply not be charted.
        """
        if not math.isfinite(x):
            raise ValueError(f"cannot chart a non-finite value: {x}")
        if self._baseline is None:
            self._warmup_values.append(x)
            if len(self._warmup_values) >= self.warmup:
                values = self._warmup_values
                self.set_baseline(statistics.fmean(values), statistics.stdev(values), len(values))
            state = ChartState(x, math.nan, math.nan, math.nan, math.nan, False, True, 0)
            self._last = state
            return state
        self._index += 1
        self._ewma = self.lambda_ * x + (1.0 - self.lambda_) * self._ewma
        lower, upper = self.limits(self._index)
        above = self._ewma > upper
        below = self._ewma < lower
        if self.one_sided == "upper":
            alarm = above
        elif self.one_sided == "lower":
            alarm = below
        else:
            alarm = above or below
        self._alarms += alarm
        state = ChartState(x, self._ewma, self._baseline.mean, upper, lower, alarm, False, self._index)
        self._last = state
        return state

    # --- persistence ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot: parameters, baseline, warm-up values and the running EWMA."""
        base = self._baseline
        return {
            "version": _FORMAT_VERSION,
            "lambda": self.lambda_,
            "L": self.L,
            "warmup": self.warmup,
            "time_varying": self.time_varying,
            "sigma_floor": self.sigma_floor,
            "one_sided": self.one_sided,
            "baseline": None if base is None else {"mean": base.mean, "sigma": base.sigma, "n": base.n},
            "warmup_values": list(self._warmup_values),
            "ewma": None if math.isnan(self._ewma) else self._ewma,
            "index": self._index,
            "alarms": self._alarms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EwmaChart:
        """Rebuild a chart saved by :meth:`to_dict`; raises ValueError on a malformed snapshot."""
        if data.get("version") != _FORMAT_VERSION:
            raise ValueError(f"unsupported chart snapshot version {data.get('version')!r}")
        try:
            chart = cls(
                lambda_=float(data["lambda"]),
                L=float(data["L"]),
                warmup=int(data["warmup"]),
                time_varying=bool(data["time_varying"]),
                sigma_floor=float(data["sigma_floor"]),
                one_sided=data["one_sided"],
            )
            base = data["baseline"]
            if base is not None:
                chart.set_baseline(float(base["mean"]), float(base["sigma"]), int(base["n"]))
                ewma = data["ewma"]
                chart._ewma = float(ewma) if ewma is not None else chart._baseline.mean  # type: ignore[union-attr]
                chart._index = int(data["index"])
                chart._alarms = int(data["alarms"])
            else:
                chart._warmup_values = [float(v) for v in data["warmup_values"]]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed chart snapshot: {exc!r}") from exc
        return chart
