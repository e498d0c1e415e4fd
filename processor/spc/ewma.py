"""EWMA control charts (statistical process control) with a warm-up baseline.

The chart follows Montgomery / Lucas & Saccucci (1990)::

    z_i = lambda * x_i + (1 - lambda) * z_{i-1},    z_0 = mu_0
    limits_i = mu_0 +/- L * sigma * sqrt(lambda / (2 - lambda) * (1 - (1 - lambda) ** (2 i)))

``mu_0`` and ``sigma`` come from an in-control baseline: either given explicitly
(:meth:`EwmaChart.set_baseline`) or estimated from the first ``warmup`` observations after a
(re)start or :meth:`EwmaChart.reset`. The defaults ``lambda 0.1, L 2.814`` give an in-control
average run length (ARL) of about 500 windows with steady-state limits and a *known* baseline.

An estimated baseline makes false alarms come much sooner (Jones, Champ & Rigdon 2001), so by
default (``design_limits``) a chart that estimated its baseline widens ``L`` to the value
:func:`llmpulse.processor.spc.design.designed_L` solves for its warm-up length: the chance of a
false alarm within 100 windows after the warm-up then matches the known-baseline chart's (L 2.814
becomes 3.01 after the default 100-window warm-up).

A rate (errors per window of ``binomial_n`` calls) is charted with the binomial sigma
``sqrt(p (1 - p) / n)`` of its warm-up mean, unless the warm-up windows scatter more than that
(a chi-square dispersion test at 1%: errors come in bursts), when the sample sigma is used.
``min_effect`` (absolute, relative to the baseline mean) keeps an alarm back while the EWMA is
closer to the baseline than an effect anyone would act on; :class:`ChartState` carries both the
control limits and the alert thresholds that result.

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

from llmpulse.processor.spc.design import designed_L

__all__ = [
    "DEFAULT_L",
    "DEFAULT_LAMBDA",
    "DEFAULT_WARMUP",
    "Baseline",
    "ChartState",
    "EwmaChart",
    "limit_factor",
]

DEFAULT_LAMBDA = 0.1
DEFAULT_L = 2.814  # Lucas & Saccucci: in-control ARL 500 with lambda 0.1
DEFAULT_WARMUP = 100
_FORMAT_VERSION = 2
_SOURCES = ("given", "sample", "binomial")


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
    source: str = "given"
    """Where sigma came from: ``given`` (by hand), ``sample`` (warm-up stdev), ``binomial``."""
    L: float = DEFAULT_L
    """The limit width in use: the chart's ``L``, widened for an estimated baseline."""


@dataclass(frozen=True, slots=True)
class ChartState:
    """What the chart says after one observation.

    During warm-up every number but ``value`` is NaN and ``alarm`` is False. ``upper`` and
    ``lower`` are the control limits; ``alert_upper`` and ``alert_lower`` the thresholds the EWMA
    must cross to alarm (the limits, moved out to the minimum effect where that is farther).
    ``alarm`` is True when the EWMA lies beyond a threshold on an alarming side *at this
    observation*.
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
    alert_upper: float = math.nan
    alert_lower: float = math.nan


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
        design_limits: widen ``L`` for a baseline estimated from the warm-up (see the module
            docstring); a baseline set by hand uses ``L`` as given.
        binomial_n: the charted value is a rate over this many calls: use the binomial sigma.
        min_effect: (absolute, relative to the baseline mean) distance from the baseline the
            EWMA must also exceed to alarm.
    """

    lambda_: float = DEFAULT_LAMBDA
    L: float = DEFAULT_L
    warmup: int = DEFAULT_WARMUP
    time_varying: bool = True
    sigma_floor: float = 0.0
    one_sided: str | None = None
    design_limits: bool = True
    binomial_n: int | None = None
    min_effect: tuple[float, float] = (0.0, 0.0)
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
        if self.binomial_n is not None and self.binomial_n < 1:
            raise ValueError(f"binomial_n must be at least 1 call, got {self.binomial_n}")
        if len(self.min_effect) != 2 or min(self.min_effect) < 0:
            raise ValueError(f"min_effect must be (absolute >= 0, relative >= 0), got {self.min_effect}")
        self.min_effect = (float(self.min_effect[0]), float(self.min_effect[1]))

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
        """Fix the baseline by hand (a known baseline: ``L`` as given) and restart the EWMA at ``mean``."""
        self._fix(mean, sigma, n, "given", self.L)

    def _fix(self, mean: float, sigma: float, n: int, source: str, L: float) -> None:
        if not math.isfinite(mean) or not math.isfinite(sigma) or sigma < 0:
            raise ValueError(f"baseline needs a finite mean and sigma >= 0, got {mean}, {sigma}")
        self._baseline = Baseline(mean, max(sigma, self.sigma_floor), n, source, L)
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

    def _estimate(self, values: list[float]) -> None:
        """Fix the baseline from the warm-up ``values``: binomial or sample sigma, designed L."""
        m = len(values)
        mean, sd = statistics.fmean(values), statistics.stdev(values)
        sigma, source = sd, "sample"
        if self.binomial_n is not None:
            p = min(max(mean, 0.0), 1.0)
            binomial = math.sqrt(p * (1.0 - p) / self.binomial_n)
            if binomial == 0.0 or (m - 1) * sd * sd <= _chi2_upper(m - 1) * binomial * binomial:
                sigma, source = binomial, "binomial"
        L = self.L
        if self.design_limits:
            L = designed_L(
                self.lambda_, self.L, m, two_sided=self.one_sided is None, sigma_estimated=source == "sample"
            )
        self._fix(mean, sigma, m, source, L)

    # --- charting -------------------------------------------------------------------------
    def limits(self, i: int) -> tuple[float, float]:
        """The (lower, upper) control limits for the ``i``-th observation after the baseline."""
        if self._baseline is None:
            return math.nan, math.nan
        base = self._baseline
        half = base.L * base.sigma * limit_factor(self.lambda_, i, time_varying=self.time_varying)
        return base.mean - half, base.mean + half

    def thresholds(self, i: int) -> tuple[float, float]:
        """The (lower, upper) alert thresholds: the limits, or the minimum effect where farther."""
        lower, upper = self.limits(i)
        if self._baseline is None:
            return lower, upper
        mean = self._baseline.mean
        margin = max(self.min_effect[0], self.min_effect[1] * abs(mean))
        return min(lower, mean - margin), max(upper, mean + margin)

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
                self._estimate(self._warmup_values)
            state = ChartState(x, math.nan, math.nan, math.nan, math.nan, False, True, 0)
            self._last = state
            return state
        self._index += 1
        self._ewma = self.lambda_ * x + (1.0 - self.lambda_) * self._ewma
        lower, upper = self.limits(self._index)
        alert_lower, alert_upper = self.thresholds(self._index)
        above = self._ewma > alert_upper
        below = self._ewma < alert_lower
        if self.one_sided == "upper":
            alarm = above
        elif self.one_sided == "lower":
            alarm = below
        else:
            alarm = above or below
        self._alarms += alarm
        state = ChartState(
            x,
            self._ewma,
            self._baseline.mean,
            upper,
            lower,
            alarm,
            False,
            self._index,
            alert_upper,
            alert_lower,
        )
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
            "design_limits": self.design_limits,
            "binomial_n": self.binomial_n,
            "min_effect": list(self.min_effect),
            "baseline": None
            if base is None
            else {"mean": base.mean, "sigma": base.sigma, "n": base.n, "source": base.source, "L": base.L},
            "warmup_values": list(self._warmup_values),
            "ewma": None if math.isnan(self._ewma) else self._ewma,
            "index": self._index,
            "alarms": self._alarms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EwmaChart:
        """Rebuild a chart saved by :meth:`to_dict`; raises ValueError on a malformed snapshot.

        A version 1 snapshot (before designed limits and binomial sigma) loads with its
        parameters but without its baseline, which was estimated the old way: the chart warms up
        again.
        """
        version = data.get("version")
        if version not in (1, _FORMAT_VERSION):
            raise ValueError(f"unsupported chart snapshot version {version!r}")
        try:
            binomial_n = data.get("binomial_n")
            chart = cls(
                lambda_=float(data["lambda"]),
                L=float(data["L"]),
                warmup=int(data["warmup"]),
                time_varying=bool(data["time_varying"]),
                sigma_floor=float(data["sigma_floor"]),
                one_sided=data["one_sided"],
                design_limits=bool(data.get("design_limits", False)),
                binomial_n=None if binomial_n is None else int(binomial_n),
                min_effect=tuple(float(v) for v in data.get("min_effect", (0.0, 0.0))),  # type: ignore[arg-type]
            )
            if version == 1:
                return chart
            base = data["baseline"]
            if base is not None:
                source = str(base["source"])
                if source not in _SOURCES:
                    raise ValueError(f"malformed chart snapshot: unknown sigma source {source!r}")
                chart._fix(
                    float(base["mean"]), float(base["sigma"]), int(base["n"]), source, float(base["L"])
                )
                ewma = data["ewma"]
                chart._ewma = float(ewma) if ewma is not None else chart._baseline.mean  # type: ignore[union-attr]
                chart._index = int(data["index"])
                chart._alarms = int(data["alarms"])
            else:
                chart._warmup_values = [float(v) for v in data["warmup_values"]]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed chart snapshot: {exc!r}") from exc
        return chart


def _chi2_upper(df: int, z: float = 2.3263) -> float:
    """The upper 1% point of chi-square with ``df`` degrees of freedom (Wilson & Hilferty 1931)."""
    k = 2.0 / (9.0 * df)
    return df * (1.0 - k + z * math.sqrt(k)) ** 3
