"""Canaries and model versions: which model really answers, and do fixed probes still pass on it.

Canary series carry ``probe`` and ``model`` only (no feature, no provider): their panels filter
on ``$model``.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, statetimeline, table, timeseries
from grafana_foundation_sdk.models import dashboard as models

from dashboards.common import (
    LLM_FILTER,
    PROBE_KEY,
    RULES,
    finish,
    flag_timeline_panel,
    llm_variables,
    new_dashboard,
    per_key,
    query,
    sum_rate,
    table_panel,
    timeseries_panel,
)
from llmpulse.processor.metrics import names as M
from llmpulse.processor.quality import metric_names as Q

UID = "llmpulse-model-versions"
CANARY_FILTER = 'model=~"$model"'
BY_PROBE = "{{probe}} · {{model}}"


def mismatch_ratio() -> timeseries.Panel:
    return timeseries_panel(
        "Calls answered by another model",
        "Share of calls whose response model is neither the requested model nor a dated version of it.",
        "percentunit",
        [
            query(
                f"{RULES.mismatch_ratio}{{{LLM_FILTER}}}",
                "{{service}} · {{feature}} · {{provider}}/{{model}}",
            )
        ],
    )


def mismatch_by_response_model() -> timeseries.Panel:
    return timeseries_panel(
        "Answering model",
        "Calls/s by requested and answering model, for calls answered by another model. A new line "
        "here is what LLMPulseResponseModelChanged alerts on.",
        "reqps",
        [
            query(
                f"{RULES.mismatch_rate}{{{LLM_FILTER}}}",
                "{{service}} · {{feature}} · {{model}} → {{response_model}}",
            )
        ],
    )


def requested_models() -> timeseries.Panel:
    return timeseries_panel(
        "Calls by requested model",
        "Calls/s per provider and requested model: deploys that switch models show up here.",
        "reqps",
        [
            query(
                f"sum by (provider, model) ({RULES.requests_rate}{{{LLM_FILTER}}})", "{{provider}}/{{model}}"
            )
        ],
        stacked=True,
    )


def mismatch_table() -> table.Panel:
    return table_panel(
        "Answering models in the time range",
        "Mismatched calls in the selected time range per feature, requested and answering model.",
        f"sum by (service, feature, provider, model, response_model) "
        f"(increase({M.MODEL_MISMATCH_TOTAL}{{{LLM_FILTER}}}[$__range])) > 0",
    )


def scope_versions() -> timeseries.Panel:
    return timeseries_panel(
        "Calls by prompt, app and RAG index version",
        "Calls/s by the prompt version, app version, query category and RAG index version the app "
        "names in llmpulse.context(...): a rollout shows as one line giving way to another. The "
        "console's incident page breaks a regression down by the same values.",
        "reqps",
        [
            query(
                sum_rate("dimension, value", M.SCOPE_REQUESTS_TOTAL, LLM_FILTER),
                "{{dimension}} {{value}}",
            )
        ],
    )


def canary_results() -> statetimeline.Panel:
    return flag_timeline_panel(
        "Canary results",
        "Last result of each probe on each model: pass, or fail (wrong answer or no answer). "
        "LLMPulseCanaryFailing fires after 10 minutes without a pass.",
        per_key(Q.CANARY_PASS, CANARY_FILTER, PROBE_KEY),
        BY_PROBE,
        ok="pass",
        bad="fail",
        bad_value=0,
    )


def canary_runs() -> timeseries.Panel:
    return timeseries_panel(
        "Canary runs by result",
        "Probe runs per hour by result: pass, fail (the check did not hold) or error (HTTP or "
        "transport error: the endpoint, not the model).",
        "short",
        [
            query(
                sum_rate("probe, model, result", Q.CANARY_RUNS_TOTAL, CANARY_FILTER) + " * 3600",
                f"{BY_PROBE} · {{{{result}}}}",
            )
        ],
        stacked=True,
    )


def canary_last_run() -> timeseries.Panel:
    return timeseries_panel(
        "Time since the last canary run",
        "Seconds since each probe last ran on each model; it should stay under the schedule's "
        "interval (300 s by default).",
        "s",
        [query("time() - " + per_key(Q.CANARY_LAST_RUN, CANARY_FILTER, PROBE_KEY), BY_PROBE)],
    )


def build() -> models.Dashboard:
    """The canaries-and-model-versions dashboard."""
    board = new_dashboard(
        UID,
        "llmpulse / Canaries and model versions",
        "Which model answers each feature's calls, when that changes, and whether fixed canary "
        "probes still pass on each model.",
        ["models"],
    )
    for variable in llm_variables():
        board = board.with_variable(variable)
    board = (
        board.with_row(dashboard.Row("Model versions"))
        .with_panel(mismatch_ratio())
        .with_panel(mismatch_by_response_model())
        .with_panel(requested_models())
        .with_panel(mismatch_table())
        .with_panel(scope_versions())
        .with_row(dashboard.Row("Canary probes"))
        .with_panel(canary_results())
        .with_panel(canary_runs())
        .with_panel(canary_last_run())
    )
    return finish(board)
