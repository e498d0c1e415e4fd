"""What an incident page shows for one alert: the chart, the scope, what changed and the triage.

* **chart**: the SPC chart of the statistic the alert is about (the alert's ``statistic``
  label, else the one its name points at, else the judge score): value, EWMA, centre line
  (the baseline) and control limits, from an hour before the alert's start until now.
* **scope**: the flagged samples of the (service, feature) since shortly before the start,
  broken down by every dimension a sample records (model, response model, prompt version, app
  version, query category, RAG index version), beside the calls per value from Prometheus
  (``llmpulse_requests_total`` by model, ``llmpulse_scope_requests_total`` by the others). Where
  the calls per value are known, the regression concentrates in the value whose share of the
  flagged samples most exceeds its share of the calls, by more than :data:`MIN_EXCESS` (a
  value that serves 90% of the calls and holds 90% of the flagged samples is no suspect);
  otherwise in the value holding the largest share of the flagged samples.
* **what changed**: models, response models, prompt, app and RAG index versions whose series
  first appear in Prometheus within the window before the start (or after it), with their
  first-seen times.
* **triage**: the flagged samples of the (service, feature) from the window start on, newest
  first.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from llmpulse.console.health import key_of
from llmpulse.console.sources import Alert, PrometheusClient, SourceError
from llmpulse.processor.metrics import names as N
from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.store import StoredSample
from llmpulse.processor.store.protocols import FlaggedSamples

__all__ = [
    "SCOPE_DIMENSIONS",
    "SCOPE_LEAD_S",
    "AnsweredBy",
    "Change",
    "ChartData",
    "Incident",
    "ScopeRow",
    "build_incident",
    "parse_time",
    "scope_lead",
    "statistic_of",
]

# (name shown, attribute of a stored record); stores from before the scope columns have only model
SCOPE_DIMENSIONS = (
    ("model", "model"),
    ("response model", "response_model"),
    ("prompt version", N.SCOPE_PROMPT_VERSION),
    ("app version", N.SCOPE_APP_VERSION),
    ("query category", N.SCOPE_QUERY_CATEGORY),
    ("RAG index version", N.SCOPE_RAG_INDEX_VERSION),
)
_DIMENSION_NAMES = dict((attribute, name) for name, attribute in SCOPE_DIMENSIONS)
# what "what changed" reads from llmpulse_scope_requests_total (a query category is no change)
_CHANGE_DIMENSIONS = (N.SCOPE_PROMPT_VERSION, N.SCOPE_APP_VERSION, N.SCOPE_RAG_INDEX_VERSION)
_STATISTIC_BY_ALERT = {
    "LLMPulseErrorRateHigh": Q.STAT_ERROR_RATE,
    "LLMPulseRefusalRateUp": Q.STAT_REFUSAL_RATE,
    "LLMPulseLatencyP95High": Q.STAT_LATENCY_P95,
    "LLMPulseCostPerHourAnomaly": Q.STAT_COST,
}
TRIAGE_LIMIT = 50
MIN_EXCESS = 0.05
"""A value concentrates the regression when its share of the flagged samples exceeds its share
of the calls by more than this (a value serving every call is everywhere, not a suspect)."""
SCOPE_LEAD_S = 900.0
"""The scope counts flagged samples from this long before the alert's start (at most a quarter
of the incident window): a regression begins before the chart crosses its limit (detection
takes minutes, and ``for:`` adds more)."""


def scope_lead(window_s: float) -> float:
    """How long before the alert's start the scope counts: 15 minutes, or a quarter of a
    shorter incident window (a time-compressed demo)."""
    return min(SCOPE_LEAD_S, window_s / 4)


def parse_time(value: str) -> float | None:
    """Unix seconds of an RFC 3339 time as Alertmanager writes it (nanoseconds allowed)."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if "." in text:  # Python reads at most microseconds
        head, rest = text.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def statistic_of(alert: Alert) -> str:
    """The SPC statistic an alert is about."""
    return alert.labels.get(Q.STATISTIC) or _STATISTIC_BY_ALERT.get(alert.name, Q.STAT_JUDGE_SCORE)


@dataclass
class ChartData:
    statistic: str
    lines: dict[str, list[tuple[float, float]]]
    start: float
    end: float
    alert_start: float | None


@dataclass
class ScopeRow:
    dimension: str
    value: str
    flagged: int
    share: float
    """Of the flagged samples in the scope."""
    calls: float | None
    """Calls with this value since the scope start (Prometheus); None when unknown."""
    concentrates: bool = False
    calls_share: float | None = None
    """Of the dimension's calls since the scope start."""


@dataclass
class Change:
    dimension: str
    value: str
    first_seen: float


@dataclass
class AnsweredBy:
    """Calls of the scope answered by another model than the one requested (Prometheus)."""

    model: str
    response_model: str
    calls: float
    share: float
    """Of all the scope's calls since the scope start."""


@dataclass
class Incident:
    alert: Alert
    service: str
    feature: str
    start: float | None
    window_start: float
    chart: ChartData | None
    scope: list[ScopeRow]
    unrecorded_dimensions: list[str]
    changes: list[Change]
    samples: list[StoredSample]
    problems: list[str] = field(default_factory=list)
    answered_by: list[AnsweredBy] = field(default_factory=list)
    flagged_total: int = 0
    """Flagged samples in the window (``samples`` holds the newest ``TRIAGE_LIMIT``)."""


def _selector(service: str, feature: str) -> str:
    return f'{N.SERVICE}="{_quote(service)}",{N.FEATURE}="{_quote(feature)}"'


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _chart(
    prometheus: PrometheusClient,
    sel: str,
    *,
    statistic: str,
    start: float,
    end: float,
    alert_start: float | None,
) -> ChartData:
    step = max((end - start) / 240, 1.0)
    lines: dict[str, list[tuple[float, float]]] = {}
    for name, metric in (
        ("value", Q.SPC_VALUE),
        ("ewma", Q.SPC_EWMA),
        ("centre", Q.SPC_CENTRE),
        ("lower", Q.SPC_LOWER),
        ("upper", Q.SPC_UPPER),
    ):
        found = prometheus.range(f'max({metric}{{{sel},{Q.STATISTIC}="{statistic}"}})', start, end, step)
        lines[name] = found[0].points if found else []
    return ChartData(statistic, lines, start, end, alert_start)


def _changes(prometheus: PrometheusClient, sel: str, window_start: float, end: float) -> list[Change]:
    """Label values that appear after the scope's data began: their first point comes later
    than two steps after both the window's start and the earliest point of any of the scope's
    series (a Prometheus younger than the window would make everything look new otherwise)."""
    step = max((end - window_start) / 240, 1.0)
    firsts: list[tuple[str, str, float]] = []
    for dimension, label, metric in (
        ("model", N.MODEL, N.REQUESTS_TOTAL),
        ("response model", N.RESPONSE_MODEL, N.MODEL_MISMATCH_TOTAL),
    ):
        series = prometheus.range(f"sum by ({label}) ({metric}{{{sel}}})", window_start, end, step)
        firsts += [
            (dimension, s.labels[label], s.points[0][0]) for s in series if s.points and label in s.labels
        ]
    wanted = "|".join(_CHANGE_DIMENSIONS)
    series = prometheus.range(
        f'sum by ({N.DIMENSION}, {N.VALUE}) ({N.SCOPE_REQUESTS_TOTAL}{{{sel},{N.DIMENSION}=~"{wanted}"}})',
        window_start,
        end,
        step,
    )
    firsts += [
        (_DIMENSION_NAMES[s.labels[N.DIMENSION]], s.labels[N.VALUE], s.points[0][0])
        for s in series
        if s.points and s.labels.get(N.DIMENSION) in _CHANGE_DIMENSIONS and N.VALUE in s.labels
    ]
    if not firsts:
        return []
    began = max(window_start, min(t for _, _, t in firsts))
    changes = [Change(d, value, t) for d, value, t in firsts if t > began + 2 * step]
    return sorted(changes, key=lambda c: c.first_seen)


def _calls_by(
    prometheus: PrometheusClient, sel: str, label: str, metric: str, *, since: float, end: float
) -> dict[str, float]:
    span = max(int(end - since), 60)
    found = prometheus.vector(f"sum by ({label}) (increase({metric}{{{sel}}}[{span}s]))", at=end)
    return {labels.get(label, ""): value for labels, value in found}


def _answered_by(prometheus: PrometheusClient, sel: str, *, since: float, end: float) -> list[AnsweredBy]:
    span = max(int(end - since), 60)
    total = sum(
        v for _, v in prometheus.vector(f"sum(increase({N.REQUESTS_TOTAL}{{{sel}}}[{span}s]))", at=end)
    )
    found = prometheus.vector(
        f"sum by ({N.MODEL}, {N.RESPONSE_MODEL}) (increase({N.MODEL_MISMATCH_TOTAL}{{{sel}}}[{span}s]))",
        at=end,
    )
    rows = [
        AnsweredBy(
            labels.get(N.MODEL, ""), labels.get(N.RESPONSE_MODEL, ""), value, value / total if total else 0.0
        )
        for labels, value in found
        if value > 0
    ]
    return sorted(rows, key=lambda r: -r.calls)


def _calls_by_scope(
    prometheus: PrometheusClient, sel: str, dimension: str, *, since: float, end: float
) -> dict[str, float]:
    span = max(int(end - since), 60)
    found = prometheus.vector(
        f"sum by ({N.VALUE}) (increase({N.SCOPE_REQUESTS_TOTAL}"
        f'{{{sel},{N.DIMENSION}="{dimension}"}}[{span}s]))',
        at=end,
    )
    return {labels.get(N.VALUE, ""): value for labels, value in found}


def _scope(
    prometheus: PrometheusClient | None, sel: str, samples: list[StoredSample], start: float, end: float
) -> tuple[list[ScopeRow], list[str], list[str]]:
    rows: list[ScopeRow] = []
    unrecorded: list[str] = []
    problems: list[str] = []
    during = [s for s in samples if s.record.created >= start]
    for name, attribute in SCOPE_DIMENSIONS:
        values = [getattr(s.record, attribute, None) for s in during]
        if not during:
            break
        if all(v is None for v in values):
            unrecorded.append(name)
            continue
        counts = Counter(str(v) for v in values if v is not None)
        calls: dict[str, float] = {}
        if prometheus is not None and attribute != "response_model":
            try:
                if attribute == "model":
                    calls = _calls_by(prometheus, sel, N.MODEL, N.REQUESTS_TOTAL, since=start, end=end)
                else:
                    calls = _calls_by_scope(prometheus, sel, attribute, since=start, end=end)
            except SourceError as exc:
                problems.append(str(exc))
        rows += _dimension_rows(name, counts, calls)
    return rows, unrecorded, problems


def _dimension_rows(name: str, counts: Counter[str], calls: dict[str, float]) -> list[ScopeRow]:
    """One dimension's rows: values with flagged samples, then values with calls only."""
    total = sum(counts.values())
    total_calls = sum(calls.values())
    known = total_calls > 0 and all(calls.get(value, 0) > 0 for value in counts)
    rows = []
    for value, n in counts.most_common():
        called = calls.get(value)
        calls_share = called / total_calls if known and called is not None else None
        rows.append(ScopeRow(name, value, n, n / total, called, calls_share=calls_share))
    for value, called in sorted(calls.items(), key=lambda item: -item[1]):
        if value not in counts and called > 0:
            rows.append(ScopeRow(name, value, 0, 0.0, called, calls_share=called / total_calls))

    flagged_rows = rows[: len(counts)]
    if known:  # the value over-represented among the flagged samples, if any clearly is
        top = max(flagged_rows, key=lambda r: r.share - (r.calls_share or 0.0))
        top.concentrates = top.share - (top.calls_share or 0.0) > MIN_EXCESS
    else:
        flagged_rows[0].concentrates = True  # the largest share (most_common order)
    return rows


def build_incident(
    alert: Alert,
    store: FlaggedSamples | None,
    prometheus: PrometheusClient | None,
    *,
    window_s: float = 3600.0,
    now: float | None = None,
) -> Incident:
    """Everything the incident page of ``alert`` shows; a failing source adds to ``problems``."""
    now = time.time() if now is None else now
    service, feature = key_of(alert.labels)
    start = parse_time(alert.starts_at)
    anchor = start if start is not None else now
    window_start = anchor - window_s
    problems: list[str] = []
    samples: list[StoredSample] = []
    if store is not None:
        samples = [
            s
            for s in store.query(service=service, feature=feature, since=window_start, limit=None)
            if s.record.created <= now
        ]
    sel = _selector(service, feature)
    chart: ChartData | None = None
    changes: list[Change] = []
    if prometheus is not None:
        try:
            chart = _chart(
                prometheus, sel, statistic=statistic_of(alert), start=window_start, end=now, alert_start=start
            )
            changes = _changes(prometheus, sel, window_start, now)
        except SourceError as exc:
            problems.append(str(exc))
    scope_start = anchor - scope_lead(window_s)
    scope, unrecorded, scope_problems = _scope(prometheus, sel, samples, scope_start, now)
    answered_by: list[AnsweredBy] = []
    if prometheus is not None:
        try:
            answered_by = _answered_by(prometheus, sel, since=scope_start, end=now)
        except SourceError as exc:
            scope_problems.append(str(exc))
    return Incident(
        alert,
        service,
        feature,
        start,
        window_start,
        chart,
        scope,
        unrecorded,
        changes,
        samples[:TRIAGE_LIMIT],
        problems + scope_problems,
        answered_by,
        len(samples),
    )
