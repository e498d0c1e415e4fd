"""Shared builders for the llmpulse dashboards: data source, variables, queries and panels.

Every metric name comes from :mod:`llmpulse.processor.metrics.names` (and the quality, drift and
agents engines' ``quality_metric_names`` / ``drift_metric_names`` / ``agents.metric_names``)
and every recording-rule name from :data:`RULES` (defined in ``alerting/rules/*.yml``), so a
renamed metric breaks the build instead of a panel. Panels take the Prometheus data source from
the ``$datasource`` variable; per-call panels filter on ``$service``, ``$feature``, ``$provider``
and ``$model``; every dashboard on span-derived metrics has the ``$service`` variable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import (
    dashboard,
    gauge,
    heatmap,
    prometheus,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig,
    ReduceDataOptions,
    StackingConfig,
    VizLegendOptions,
)
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models import prometheus as prometheus_models

from llmpulse.processor.metrics import names as M

DATASOURCE = models.DataSourceRef(type_val="prometheus", uid="${datasource}")
PROCESSOR_JOB = "llmpulse-processor"
"""Prometheus job that scrapes the processor (alerting/prometheus.yml, llmpulse up)."""

SERVICE_FILTER = 'service=~"$service"'
"""Label matcher of every panel on span-derived metrics."""
LLM_FILTER = f'{SERVICE_FILTER}, feature=~"$feature", provider=~"$provider", model=~"$model"'
"""Label matchers of every per-call panel."""


@dataclass(frozen=True)
class RecordingRules:
    """Recording-rule names the dashboards read (alerting/rules/llmpulse-recording.yml)."""

    requests_rate: str = "feature_model:llmpulse_requests:rate5m"
    error_ratio: str = "feature_model:llmpulse_error_ratio:rate5m"
    refusal_ratio: str = "feature_model:llmpulse_refusal_ratio:rate5m"
    duration_quantile: str = "feature_model:gen_ai_client_operation_duration_seconds:histogram_quantile5m"
    ttft_quantile: str = (
        "feature_model:gen_ai_client_operation_time_to_first_chunk_seconds:histogram_quantile5m"
    )
    tokens_rate: str = "feature_model_token_type:llmpulse_tokens:rate5m"
    cost_per_hour: str = "feature_model:llmpulse_cost_usd_per_hour:rate5m"
    mismatch_rate: str = "feature_model_response_model:llmpulse_model_mismatch:rate5m"
    mismatch_ratio: str = "feature_model:llmpulse_model_mismatch_ratio:rate5m"
    unpriced_ratio: str = "service_model:llmpulse_unpriced_ratio:rate1h"
    # alerting/rules/llmpulse-quality.yml
    judge_score_mean1h: str = "service_feature_dimension:llmpulse_judge_score:mean1h"
    judge_score_baseline1d: str = "service_feature_dimension:llmpulse_judge_score:baseline1d"


RULES = RecordingRules()
QUANTILES = ("0.5", "0.95", "0.99")


# --- dashboard and variables -------------------------------------------------------------
def new_dashboard(uid: str, title: str, description: str, tags: Sequence[str]) -> dashboard.Dashboard:
    """A dashboard with llmpulse defaults: last 6 hours, 30 s refresh, shared crosshair."""
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["llmpulse", *tags])
        .editable()
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .link(
            dashboard.DashboardLink("llmpulse dashboards")
            .type(models.DashboardLinkType.DASHBOARDS)
            .tags(["llmpulse"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


def datasource_variable() -> dashboard.DatasourceVariable:
    return dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")


def label_variable(name: str, label: str, series_selector: str) -> dashboard.QueryVariable:
    """A multi-value variable over the values of ``name`` in ``series_selector`` ("All" = ``.*``)."""
    return (
        _query_variable(name, label, series_selector)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(models.VariableOption(selected=True, text="All", value="$__all"))
    )


def single_label_variable(
    name: str, label: str, series_selector: str, default: str
) -> dashboard.QueryVariable:
    """One value of ``name`` at a time (for panels whose unit depends on it), ``default`` first."""
    return (
        _query_variable(name, label, series_selector)
        .multi(False)
        .include_all(False)
        .current(models.VariableOption(selected=True, text=default, value=default))
    )


def _query_variable(name: str, label: str, series_selector: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(
            {
                "qryType": 1,
                "query": f"label_values({series_selector}, {name})",
                "refId": "PrometheusVariableQueryEditor-VariableQuery",
            }
        )
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
    )


def service_variable(series_selector: str = M.REQUESTS_TOTAL) -> dashboard.QueryVariable:
    """The ``service`` variable (the apps' ``service.name``), over ``series_selector``."""
    return label_variable(M.SERVICE, "Service", series_selector)


def llm_variables() -> list[dashboard.DatasourceVariable | dashboard.QueryVariable]:
    """datasource, service, feature, provider, model (each narrowed by the ones before it)."""
    requests = M.REQUESTS_TOTAL
    return [
        datasource_variable(),
        service_variable(),
        label_variable("feature", "Feature", f"{requests}{{{SERVICE_FILTER}}}"),
        label_variable("provider", "Provider", f'{requests}{{{SERVICE_FILTER}, feature=~"$feature"}}'),
        label_variable(
            "model", "Model", f'{requests}{{{SERVICE_FILTER}, feature=~"$feature", provider=~"$provider"}}'
        ),
    ]


# --- queries -------------------------------------------------------------------------------
def query(expr: str, legend: str = "", *, ref_id: str = "A", exemplar: bool = False) -> prometheus.Dataquery:
    """A range query; ``exemplar`` asks Prometheus for exemplars (trace ids) of the histogram."""
    q = prometheus.Dataquery().expr(expr).ref_id(ref_id).range().datasource(DATASOURCE)
    if legend:
        q = q.legend_format(legend)
    return q.exemplar(True) if exemplar else q


def instant_table_query(expr: str, *, ref_id: str = "A") -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .expr(expr)
        .ref_id(ref_id)
        .instant()
        .format(prometheus_models.PromQueryFormat.TABLE)
        .datasource(DATASOURCE)
    )


# --- panels --------------------------------------------------------------------------------
def timeseries_panel(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[prometheus.Dataquery],
    *,
    width: int = 12,
    height: int = 8,
    stacked: bool = False,
    threshold: float | None = None,
) -> timeseries.Panel:
    """A time series panel; ``threshold`` draws a dashed red line (an alert threshold)."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(height)
        .fill_opacity(20 if stacked else 5)
        .legend(
            VizLegendOptions()
            .display_mode(common_models.LegendDisplayMode.TABLE)
            .placement(common_models.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
    )
    if stacked:
        panel = panel.stacking(StackingConfig().mode(common_models.StackingMode.NORMAL))
    if threshold is not None:
        panel = panel.thresholds(_red_from(threshold)).thresholds_style(
            GraphThresholdsStyleConfig().mode(common_models.GraphThresholdsStyleMode.DASHED)
        )
    for q in queries:
        panel = panel.with_target(q)
    return panel


def stat_panel(title: str, description: str, unit: str, expr: str, *, width: int = 6) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(4)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .with_target(query(expr))
    )


def table_panel(title: str, description: str, expr: str, *, width: int = 12) -> table.Panel:
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(width)
        .height(8)
        .with_target(instant_table_query(expr))
    )


def _red_from(threshold: float) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(models.ThresholdsMode.ABSOLUTE)
        .steps([models.Threshold(value=None, color="green"), models.Threshold(value=threshold, color="red")])
    )


def gauge_panel(
    title: str, description: str, expr: str, *, red_from: float, legend: str = "", width: int = 6
) -> gauge.Panel:
    """A 0-1 gauge per series, red from ``red_from`` (an alert threshold)."""
    return (
        gauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit("none")
        .min(0)
        .max(1)
        .decimals(2)
        .span(width)
        .height(8)
        .thresholds(_red_from(red_from))
        .show_threshold_markers(True)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .with_target(query(expr, legend))
    )


def flag_timeline_panel(
    title: str, description: str, expr: str, legend: str, *, ok: str, bad: str, bad_value: int = 1
) -> statetimeline.Panel:
    """A state timeline of a 0/1 gauge: ``bad_value`` in red labelled ``bad``, the other in green."""
    good_value = 1 - bad_value
    return (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(12)
        .height(8)
        .show_value(common_models.VisibilityMode.NEVER)
        .mappings(
            [
                models.ValueMap(
                    options={
                        str(bad_value): models.ValueMappingResult(text=bad, color="red", index=0),
                        str(good_value): models.ValueMappingResult(text=ok, color="green", index=1),
                    }
                )
            ]
        )
        .with_target(query(expr, legend))
    )


def heatmap_panel(title: str, description: str, bucket_expr: str, unit: str) -> heatmap.Panel:
    """A heatmap of a histogram's buckets (``bucket_expr`` sums ``_bucket`` series by ``le``)."""
    target = query(bucket_expr, "{{le}}").format(prometheus_models.PromQueryFormat.HEATMAP)
    return (
        heatmap.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(12)
        .height(8)
        .calculate(False)
        .with_target(target)
    )


def finish(builder: dashboard.Dashboard) -> models.Dashboard:
    """Build the dashboard and number its panels 1..n in layout order (stable ids for links)."""
    built = builder.build()
    for number, panel in enumerate(built.panels or [], start=1):
        panel.id_val = number
    return built


def quantile_queries(rule: str, legend_prefix: str = "") -> list[prometheus.Dataquery]:
    """p50, p95 and p99 of a recorded ``histogram_quantile5m`` rule for the selected calls."""
    return [
        query(
            f'{rule}{{{LLM_FILTER}, quantile="{q}"}}',
            f"{legend_prefix}p{round(float(q) * 100)} "
            "{{service}} · {{feature}} · {{provider}}/{{model}}",
            ref_id="ABC"[i],
        )
        for i, q in enumerate(QUANTILES)
    ]


def sum_rate(by: str, metric: str, matchers: str, window: str = "$__rate_interval") -> str:
    """``sum by (by) (rate(metric{matchers}[window]))``."""
    return f"sum by ({by}) (rate({metric}{{{matchers}}}[{window}]))"


PER_KEY = "service, feature"
"""The labels of a series kept per (service, feature): what :func:`per_key` keeps."""
SPC_KEY = "service, feature, statistic"
"""The labels of an SPC chart's series."""
SIGNAL_KEY = "service, feature, signal"
"""The labels of a drift test's series."""
PROBE_KEY = "probe, model"
"""The labels of a canary probe's series."""


def per_key(metric: str, matchers: str, by: str = PER_KEY) -> str:
    """``max by (by) (metric{matchers})``: one series per key across processor replicas.

    A gauge kept per (service, feature) (SPC charts, drift, user signals) or per canary probe is
    exported by the key's owner, which changes on a take-over, or by every replica with the same
    value (the judge's agreement with human labels, read from the shared store; canaries). Read
    raw, a panel shows one line per ``instance``: doubled, or broken in two at a take-over. The
    alert rules take the same ``max by`` (docs/kafka.md); ``by`` lists the key's labels.
    """
    return f"max by ({by}) ({metric}{{{matchers}}})"
