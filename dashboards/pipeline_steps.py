"""Pipeline steps: latency of retrieval, rerank, tool and named steps, with exemplars to traces."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, timeseries
from grafana_foundation_sdk.models import dashboard as models

from dashboards.common import (
    SERVICE_FILTER,
    datasource_variable,
    finish,
    label_variable,
    new_dashboard,
    query,
    service_variable,
    sum_rate,
    timeseries_panel,
)
from llmpulse.processor.metrics import names as M

UID = "llmpulse-pipeline-steps"
STEP_FILTER = f'{SERVICE_FILTER}, feature=~"$feature", step=~"$step"'
BY_STEP = "{{service}} · {{feature}} · {{step}}"


def _step_quantile(q: float) -> str:
    return (
        f"histogram_quantile({q}, sum by (service, feature, step, le) "
        f"(rate({M.STEP_DURATION}_bucket{{{STEP_FILTER}}}[$__rate_interval])))"
    )


def step_p95() -> timeseries.Panel:
    return timeseries_panel(
        "Step latency p95 (exemplars: click a dot for its trace)",
        "95th percentile duration per step. Exemplars carry the trace id of a recent call in each "
        "bucket; Grafana links them to the trace backend.",
        "s",
        [query(_step_quantile(0.95), BY_STEP, exemplar=True)],
        width=24,
        height=10,
    )


def step_p50_p99() -> timeseries.Panel:
    return timeseries_panel(
        "Step latency p50 / p99",
        "Median and 99th percentile duration per step.",
        "s",
        [
            query(_step_quantile(0.5), "p50 " + BY_STEP, ref_id="A"),
            query(_step_quantile(0.99), "p99 " + BY_STEP, ref_id="B", exemplar=True),
        ],
    )


def step_rate() -> timeseries.Panel:
    return timeseries_panel(
        "Steps/s",
        "Step executions per second.",
        "ops",
        [
            query(
                sum_rate("service, feature, step", f"{M.STEP_DURATION}_count", STEP_FILTER),
                BY_STEP,
            )
        ],
    )


def step_error_ratio() -> timeseries.Panel:
    return timeseries_panel(
        "Step error ratio",
        "Share of step executions that ended in an error.",
        "percentunit",
        [
            query(
                sum_rate("service, feature, step", M.STEP_ERRORS_TOTAL, STEP_FILTER)
                + " / "
                + sum_rate("service, feature, step", f"{M.STEP_DURATION}_count", STEP_FILTER),
                BY_STEP,
            )
        ],
    )


def time_share() -> timeseries.Panel:
    return timeseries_panel(
        "Time spent per step",
        "Seconds spent in each step per second of wall time: where the pipeline's time goes.",
        "s",
        [
            query(
                sum_rate("service, feature, step", f"{M.STEP_DURATION}_sum", STEP_FILTER),
                BY_STEP,
            )
        ],
        stacked=True,
    )


def build() -> models.Dashboard:
    """The pipeline steps dashboard."""
    board = (
        new_dashboard(
            UID,
            "llmpulse / Pipeline steps",
            "Latency, rate and errors of the steps around the LLM calls (retrieval, rerank, tools), "
            "with exemplars linking slow buckets to traces.",
            ["steps"],
        )
        .with_variable(datasource_variable())
        .with_variable(service_variable(f"{M.STEP_DURATION}_count"))
        .with_variable(label_variable("feature", "Feature", f"{M.STEP_DURATION}_count{{{SERVICE_FILTER}}}"))
        .with_variable(
            label_variable(
                "step", "Step", f'{M.STEP_DURATION}_count{{{SERVICE_FILTER}, feature=~"$feature"}}'
            )
        )
        .with_row(dashboard.Row("Latency"))
        .with_panel(step_p95())
        .with_panel(step_p50_p99())
        .with_panel(time_share())
        .with_row(dashboard.Row("Volume and errors"))
        .with_panel(step_rate())
        .with_panel(step_error_ratio())
    )
    return finish(board)
