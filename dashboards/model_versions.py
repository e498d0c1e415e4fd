"""Canaries and model versions: which model really answers. (Canary probes come with the quality engine.)"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, table, timeseries
from grafana_foundation_sdk.models import dashboard as models

from dashboards.common import (
    LLM_FILTER,
    RULES,
    finish,
    llm_variables,
    new_dashboard,
    query,
    table_panel,
    timeseries_panel,
)
from llmpulse.processor import metric_names as M

UID = "llmpulse-model-versions"


def mismatch_ratio() -> timeseries.Panel:
    return timeseries_panel(
        "Calls answered by another model",
        "Share of calls whose response model is neither the requested model nor a dated version of it.",
        "percentunit",
        [query(f"{RULES.mismatch_ratio}{{{LLM_FILTER}}}", "{{feature}} · {{provider}}/{{model}}")],
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
                "{{feature}} · {{model}} → {{response_model}}",
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
        f"sum by (feature, provider, model, response_model) "
        f"(increase({M.MODEL_MISMATCH_TOTAL}{{{LLM_FILTER}}}[$__range])) > 0",
    )


def build() -> models.Dashboard:
    """The canaries-and-model-versions dashboard (model mismatch part)."""
    board = new_dashboard(
        UID,
        "llmpulse / Canaries and model versions",
        "Which model answers each feature's calls, and when that changes.",
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
    )
    return finish(board)
