"""Metric and label names exported by the quality engine, in the style of
:mod:`llmpulse.processor.metrics.names`.

Kept in its own module so the quality engine does not edit the processor's list; the processor's
:data:`~llmpulse.processor.metrics.names.EXPORTED_SERIES` should be joined with
:data:`QUALITY_EXPORTED_SERIES` wherever dashboards and alert rules are checked.
"""

from __future__ import annotations

from typing import Final

from llmpulse.processor.metrics.names import FEATURE, MODEL, REASON, SERVICE, MetricSpec

# --- label names --------------------------------------------------------------------------
CHECK: Final = "check"
DIMENSION: Final = "dimension"
SOURCE: Final = "source"
STATISTIC: Final = "statistic"
TOKEN_TYPE: Final = "token_type"
JUDGE_MODEL: Final = "judge_model"
JUDGE_PROMPT_VERSION: Final = "judge_prompt_version"
PROBE: Final = "probe"
RESULT: Final = "result"

# --- label values -------------------------------------------------------------------------
# judge drops (a sample chosen for judging that was not judged)
DROP_QUEUE_FULL: Final = "queue_full"
DROP_BUDGET: Final = "budget"
DROP_CIRCUIT_OPEN: Final = "circuit_open"
DROP_SHUTDOWN: Final = "shutdown"
DROP_REASONS: Final = (DROP_QUEUE_FULL, DROP_BUDGET, DROP_CIRCUIT_OPEN, DROP_SHUTDOWN)
# flagged samples not stored
STORE_DROP_QUEUE_FULL: Final = "queue_full"
STORE_DROP_RATE_LIMITED: Final = "rate_limited"
STORE_DROP_REASONS: Final = (STORE_DROP_QUEUE_FULL, STORE_DROP_RATE_LIMITED)
# recent samples (kept for late feedback) forgotten early
RECENT_EVICT_COUNT: Final = "count"
RECENT_EVICT_BYTES: Final = "bytes"
RECENT_EVICT_REASONS: Final = (RECENT_EVICT_COUNT, RECENT_EVICT_BYTES)
# judge errors
JUDGE_ERROR_UNPARSEABLE: Final = "unparseable"
JUDGE_ERROR_HTTP: Final = "http"
JUDGE_ERROR_TIMEOUT: Final = "timeout"
JUDGE_ERROR_TRANSPORT: Final = "transport"
JUDGE_ERROR_REASONS: Final = (
    JUDGE_ERROR_UNPARSEABLE,
    JUDGE_ERROR_HTTP,
    JUDGE_ERROR_TIMEOUT,
    JUDGE_ERROR_TRANSPORT,
)
# who flagged a sample
SOURCE_JUDGE: Final = "judge"
SOURCE_CHECK: Final = "check"
SOURCE_FEEDBACK: Final = "feedback"
SOURCE_AUDIT: Final = "audit"  # stored unflagged so humans can measure judge agreement
FLAG_SOURCES: Final = (SOURCE_JUDGE, SOURCE_CHECK, SOURCE_FEEDBACK)
# charted statistics
STAT_JUDGE_SCORE: Final = "judge_score"
STAT_ERROR_RATE: Final = "error_rate"
STAT_REFUSAL_RATE: Final = "refusal_rate"
STAT_LATENCY_P95: Final = "latency_p95_seconds"
STAT_COST: Final = "cost_per_request_usd"
STAT_SESSION_SCORE: Final = "session_judge_score"  # mean overall score of judged whole conversations
STATISTICS: Final = (
    STAT_JUDGE_SCORE,
    STAT_ERROR_RATE,
    STAT_REFUSAL_RATE,
    STAT_LATENCY_P95,
    STAT_COST,
    STAT_SESSION_SCORE,
)
# why a feature's judge and drift engine get no content (content state label values)
CONTENT_SEEN: Final = "seen"
CONTENT_CAPTURE_OFF: Final = "capture_off"
CONTENT_SAMPLE_RATE_ZERO: Final = "sample_rate_zero"
CONTENT_NOT_SAMPLED: Final = "not_sampled"
CONTENT_REDACTED: Final = "redacted"
CONTENT_ERRORS_ONLY: Final = "errors_only"
CONTENT_STATES: Final = (
    CONTENT_SEEN,
    CONTENT_CAPTURE_OFF,
    CONTENT_SAMPLE_RATE_ZERO,
    CONTENT_NOT_SAMPLED,
    CONTENT_REDACTED,
    CONTENT_ERRORS_ONLY,
)
STATE: Final = "state"
# canary results
RESULT_PASS: Final = "pass"
RESULT_FAIL: Final = "fail"
RESULT_ERROR: Final = "error"

SCORE_BUCKETS: Final = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0)

# --- metric names (as exposed) --------------------------------------------------------------
CHECKED_TOTAL: Final = "llmpulse_quality_checked_total"
CHECK_FAILURES_TOTAL: Final = "llmpulse_quality_check_failures_total"
FLAGGED_TOTAL: Final = "llmpulse_quality_flagged_total"
FLAGGED_STORE_DROPPED_TOTAL: Final = "llmpulse_quality_flagged_store_dropped_total"
FLAGGED_STORED_TOTAL: Final = "llmpulse_quality_flagged_stored_total"
RECENT_EVICTED_TOTAL: Final = "llmpulse_quality_recent_evicted_total"
RECENT_BYTES: Final = "llmpulse_quality_recent_bytes"
JUDGE_SAMPLED_TOTAL: Final = "llmpulse_judge_sampled_total"
JUDGE_DROPPED_TOTAL: Final = "llmpulse_judge_dropped_total"
JUDGE_VERDICTS_TOTAL: Final = "llmpulse_judge_verdicts_total"
JUDGE_ERRORS_TOTAL: Final = "llmpulse_judge_errors_total"
JUDGE_SCORE: Final = "llmpulse_judge_score"
JUDGE_TOKENS_TOTAL: Final = "llmpulse_judge_tokens_total"
JUDGE_COST_USD_TOTAL: Final = "llmpulse_judge_cost_usd_total"
JUDGE_QUEUE_SAMPLES: Final = "llmpulse_judge_queue_samples"
JUDGE_CIRCUIT_OPEN: Final = "llmpulse_judge_circuit_open"
JUDGE_INFO: Final = "llmpulse_judge_info"
JUDGE_AGREEMENT_RATIO: Final = "llmpulse_judge_human_agreement_ratio"
JUDGE_LABELLED_SAMPLES: Final = "llmpulse_judge_human_labelled_samples"
SPC_VALUE: Final = "llmpulse_spc_value"
SPC_EWMA: Final = "llmpulse_spc_ewma"
SPC_CENTRE: Final = "llmpulse_spc_centre"
SPC_UPPER: Final = "llmpulse_spc_upper"
SPC_LOWER: Final = "llmpulse_spc_lower"
SPC_ALERT_THRESHOLD: Final = "llmpulse_spc_alert_threshold"
SPC_ALARM: Final = "llmpulse_spc_alarm"
SPC_WARMUP: Final = "llmpulse_spc_in_warmup"
SPC_SAVES_REFUSED_TOTAL: Final = "llmpulse_spc_chart_saves_refused_total"
USER_POSITIVE_RATIO: Final = "llmpulse_user_explicit_positive_ratio"
USER_COVERAGE_RATIO: Final = "llmpulse_user_explicit_coverage_ratio"
USER_CORRECTION_RATIO: Final = "llmpulse_user_correction_ratio"
USER_FOLLOW_UP_RATIO: Final = "llmpulse_user_follow_up_ratio"
USER_ABANDONMENT_RATIO: Final = "llmpulse_user_abandonment_ratio"
USER_SURVIVORSHIP_RISK: Final = "llmpulse_user_survivorship_risk"
CONTENT_AGE: Final = "llmpulse_quality_content_age_seconds"
CONTENT_STATE: Final = "llmpulse_quality_content_state"
CANARY_PASS: Final = "llmpulse_canary_pass"
CANARY_RUNS_TOTAL: Final = "llmpulse_canary_runs_total"
CANARY_LAST_RUN: Final = "llmpulse_canary_last_run_timestamp_seconds"

_SPC = (SERVICE, FEATURE, STATISTIC)
_UF = (SERVICE, FEATURE)  # quality state is kept per (service, feature)
QUALITY_METRICS: Final[tuple[MetricSpec, ...]] = (
    MetricSpec(CHECKED_TOTAL, "counter", _UF, "Calls that went through the cheap checks."),
    MetricSpec(CHECK_FAILURES_TOTAL, "counter", (SERVICE, FEATURE, CHECK), "Failed cheap checks by check."),
    MetricSpec(FLAGGED_TOTAL, "counter", (SERVICE, FEATURE, SOURCE), "Samples flagged, by who flagged them."),
    MetricSpec(
        FLAGGED_STORE_DROPPED_TOTAL,
        "counter",
        (REASON,),
        "Flagged samples not stored: writer queue full, or over the per-feature rate for check flags.",
    ),
    MetricSpec(
        FLAGGED_STORED_TOTAL,
        "counter",
        (),
        "Flagged samples committed to the store: these survive a kill of the processor.",
    ),
    MetricSpec(
        RECENT_EVICTED_TOTAL,
        "counter",
        (REASON,),
        "Recent samples (kept so late feedback can flag them) forgotten, by the budget that was full.",
    ),
    MetricSpec(RECENT_BYTES, "gauge", (), "Characters of content held by the recent samples."),
    MetricSpec(JUDGE_SAMPLED_TOTAL, "counter", _UF, "Calls chosen for judging by the trace-id sampler."),
    MetricSpec(
        JUDGE_DROPPED_TOTAL, "counter", (SERVICE, FEATURE, REASON), "Chosen samples not judged, by reason."
    ),
    MetricSpec(JUDGE_VERDICTS_TOTAL, "counter", _UF, "Verdicts returned by the judge."),
    MetricSpec(
        JUDGE_ERRORS_TOTAL, "counter", (SERVICE, FEATURE, REASON), "Judge calls that gave no verdict."
    ),
    MetricSpec(
        JUDGE_SCORE,
        "histogram",
        (SERVICE, FEATURE, DIMENSION),
        "Judge scores (1-5) by dimension.",
        SCORE_BUCKETS,
    ),
    MetricSpec(JUDGE_TOKENS_TOTAL, "counter", (TOKEN_TYPE,), "Tokens spent by the judge (input|output)."),
    MetricSpec(JUDGE_COST_USD_TOTAL, "counter", (), "Judge spend in US dollars."),
    MetricSpec(JUDGE_QUEUE_SAMPLES, "gauge", (), "Samples waiting for the judge."),
    MetricSpec(JUDGE_CIRCUIT_OPEN, "gauge", (), "1 while the judge's circuit breaker is open."),
    MetricSpec(
        JUDGE_INFO,
        "gauge",
        (JUDGE_MODEL, JUDGE_PROMPT_VERSION),
        "1 for the judge configuration in use: its model and prompt version (a digest of the prompts,"
        " rubrics and few-shot examples), to tell which judge produced which scores.",
    ),
    MetricSpec(
        JUDGE_AGREEMENT_RATIO, "gauge", _UF, "Share of human-labelled samples where the judge agreed."
    ),
    MetricSpec(JUDGE_LABELLED_SAMPLES, "gauge", _UF, "Judged samples carrying a human label."),
    MetricSpec(SPC_VALUE, "gauge", _SPC, "Latest per-window value of the charted statistic."),
    MetricSpec(SPC_EWMA, "gauge", _SPC, "EWMA of the charted statistic."),
    MetricSpec(SPC_CENTRE, "gauge", _SPC, "Centre line (baseline mean) of the EWMA chart."),
    MetricSpec(SPC_UPPER, "gauge", _SPC, "Upper control limit of the EWMA chart."),
    MetricSpec(SPC_LOWER, "gauge", _SPC, "Lower control limit of the EWMA chart."),
    MetricSpec(
        SPC_ALERT_THRESHOLD,
        "gauge",
        _SPC,
        "Value the EWMA must cross to alarm: the control limit on the alarming side, or the minimum"
        " effect where that is farther.",
    ),
    MetricSpec(SPC_ALARM, "gauge", _SPC, "1 when the EWMA is outside its limits (in the bad direction)."),
    MetricSpec(SPC_WARMUP, "gauge", _SPC, "1 while the chart is estimating its baseline."),
    MetricSpec(
        SPC_SAVES_REFUSED_TOTAL,
        "counter",
        (REASON,),
        "SPC chart snapshots the store refused to save, by reason (stale_owner: another replica"
        " took the feature over since this one did).",
    ),
    MetricSpec(USER_POSITIVE_RATIO, "gauge", _UF, "Share of explicit feedback that is positive."),
    MetricSpec(USER_COVERAGE_RATIO, "gauge", _UF, "Explicit feedback events per response."),
    MetricSpec(USER_CORRECTION_RATIO, "gauge", _UF, "Corrections per response."),
    MetricSpec(USER_FOLLOW_UP_RATIO, "gauge", _UF, "Follow-ups per response."),
    MetricSpec(USER_ABANDONMENT_RATIO, "gauge", _UF, "Abandonments per response."),
    MetricSpec(
        USER_SURVIVORSHIP_RISK,
        "gauge",
        _UF,
        "Survivorship-bias risk 0-1: high abandonment while sparse explicit feedback looks happy.",
    ),
    MetricSpec(
        CONTENT_AGE,
        "gauge",
        _UF,
        "Seconds since the feature's last call with judgeable content (since its first call if none).",
    ),
    MetricSpec(
        CONTENT_STATE,
        "gauge",
        (SERVICE, FEATURE, STATE),
        "1 for the feature's content state: seen, or why the judge and drift get none.",
    ),
    MetricSpec(CANARY_PASS, "gauge", (PROBE, MODEL), "1 when the probe's last run passed, else 0."),
    MetricSpec(CANARY_RUNS_TOTAL, "counter", (PROBE, MODEL, RESULT), "Canary runs by result."),
    MetricSpec(CANARY_LAST_RUN, "gauge", (PROBE, MODEL), "Unix time of the probe's last run."),
)

QUALITY_METRICS_BY_NAME: Final = {spec.name: spec for spec in QUALITY_METRICS}
QUALITY_EXPORTED_SERIES: Final[frozenset[str]] = frozenset(n for spec in QUALITY_METRICS for n in spec.series)
