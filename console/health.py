"""The home page's figures: per (service, feature) health from Prometheus and the store.

Every row is keyed by (service, feature). Rows come from whichever source knows the pair:
Prometheus (calls, errors, p95 latency, cost per hour, the judge-score EWMA and its limits,
the input drift score) and the flagged-sample store (the unlabelled triage queue). A source
that fails leaves its cells empty and adds one line to :attr:`Health.problems`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from llmpulse.console.sources import PrometheusClient, SourceError
from llmpulse.contract.attributes import UNKNOWN_SERVICE
from llmpulse.processor.drift import metric_names as D
from llmpulse.processor.metrics import names as N
from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.store.protocols import FlaggedSamples

__all__ = ["QUEUE_WINDOW_S", "Health", "HealthRow", "Key", "collect_health", "key_of"]

Key = tuple[str, str]
QUEUE_WINDOW_S = 86400.0
"""The triage queue counts unlabelled flagged samples of the last day."""


def key_of(labels: dict[str, str]) -> Key:
    """(service, feature) of a label set; ``service`` is optional (older series and rows)."""
    return (labels.get(N.SERVICE) or UNKNOWN_SERVICE, labels.get(N.FEATURE) or N.UNKNOWN_VALUE)


@dataclass
class HealthRow:
    """One (service, feature) on the home page; None where the figure is not known."""

    service: str
    feature: str
    calls_per_s: float | None = None
    error_ratio: float | None = None
    p95_s: float | None = None
    cost_per_h: float | None = None
    judge_ewma: float | None = None
    judge_lower: float | None = None
    judge_upper: float | None = None
    drift_score: float | None = None
    queue: int = 0

    @property
    def judge_out_of_control(self) -> bool:
        return (
            self.judge_ewma is not None
            and self.judge_lower is not None
            and self.judge_ewma < self.judge_lower
        )


@dataclass
class Health:
    rows: list[HealthRow]
    problems: list[str] = field(default_factory=list)

    @property
    def queue_total(self) -> int:
        return sum(row.queue for row in self.rows)


def _by(key: str, labels: Iterable[str], aggregation: str = "sum") -> str:
    return f"{aggregation} by ({', '.join(labels)}) ({key})"


QUERIES: dict[str, str] = {
    "calls_per_s": _by(f"rate({N.REQUESTS_TOTAL}[5m])", (N.SERVICE, N.FEATURE)),
    "errors_per_s": _by(f"rate({N.ERRORS_TOTAL}[5m])", (N.SERVICE, N.FEATURE)),
    "p95_s": (
        "histogram_quantile(0.95, "
        + _by(f"rate({N.OPERATION_DURATION}_bucket[5m])", (N.SERVICE, N.FEATURE, "le"))
        + ")"
    ),
    "cost_per_h": _by(f"rate({N.COST_USD_TOTAL}[5m])", (N.SERVICE, N.FEATURE)) + " * 3600",
    # per-key gauges: one series per (service, feature) whichever replica exports it
    "judge_ewma": _by(f'{Q.SPC_EWMA}{{{Q.STATISTIC}="{Q.STAT_JUDGE_SCORE}"}}', (N.SERVICE, N.FEATURE), "max"),
    "judge_lower": _by(
        f'{Q.SPC_LOWER}{{{Q.STATISTIC}="{Q.STAT_JUDGE_SCORE}"}}', (N.SERVICE, N.FEATURE), "max"
    ),
    "judge_upper": _by(
        f'{Q.SPC_UPPER}{{{Q.STATISTIC}="{Q.STAT_JUDGE_SCORE}"}}', (N.SERVICE, N.FEATURE), "max"
    ),
    "drift_score": f'max by ({N.SERVICE}, {N.FEATURE}) ({D.DRIFT_SCORE}{{{D.SIGNAL}="{D.SIGNAL_INPUT}"}})',
}


def collect_health(
    prometheus: PrometheusClient, store: FlaggedSamples | None, *, now: float | None = None
) -> Health:
    """The home page's rows, sorted by service then feature."""
    rows: dict[Key, HealthRow] = {}
    problems: list[str] = []

    def row(key: Key) -> HealthRow:
        if key not in rows:
            rows[key] = HealthRow(*key)
        return rows[key]

    values: dict[str, dict[Key, float]] = {}
    for name, query in QUERIES.items():
        try:
            values[name] = {key_of(labels): value for labels, value in prometheus.vector(query)}
        except SourceError as exc:
            problems.append(str(exc))
            break  # one unreachable Prometheus is one line, not eight
    for name, found in values.items():
        for key, value in found.items():
            if name == "errors_per_s":
                continue
            setattr(row(key), name, value)
    for key, errors in values.get("errors_per_s", {}).items():
        calls = row(key).calls_per_s
        row(key).error_ratio = errors / calls if calls else None
    if store is not None:
        since = (time.time() if now is None else now) - QUEUE_WINDOW_S
        for sample in store.query(since=since, limit=None, label="none"):
            row((sample.record.service or UNKNOWN_SERVICE, sample.record.feature)).queue += 1
    return Health([rows[k] for k in sorted(rows)], problems)
