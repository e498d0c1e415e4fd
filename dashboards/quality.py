"""Quality: judge scores, SPC control charts, flagged calls, cheap checks and the judge itself.

Reads what the quality engine exports (``processor/quality/metric_names.py``). Judge scores exist
only when a judge endpoint is configured and the app captures content for sampled calls; cheap
checks on the answer's text need captured content too (docs/quality.md).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, heatmap, statetimeline, table, timeseries
from grafana_foundation_sdk.models import dashboard as models

from dashboards.common import (
    RULES,
    SERVICE_FILTER,
    SPC_KEY,
    datasource_variable,
    finish,
    flag_timeline_panel,
    heatmap_panel,
    label_variable,
    new_dashboard,
    per_key,
    query,
    service_variable,
    single_label_variable,
    sum_rate,
    table_panel,
    timeseries_panel,
)
from llmpulse.processor.quality import metric_names as Q

UID = "llmpulse-quality"
FEATURE = 'service=~"$service", feature=~"$feature"'
SCORES = f'{FEATURE}, dimension=~"$dimension"'
CHART = f'{FEATURE}, statistic="$statistic"'
BY_CHART = "{{service}} · {{feature}} · {{statistic}}"
FLAG_THRESHOLD = 3.0
"""The judge flags a sample whose mean score is under this (``flag_overall_below``)."""
JUDGE_FAILING_RATIO = 0.2
"""LLMPulseJudgeFailing's threshold (alerting/rules/llmpulse-quality.yml)."""


def _per_checked_call(by: str, metric: str, matchers: str) -> str:
    """Events of ``metric`` per call that went through the cheap checks, by ``by``."""
    return (
        sum_rate(by, metric, matchers)
        + " / on (service, feature) group_left "
        + sum_rate("service, feature", Q.CHECKED_TOTAL, FEATURE)
    )


# --- judge scores -----------------------------------------------------------------------------
def judge_score_mean() -> timeseries.Panel:
    return timeseries_panel(
        "Judge score (1 h mean) and day baseline",
        "Mean judge score (1-5) per feature and dimension over the last hour, and the day's mean "
        "(last hour excluded). LLMPulseQualityScoreDrop fires half a point under the baseline or "
        "under 3 (dashed).",
        "none",
        [
            query(f"{RULES.judge_score_mean1h}{{{SCORES}}}", "{{service}} · {{feature}} · {{dimension}}"),
            query(
                f"{RULES.judge_score_baseline1d}{{{SCORES}}}",
                "baseline {{service}} · {{feature}} · {{dimension}}",
                ref_id="B",
            ),
        ],
        threshold=FLAG_THRESHOLD,
    )


def judge_score_distribution() -> heatmap.Panel:
    return heatmap_panel(
        "Judge score distribution",
        "Verdicts by score bucket over time (all selected features and dimensions): mass moving "
        "to the low buckets shows before the means move.",
        f"sum by (le) (increase({Q.JUDGE_SCORE}_bucket{{{SCORES}}}[$__rate_interval]))",
        "none",
    )


# --- control charts ---------------------------------------------------------------------------
def control_chart() -> timeseries.Panel:
    series = (
        (Q.SPC_VALUE, "value"),
        (Q.SPC_EWMA, "EWMA"),
        (Q.SPC_CENTRE, "centre"),
        (Q.SPC_UPPER, "upper limit"),
        (Q.SPC_LOWER, "lower limit"),
        (Q.SPC_ALERT_THRESHOLD, "alert threshold"),
    )
    return timeseries_panel(
        "Control chart: $statistic",
        "EWMA control chart of the selected statistic, one point per window (20 verdicts, or 100 "
        "calls): the window's value, its EWMA, the centre line learnt in warm-up and the "
        "time-varying control limits (widened for the estimated baseline), and the alert threshold: "
        "the limit on the alarming side, or the minimum effect where that is farther. An EWMA past "
        "the threshold in the bad direction alarms.",
        "none",
        [
            query(per_key(metric, CHART, SPC_KEY), f"{name} {BY_CHART}", ref_id="ABCDEF"[i])
            for i, (metric, name) in enumerate(series)
        ],
        width=24,
        height=10,
    )


def spc_alarms() -> statetimeline.Panel:
    return flag_timeline_panel(
        "SPC alarms",
        "Per feature and statistic: in alarm (EWMA outside its limits in the bad direction) or in "
        "control. LLMPulseQualitySPCAlarm fires after 10 minutes in alarm.",
        per_key(Q.SPC_ALARM, FEATURE, SPC_KEY),
        BY_CHART,
        ok="in control",
        bad="alarm",
    )


def spc_warmup() -> statetimeline.Panel:
    return flag_timeline_panel(
        "Charts in warm-up",
        "Charts learning their baseline (20 windows after a start or `llmpulse spc reset`); they "
        "never alarm while warming up.",
        per_key(Q.SPC_WARMUP, FEATURE, SPC_KEY),
        BY_CHART,
        ok="monitoring",
        bad="warm-up",
    )


# --- flags and cheap checks -------------------------------------------------------------------
def flagged_share() -> timeseries.Panel:
    return timeseries_panel(
        "Flagged share by source",
        "Flagged calls per checked call, by who flagged them (judge, cheap check, negative "
        "feedback). `llmpulse triage --feature F` lists them.",
        "percentunit",
        [
            query(
                _per_checked_call("service, feature, source", Q.FLAGGED_TOTAL, FEATURE),
                "{{service}} · {{feature}} · {{source}}",
            )
        ],
    )


def check_failures() -> timeseries.Panel:
    return timeseries_panel(
        "Cheap-check failures by check",
        "Failed cheap checks per checked call (empty_output, too_short, too_long, refusal_phrase, "
        "api_refusal, invalid_json, truncated, rule:<name>, empty_input, near_context_limit).",
        "percentunit",
        [
            query(
                _per_checked_call("service, feature, check", Q.CHECK_FAILURES_TOTAL, FEATURE),
                "{{service}} · {{feature}} · {{check}}",
            )
        ],
    )


def calls_checked() -> timeseries.Panel:
    return timeseries_panel(
        "Calls checked",
        "Calls per second that went through the cheap checks, per feature; flagged samples the "
        "store could not keep (writer queue full) in red, and those committed to it.",
        "reqps",
        [
            query(sum_rate("service, feature", Q.CHECKED_TOTAL, FEATURE), "{{service}} · {{feature}}"),
            query(
                f"sum(rate({Q.FLAGGED_STORE_DROPPED_TOTAL}[$__rate_interval]))",
                "flagged samples not stored",
                ref_id="B",
            ),
            query(
                f"sum(rate({Q.FLAGGED_STORED_TOTAL}[$__rate_interval]))", "flagged samples stored", ref_id="C"
            ),
        ],
    )


# --- the judge --------------------------------------------------------------------------------
def judge_calls() -> timeseries.Panel:
    return timeseries_panel(
        "Judge calls",
        "Calls chosen for judging (per feature), verdicts, judge errors and chosen calls dropped "
        "(by reason: queue_full, budget, circuit_open, shutdown), per second.",
        "reqps",
        [
            query(
                sum_rate("service, feature", Q.JUDGE_SAMPLED_TOTAL, FEATURE),
                "chosen for judging: {{service}} · {{feature}}",
            ),
            query(
                f"sum(rate({Q.JUDGE_VERDICTS_TOTAL}{{{FEATURE}}}[$__rate_interval]))", "verdicts", ref_id="B"
            ),
            query(f"sum(rate({Q.JUDGE_ERRORS_TOTAL}{{{FEATURE}}}[$__rate_interval]))", "errors", ref_id="C"),
            query(sum_rate("reason", Q.JUDGE_DROPPED_TOTAL, FEATURE), "dropped: {{reason}}", ref_id="D"),
        ],
    )


def judge_errors() -> timeseries.Panel:
    return timeseries_panel(
        "Judge errors by reason",
        "Share of the judge's answers that were errors, by reason (http, timeout, transport, "
        "unparseable); dashed: the LLMPulseJudgeFailing threshold.",
        "percentunit",
        [
            query(
                sum_rate("reason", Q.JUDGE_ERRORS_TOTAL, FEATURE)
                + " / ignoring (reason) group_left () ("
                + f"sum(rate({Q.JUDGE_ERRORS_TOTAL}{{{FEATURE}}}[$__rate_interval]))"
                + f" + sum(rate({Q.JUDGE_VERDICTS_TOTAL}{{{FEATURE}}}[$__rate_interval])))",
                "{{reason}}",
            )
        ],
        threshold=JUDGE_FAILING_RATIO,
    )


def judge_spend() -> timeseries.Panel:
    return timeseries_panel(
        "Judge spend",
        "The judge's spend rate in USD per hour (all features; the daily budget is per processor).",
        "currencyUSD",
        [
            query(
                f"sum by (instance) (rate({Q.JUDGE_COST_USD_TOTAL}[$__rate_interval])) * 3600", "{{instance}}"
            )
        ],
    )


def judge_tokens() -> timeseries.Panel:
    return timeseries_panel(
        "Judge tokens",
        "Tokens per second the judge spends, input and output.",
        "short",
        [
            query(
                f"sum by ({Q.TOKEN_TYPE}) (rate({Q.JUDGE_TOKENS_TOTAL}[$__rate_interval]))", "{{token_type}}"
            )
        ],
        stacked=True,
    )


def judge_circuit_and_queue() -> timeseries.Panel:
    return timeseries_panel(
        "Judge circuit and queue",
        "Samples waiting for the judge, 1 while the circuit breaker is open (the endpoint "
        "failed breaker_failures times in a row; one trial call per cooldown), and the judge "
        "configuration in use (model and prompt version): a new line where the prompt changed.",
        "short",
        [
            query(f"max by (instance) ({Q.JUDGE_QUEUE_SAMPLES})", "queue {{instance}}"),
            query(f"max by (instance) ({Q.JUDGE_CIRCUIT_OPEN})", "circuit open {{instance}}", ref_id="B"),
            query(
                f"max by ({Q.JUDGE_MODEL}, {Q.JUDGE_PROMPT_VERSION}) ({Q.JUDGE_INFO})",
                "judge {{judge_model}} prompt {{judge_prompt_version}}",
                ref_id="C",
            ),
        ],
    )


def judge_agreement() -> timeseries.Panel:
    return timeseries_panel(
        "Judge agreement with human labels",
        "Share of human-labelled judged samples (`llmpulse label ID good|bad`) where the judge's "
        "verdict matched the label, per feature. Few labels make it noisy: see the count.",
        "percentunit",
        [query(per_key(Q.JUDGE_AGREEMENT_RATIO, FEATURE), "{{service}} · {{feature}}")],
    )


# --- content reaching the judge and drift ---------------------------------------------------
def content_age() -> timeseries.Panel:
    return timeseries_panel(
        "Seconds since the last content",
        "Per feature: seconds since the last call whose span carried judgeable content (sampled, "
        "redacted text). A rising line means the judge and the drift engine see nothing: see the "
        "state panel for why, and `llmpulse status`.",
        "s",
        [query(per_key(Q.CONTENT_AGE, FEATURE), "{{service}} · {{feature}}")],
    )


def content_state() -> table.Panel:
    return table_panel(
        "Content state",
        "Per feature: `seen`, or why no content reaches the judge and drift engine: `capture_off` "
        "(set OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=sampled in the app), "
        "`sample_rate_zero`, `not_sampled` (raise LLMPULSE_SAMPLE_RATE on low traffic), "
        "`redacted`, `errors_only`.",
        f"max by (service, feature, state) ({Q.CONTENT_STATE}{{{FEATURE}}}) == 1",
    )


def judge_labelled() -> timeseries.Panel:
    return timeseries_panel(
        "Human-labelled judged samples",
        "Judged samples carrying a human label, per feature: what the agreement rests on.",
        "short",
        [query(per_key(Q.JUDGE_LABELLED_SAMPLES, FEATURE), "{{service}} · {{feature}}")],
    )


def build() -> models.Dashboard:
    """The quality dashboard."""
    board = (
        new_dashboard(
            UID,
            "llmpulse / Quality",
            "Are the answers getting worse while the system is healthy? Judge scores, SPC control "
            "charts, flagged calls, cheap checks and the judge itself.",
            ["quality"],
        )
        .with_variable(datasource_variable())
        .with_variable(service_variable(Q.CHECKED_TOTAL))
        .with_variable(label_variable("feature", "Feature", f"{Q.CHECKED_TOTAL}{{{SERVICE_FILTER}}}"))
        .with_variable(label_variable("dimension", "Dimension", f"{Q.JUDGE_SCORE}_count{{{FEATURE}}}"))
        .with_variable(
            single_label_variable("statistic", "Statistic", f"{Q.SPC_EWMA}{{{FEATURE}}}", Q.STAT_JUDGE_SCORE)
        )
        .with_row(dashboard.Row("Content for the judge and drift"))
        .with_panel(content_state())
        .with_panel(content_age())
        .with_row(dashboard.Row("Judge scores"))
        .with_panel(judge_score_mean())
        .with_panel(judge_score_distribution())
        .with_row(dashboard.Row("Control charts"))
        .with_panel(control_chart())
        .with_panel(spc_alarms())
        .with_panel(spc_warmup())
        .with_row(dashboard.Row("Flagged calls and cheap checks"))
        .with_panel(flagged_share())
        .with_panel(check_failures())
        .with_panel(calls_checked())
        .with_row(dashboard.Row("Judge"))
        .with_panel(judge_calls())
        .with_panel(judge_errors())
        .with_panel(judge_spend())
        .with_panel(judge_tokens())
        .with_panel(judge_circuit_and_queue())
        .with_panel(judge_agreement())
        .with_panel(judge_labelled())
    )
    return finish(board)
