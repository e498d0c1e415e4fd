"""Dashboards and rules use only metric and label names the processor exports.

The processor's own names (metric_names), the quality engine's (quality_metric_names) and the
drift engine's (drift_metric_names) all appear on the same /metrics, so the exported set is
their union.

PromQL is reduced to its identifiers: strings, label-matcher blocks, range/offset durations
and grouping label lists are cut out; what is followed by "(" is a function; keywords and
numbers go; what is left is a series name, which must be an exported series, a recording
rule we define, or `up` (Prometheus' own). Label names (matchers and by/on/... lists) must be
labels of some exported metric, or the few Prometheus adds.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmpulse.processor.agents import metric_names as agents_metric_names
from llmpulse.processor.drift import metric_names as drift_metric_names
from llmpulse.processor.kafka import metric_names as kafka_metric_names
from llmpulse.processor.metrics import names as metric_names
from llmpulse.processor.quality import metric_names as quality_metric_names
from llmpulse.stack import collector_metrics

KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool"}
    | {"inf", "nan", "atan2"}
)
PROMETHEUS_SERIES = frozenset({"up"}) | collector_metrics.COLLECTOR_SERIES  # scraped from others
PROMETHEUS_LABELS = (
    frozenset({"job", "instance", "le", "quantile", "__name__"}) | collector_metrics.COLLECTOR_LABELS
)
ALL_METRICS = (
    *metric_names.METRICS,
    *quality_metric_names.QUALITY_METRICS,
    *drift_metric_names.DRIFT_METRICS,
    *agents_metric_names.AGENTS_METRICS,
)
EXPORTED_SERIES = (
    metric_names.EXPORTED_SERIES
    | quality_metric_names.QUALITY_EXPORTED_SERIES
    | drift_metric_names.DRIFT_EXPORTED_SERIES
    | agents_metric_names.AGENTS_EXPORTED_SERIES
    | kafka_metric_names.KAFKA_EXPORTED_SERIES
)
KNOWN_LABELS = (
    frozenset(label for spec in ALL_METRICS for label in spec.labels)
    | PROMETHEUS_LABELS
    | kafka_metric_names.KAFKA_LABELS
)

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*(?=\s*(\()?)")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_OFFSET = re.compile(r"\boffset\s+-?[0-9a-z$_]+")


def series_names(expr: str) -> set[str]:
    """The series names an expression reads."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, is_call = match.group(0), match.group(1)
        if is_call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


def label_names(expr: str) -> set[str]:
    """The label names an expression matches on or groups by."""
    text = _STRING.sub('""', expr)
    labels = set()
    for block in _MATCHERS.findall(text):
        labels.update(_MATCHER_LABEL.findall(block))
    for _, listed in _GROUPING.findall(text):
        labels.update(part.strip() for part in listed.split(",") if part.strip())
    return labels


def test_the_extractor_sees_series_and_labels() -> None:
    expr = (
        "sum by (feature, le) "
        '(rate(llmpulse_bogus_seconds_bucket{feature=~"$feature", x="a{b}"}[$__rate_interval]))'
        " / on (feature) group_left max_over_time(job:thing:rate5m[1d] offset 1h) > bool 0.5 and inf"
    )
    assert series_names(expr) == {"llmpulse_bogus_seconds_bucket", "job:thing:rate5m"}
    assert label_names(expr) == {"feature", "le", "x"}


def _unknown(names: set[str], recorded: frozenset[str]) -> set[str]:
    return names - EXPORTED_SERIES - recorded - PROMETHEUS_SERIES


def test_every_dashboard_query_reads_exported_series(
    dashboard_queries: list[Any], recorded_names: frozenset[str]
) -> None:
    bad = [
        f"{q} -> {sorted(_unknown(series_names(q.expr), recorded_names))}"
        for q in dashboard_queries
        if _unknown(series_names(q.expr), recorded_names)
    ]
    assert not bad, "dashboard panels read series the processor does not export:\n" + "\n".join(bad)
    assert all(series_names(q.expr) for q in dashboard_queries), "a panel query reads no series at all"


def test_every_rule_reads_exported_series(
    rule_groups: list[dict[str, Any]], recorded_names: frozenset[str]
) -> None:
    bad = []
    for group in rule_groups:
        for rule in group["rules"]:
            unknown = _unknown(series_names(rule["expr"]), recorded_names)
            if unknown:
                bad.append(f"{group['name']}/{rule.get('alert') or rule.get('record')}: {sorted(unknown)}")
    assert not bad, "rules read series the processor does not export:\n" + "\n".join(bad)


def test_labels_used_are_labels_the_processor_exports(
    dashboard_queries: list[Any], rule_groups: list[dict[str, Any]]
) -> None:
    exprs = [q.expr for q in dashboard_queries] + [r["expr"] for g in rule_groups for r in g["rules"]]
    unknown = {label for expr in exprs for label in label_names(expr)} - KNOWN_LABELS
    assert not unknown, f"label names not exported by the processor: {sorted(unknown)}"


@pytest.mark.prometheus3
def test_dashboard_queries_are_valid_promql(
    dashboard_queries: list[Any], promtool: Path, tmp_path: Path
) -> None:
    """promtool parses each panel query (Grafana variables replaced by what Grafana sends)."""
    rules = [
        {"record": f"llmpulse_dashboard_query_{i}", "expr": grafana_to_promql(q.expr)}
        for i, q in enumerate(dashboard_queries)
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}))
    result = subprocess.run([str(promtool), "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def grafana_to_promql(expr: str) -> str:
    """Substitute Grafana's variables the way Grafana does for an "All" selection."""
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$__range", "1h")
        .replace("$__interval", "15s")
        .replace("$service", ".*")
        .replace("$feature", ".*")
        .replace("$provider", ".*")
        .replace("$model", ".*")
        .replace("$step", ".*")
        .replace("$agent", ".*")
        .replace("$tool", ".*")
        .replace("$kind", ".*")
        .replace("$instance", ".*")
        .replace("$dimension", ".*")
        .replace("$statistic", "judge_score")
    )


def test_each_exported_name_has_one_owner() -> None:
    """The name modules do not define the same series twice (one source of truth)."""
    sets = (
        metric_names.EXPORTED_SERIES,
        quality_metric_names.QUALITY_EXPORTED_SERIES,
        drift_metric_names.DRIFT_EXPORTED_SERIES,
        agents_metric_names.AGENTS_EXPORTED_SERIES,
        kafka_metric_names.KAFKA_EXPORTED_SERIES,
    )
    assert sum(len(s) for s in sets) == len(EXPORTED_SERIES)


def test_every_exported_metric_is_on_a_dashboard_or_in_a_rule(
    dashboard_queries: list[Any], rule_groups: list[dict[str, Any]]
) -> None:
    """A metric nobody can see is a metric somebody forgot to chart or alert on."""
    exprs = [q.expr for q in dashboard_queries] + [r["expr"] for g in rule_groups for r in g["rules"]]
    read = {name for expr in exprs for name in series_names(expr)}
    unseen = [spec.name for spec in ALL_METRICS if not set(spec.series) & read]
    assert not unseen, f"exported but on no dashboard and in no rule: {unseen}"
