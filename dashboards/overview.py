"""Overview: volume, errors, latency, time to first token, tokens and cost by feature and model."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, stat, timeseries
from grafana_foundation_sdk.models import dashboard as models

from dashboards.common import (
    LLM_FILTER,
    RULES,
    SERVICE_FILTER,
    finish,
    llm_variables,
    new_dashboard,
    quantile_queries,
    query,
    stat_panel,
    sum_rate,
    timeseries_panel,
)
from llmpulse.processor.metrics import names as M

UID = "llmpulse-overview"
BY_CALL = "{{service}} · {{feature}} · {{provider}}/{{model}}"
BY_MODEL = "{{service}} · {{provider}}/{{model}}"


def total_request_rate() -> stat.Panel:
    return stat_panel(
        "Calls/s",
        "LLM calls per second over the selected features and models (last 5 minutes).",
        "reqps",
        f"sum({RULES.requests_rate}{{{LLM_FILTER}}})",
    )


def total_error_ratio() -> stat.Panel:
    return stat_panel(
        "Failed calls",
        "Share of the selected calls that failed (last 5 minutes).",
        "percentunit",
        # `or vector(0)`: no failed call at all is 0%, not "No data".
        f'(sum(rate({M.REQUESTS_TOTAL}{{{LLM_FILTER}, outcome="error"}}[5m])) or vector(0))'
        f" / sum(rate({M.REQUESTS_TOTAL}{{{LLM_FILTER}}}[5m]))",
    )


def total_p95_latency() -> stat.Panel:
    return stat_panel(
        "p95 latency",
        "95th percentile duration of the selected calls (last 5 minutes).",
        "s",
        f"histogram_quantile(0.95, sum by (le) (rate({M.OPERATION_DURATION}_bucket{{{LLM_FILTER}}}[5m])))",
    )


def total_cost_per_hour() -> stat.Panel:
    return stat_panel(
        "Spend rate",
        "USD per hour at the rate of the last 5 minutes.",
        "currencyUSD",
        f"sum({RULES.cost_per_hour}{{{LLM_FILTER}}})",
    )


def request_rate() -> timeseries.Panel:
    return timeseries_panel(
        "Calls by feature and model",
        "LLM calls per second (recording rule feature_model:llmpulse_requests:rate5m).",
        "reqps",
        [query(f"{RULES.requests_rate}{{{LLM_FILTER}}}", BY_CALL)],
        stacked=True,
    )


def outcomes() -> timeseries.Panel:
    return timeseries_panel(
        "Outcomes and finish reasons",
        "Calls per second by outcome (ok, error, refusal) and normalised finish reason.",
        "reqps",
        [
            query(
                sum_rate("outcome, finish_reason", M.REQUESTS_TOTAL, LLM_FILTER),
                "{{outcome}} · {{finish_reason}}",
            )
        ],
        stacked=True,
    )


def error_ratio() -> timeseries.Panel:
    return timeseries_panel(
        "Error ratio",
        "Share of failed calls per feature and model; dashed: the LLMPulseErrorRateHigh threshold.",
        "percentunit",
        [query(f"{RULES.error_ratio}{{{LLM_FILTER}}}", BY_CALL)],
        threshold=0.05,
    )


def errors_by_type() -> timeseries.Panel:
    return timeseries_panel(
        "Errors by type",
        "Failed calls per second by error.type (exception class or HTTP status).",
        "reqps",
        [
            query(
                sum_rate("service, feature, error_type", M.ERRORS_TOTAL, LLM_FILTER),
                "{{service}} · {{feature}} · {{error_type}}",
            )
        ],
        stacked=True,
    )


def latency_quantiles() -> timeseries.Panel:
    return timeseries_panel(
        "Latency p50 / p95 / p99",
        "Call duration quantiles per feature and model over 5-minute windows "
        "(gen_ai.client.operation.duration).",
        "s",
        quantile_queries(RULES.duration_quantile),
    )


def latency_exemplars() -> timeseries.Panel:
    return timeseries_panel(
        "Latency p95 with exemplars",
        "p95 of all selected calls; the dots are exemplars: click one to open its trace.",
        "s",
        [
            query(
                f"histogram_quantile(0.95, sum by (le) "
                f"(rate({M.OPERATION_DURATION}_bucket{{{LLM_FILTER}}}[$__rate_interval])))",
                "p95",
                exemplar=True,
            )
        ],
    )


def ttft_quantiles() -> timeseries.Panel:
    return timeseries_panel(
        "Time to first token p50 / p95 / p99",
        "Streamed calls: time from the request to the first chunk, per feature and model.",
        "s",
        quantile_queries(RULES.ttft_quantile),
    )


def refusal_ratio() -> timeseries.Panel:
    return timeseries_panel(
        "Refusal ratio",
        "Share of calls the model refused (API refusal signal or refusal finish reason).",
        "percentunit",
        [query(f"{RULES.refusal_ratio}{{{LLM_FILTER}}}", BY_CALL)],
        threshold=0.05,
    )


def token_rate() -> timeseries.Panel:
    return timeseries_panel(
        "Tokens/s by type",
        "Input and output tokens per second. cache_read/cache_creation are part of input and "
        "reasoning part of output: do not add them up.",
        "short",
        [
            query(
                f"sum by (service, feature, token_type) ({RULES.tokens_rate}{{{LLM_FILTER}}})",
                "{{service}} · {{feature}} · {{token_type}}",
            )
        ],
    )


def tokens_per_call() -> timeseries.Panel:
    return timeseries_panel(
        "Tokens per call (p95)",
        "95th percentile of input and output tokens per call (gen_ai.client.token.usage).",
        "short",
        [
            query(
                f"histogram_quantile(0.95, sum by (service, feature, token_type, le) "
                f"(rate({M.TOKEN_USAGE}_bucket{{{LLM_FILTER}}}[$__rate_interval])))",
                "{{service}} · {{feature}} · {{token_type}}",
            )
        ],
    )


def cost_per_hour() -> timeseries.Panel:
    return timeseries_panel(
        "Spend rate by feature and model",
        "USD per hour (5-minute rate) from the pricing table; unpriced calls are not included.",
        "currencyUSD",
        [query(f"{RULES.cost_per_hour}{{{LLM_FILTER}}}", BY_CALL)],
        stacked=True,
    )


def unpriced_calls() -> timeseries.Panel:
    return timeseries_panel(
        "Unpriced share of successful calls",
        "Share of successful calls (1-hour rate) that carry no cost and whose model the pricing "
        "table does not know: their spend is missing from every cost panel. Add the model to the "
        "pricing override file (LLMPULSE_PRICING_FILE); alert LLMPulseUnpricedCalls.",
        "percentunit",
        [
            query(
                f'{RULES.unpriced_ratio}{{{SERVICE_FILTER}, provider=~"$provider", model=~"$model"}}',
                BY_MODEL,
            )
        ],
    )


def build() -> models.Dashboard:
    """The overview dashboard."""
    board = new_dashboard(
        UID,
        "llmpulse / Overview",
        "Volume, errors, latency, time to first token, tokens and cost of LLM calls by feature and model.",
        ["overview"],
    )
    for variable in llm_variables():
        board = board.with_variable(variable)
    board = (
        board.with_panel(total_request_rate())
        .with_panel(total_error_ratio())
        .with_panel(total_p95_latency())
        .with_panel(total_cost_per_hour())
        .with_row(dashboard.Row("Volume and errors"))
        .with_panel(request_rate())
        .with_panel(outcomes())
        .with_panel(error_ratio())
        .with_panel(errors_by_type())
        .with_row(dashboard.Row("Latency"))
        .with_panel(latency_quantiles())
        .with_panel(latency_exemplars())
        .with_panel(ttft_quantiles())
        .with_panel(refusal_ratio())
        .with_row(dashboard.Row("Tokens and cost"))
        .with_panel(token_rate())
        .with_panel(tokens_per_call())
        .with_panel(cost_per_hour())
        .with_panel(unpriced_calls())
    )
    return finish(board)
