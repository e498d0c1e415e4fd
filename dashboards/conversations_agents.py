"""Conversations and agents: agent runs (calls, tokens, cost, duration, errors, runaway runs),
tool calls and errors per tool, and sessions (turns, duration, cost, abandonment, corrections,
follow-ups, feedback coverage, the survivorship-bias risk on sessions, the session judge's chart)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, stat, timeseries
from grafana_foundation_sdk.models import dashboard as models

from dashboards.common import (
    SERVICE_FILTER,
    SPC_KEY,
    datasource_variable,
    finish,
    label_variable,
    new_dashboard,
    per_key,
    query,
    service_variable,
    stat_panel,
    sum_rate,
    timeseries_panel,
)
from llmpulse.processor.agents import metric_names as N
from llmpulse.processor.quality import metric_names as Q

UID = "llmpulse-conversations-agents"
AGENT_FILTER = f'{SERVICE_FILTER}, agent=~"$agent"'
TOOL_FILTER = f'{SERVICE_FILTER}, tool=~"$tool"'
SESSION_FILTER = f'{SERVICE_FILTER}, feature=~"$feature"'
SESSION_RECORDED = "service_feature:llmpulse_session_{}:1h"
"""The per-session ratios of the recording group llmpulse-sessions-recording."""
SESSION_SURVIVORSHIP_ALERT = 0.8
"""LLMPulseSessionSurvivorshipBiasRisk's threshold (alerting/rules/llmpulse-agents.yml)."""
BY_AGENT = "{{service}} · {{agent}}"
BY_TOOL = "{{service}} · {{tool}}"
BY_FEATURE = "{{service}} · {{feature}}"
AGENT_BY = "service, agent"
TOOL_BY = "service, tool"
FEATURE_BY = "service, feature"


def _quantile(q: float, metric: str, by: str, matchers: str) -> str:
    return (
        f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{matchers}}}[$__rate_interval])))"
    )


def _mean(metric: str, by: str, matchers: str) -> str:
    return f"{sum_rate(by, f'{metric}_sum', matchers)} / {sum_rate(by, f'{metric}_count', matchers)}"


# --- agent runs ------------------------------------------------------------------------------
def runs_rate() -> timeseries.Panel:
    return timeseries_panel(
        "Runs/s by outcome",
        "Agent and workflow runs that ended, per second, by outcome (ok | error).",
        "ops",
        [
            query(
                sum_rate(f"{AGENT_BY}, outcome", N.AGENT_RUNS_TOTAL, AGENT_FILTER),
                BY_AGENT + " · {{outcome}}",
            )
        ],
        stacked=True,
    )


def run_error_ratio() -> timeseries.Panel:
    return timeseries_panel(
        "Run error ratio",
        "Share of runs whose span ended in an error (LLMPulseAgentRunErrorRateHigh at 10%).",
        "percentunit",
        [
            query(
                sum_rate(AGENT_BY, N.AGENT_RUNS_TOTAL, f'{AGENT_FILTER}, outcome="error"')
                + " / "
                + sum_rate(AGENT_BY, N.AGENT_RUNS_TOTAL, AGENT_FILTER),
                BY_AGENT,
            )
        ],
        threshold=0.1,
    )


def run_duration() -> timeseries.Panel:
    return timeseries_panel(
        "Run duration p95 (exemplars: click a dot for its trace)",
        "95th percentile duration of a run's span.",
        "s",
        [query(_quantile(0.95, N.AGENT_RUN_DURATION, AGENT_BY, AGENT_FILTER), BY_AGENT, exemplar=True)],
    )


def calls_per_run() -> timeseries.Panel:
    return timeseries_panel(
        "LLM calls and tool calls per run (p95)",
        "95th percentile of the LLM calls and tool calls under one run's span.",
        "short",
        [
            query(
                _quantile(0.95, N.AGENT_RUN_LLM_CALLS, AGENT_BY, AGENT_FILTER),
                "LLM " + BY_AGENT,
                exemplar=True,
            ),
            query(
                _quantile(0.95, N.AGENT_RUN_TOOL_CALLS, AGENT_BY, AGENT_FILTER),
                "tools " + BY_AGENT,
                ref_id="B",
                exemplar=True,
            ),
        ],
    )


def tokens_and_cost_per_run() -> timeseries.Panel:
    return timeseries_panel(
        "Cost per run (mean, p95)",
        "Cost in USD of the LLM calls under one run's span (priced by the processor when the "
        "spans carry no cost).",
        "currencyUSD",
        [
            query(_mean(N.AGENT_RUN_COST, AGENT_BY, AGENT_FILTER), "mean " + BY_AGENT),
            query(
                _quantile(0.95, N.AGENT_RUN_COST, AGENT_BY, AGENT_FILTER),
                "p95 " + BY_AGENT,
                ref_id="B",
                exemplar=True,
            ),
        ],
    )


def tokens_per_run() -> timeseries.Panel:
    return timeseries_panel(
        "Tokens per run (mean)",
        "Input plus output tokens of the LLM calls under one run's span.",
        "short",
        [query(_mean(N.AGENT_RUN_TOKENS, AGENT_BY, AGENT_FILTER), BY_AGENT)],
    )


def runaway_runs() -> timeseries.Panel:
    return timeseries_panel(
        "Runaway runs (exemplar: the latest runaway trace)",
        "Runs over the agent's LLM-call or tool-call cap, or calling one tool with the same "
        "arguments repeatedly, per 10 minutes (LLMPulseAgentRunaway).",
        "short",
        [
            query(
                f"sum by ({AGENT_BY}, reason) "
                f"(increase({N.AGENT_RUNAWAY_RUNS_TOTAL}{{{AGENT_FILTER}}}[10m]))",
                BY_AGENT + " · {{reason}}",
                exemplar=True,
            )
        ],
        width=24,
    )


# --- tools -------------------------------------------------------------------------------------
def tool_rate() -> timeseries.Panel:
    return timeseries_panel(
        "Tool calls/s",
        "Tool calls per second, by tool.",
        "ops",
        [query(sum_rate(TOOL_BY, N.TOOL_CALLS_TOTAL, TOOL_FILTER), BY_TOOL)],
        stacked=True,
    )


def tool_error_ratio() -> timeseries.Panel:
    return timeseries_panel(
        "Tool error ratio by tool",
        "Share of a tool's calls that ended in an error (LLMPulseToolErrorRateHigh at 20%).",
        "percentunit",
        [
            query(
                sum_rate(TOOL_BY, N.TOOL_ERRORS_TOTAL, TOOL_FILTER)
                + " / "
                + sum_rate(TOOL_BY, N.TOOL_CALLS_TOTAL, TOOL_FILTER),
                BY_TOOL,
            )
        ],
        threshold=0.2,
    )


def tool_duration() -> timeseries.Panel:
    return timeseries_panel(
        "Tool p95 with exemplars",
        "95th percentile duration of a tool's calls; a dot opens a recent call's trace.",
        "s",
        [query(_quantile(0.95, N.TOOL_DURATION, TOOL_BY, TOOL_FILTER), BY_TOOL, exemplar=True)],
        width=24,
    )


# --- sessions ----------------------------------------------------------------------------------
def sessions_rate() -> timeseries.Panel:
    return timeseries_panel(
        "Sessions closed per minute",
        "Conversations closed after the inactivity timeout ([agents] session_timeout_s, 3 min).",
        "short",
        [query(f"60 * {sum_rate(FEATURE_BY, N.SESSIONS_TOTAL, SESSION_FILTER)}", BY_FEATURE)],
    )


def abandonment() -> timeseries.Panel:
    return timeseries_panel(
        "Abandoned after the first answer",
        "Share of closed sessions with one turn, answered without error: the users who left after "
        "the first AI response (LLMPulseSessionAbandonmentHigh at 30% and 1.5x the previous day).",
        "percentunit",
        [
            query(
                f"sum by ({FEATURE_BY}) (increase({N.SESSIONS_ABANDONED_TOTAL}{{{SESSION_FILTER}}}[30m]))"
                f" / sum by ({FEATURE_BY}) (increase({N.SESSIONS_TOTAL}{{{SESSION_FILTER}}}[30m]))",
                BY_FEATURE,
            )
        ],
        threshold=0.3,
    )


def corrections_and_follow_ups() -> timeseries.Panel:
    return timeseries_panel(
        "Corrections and follow-ups per session",
        "Share of the sessions closed in the last hour with a correction or a follow-up "
        "(llmpulse.feedback given inside the conversation); LLMPulseSessionCorrectionRateHigh at "
        "20% and 1.5x the previous day.",
        "percentunit",
        [
            query(
                f"{SESSION_RECORDED.format('corrected_ratio')}{{{SESSION_FILTER}}}", "corrected " + BY_FEATURE
            ),
            query(
                f"{SESSION_RECORDED.format('followed_up_ratio')}{{{SESSION_FILTER}}}",
                "followed up " + BY_FEATURE,
                ref_id="B",
            ),
        ],
        threshold=0.2,
    )


def session_feedback() -> timeseries.Panel:
    return timeseries_panel(
        "Session feedback coverage and positive share",
        "Share of the sessions closed in the last hour with explicit feedback (thumbs or rating), "
        "and of those, the share whose feedback was mostly positive.",
        "percentunit",
        [
            query(
                f"{SESSION_RECORDED.format('feedback_coverage')}{{{SESSION_FILTER}}}",
                "coverage " + BY_FEATURE,
            ),
            query(
                f"{SESSION_RECORDED.format('feedback_positive_ratio')}{{{SESSION_FILTER}}}",
                "positive " + BY_FEATURE,
                ref_id="B",
            ),
        ],
    )


def session_survivorship() -> timeseries.Panel:
    return timeseries_panel(
        "Session survivorship-bias risk",
        "0-1, over the last hour of closed sessions: abandonment after the first answer high while "
        "the sparse explicit feedback looks happy. LLMPulseSessionSurvivorshipBiasRisk fires at "
        f"{SESSION_SURVIVORSHIP_ALERT} for 30 minutes.",
        "percentunit",
        [query(f"{SESSION_RECORDED.format('survivorship_risk')}{{{SESSION_FILTER}}}", BY_FEATURE)],
        threshold=SESSION_SURVIVORSHIP_ALERT,
    )


def session_judge_chart() -> timeseries.Panel:
    matchers = f'{SESSION_FILTER}, statistic="{Q.STAT_SESSION_SCORE}"'
    return timeseries_panel(
        "Session judge score (EWMA chart)",
        "Mean overall judge score (1-5) of whole conversations ([agents] judge_rate of sessions, "
        "judged once closed: goal met, frustration, consistency), per window of verdicts, its EWMA "
        "and lower control limit. LLMPulseQualitySPCAlarm fires when it stays below the limit.",
        "short",
        [
            query(per_key(Q.SPC_VALUE, matchers, SPC_KEY), "value " + BY_FEATURE),
            query(per_key(Q.SPC_EWMA, matchers, SPC_KEY), "EWMA " + BY_FEATURE, ref_id="B"),
            query(per_key(Q.SPC_LOWER, matchers, SPC_KEY), "lower limit " + BY_FEATURE, ref_id="C"),
        ],
    )


def session_judging() -> timeseries.Panel:
    return timeseries_panel(
        "Sessions sampled for judging, and unmatched feedback",
        "Closed sessions sampled for judging per minute, by outcome (offered to the judge; "
        "incomplete: a turn without content; no_judge: the quality engine's judge is off), and "
        "feedback naming a conversation that was not open.",
        "short",
        [
            query(
                f"60 * sum by ({FEATURE_BY}, outcome) "
                f"(rate({N.SESSION_JUDGE_SAMPLES_TOTAL}{{{SESSION_FILTER}}}[$__rate_interval]))",
                "{{outcome}} " + BY_FEATURE,
            ),
            query(
                f"60 * sum by (instance) (rate({N.SESSION_FEEDBACK_UNMATCHED_TOTAL}[$__rate_interval]))",
                "unmatched feedback {{instance}}",
                ref_id="B",
            ),
        ],
    )


def turns_per_session() -> timeseries.Panel:
    return timeseries_panel(
        "Turns per session (mean, p95)",
        "Traces per closed session: an agent run of five LLM calls is one turn.",
        "short",
        [
            query(_mean(N.SESSION_TURNS, FEATURE_BY, SESSION_FILTER), "mean " + BY_FEATURE),
            query(
                _quantile(0.95, N.SESSION_TURNS, FEATURE_BY, SESSION_FILTER), "p95 " + BY_FEATURE, ref_id="B"
            ),
        ],
    )


def session_duration() -> timeseries.Panel:
    return timeseries_panel(
        "Session duration p50 / p95",
        "First span start to last span end of a closed session.",
        "s",
        [
            query(_quantile(0.5, N.SESSION_DURATION, FEATURE_BY, SESSION_FILTER), "p50 " + BY_FEATURE),
            query(
                _quantile(0.95, N.SESSION_DURATION, FEATURE_BY, SESSION_FILTER),
                "p95 " + BY_FEATURE,
                ref_id="B",
            ),
        ],
    )


def cost_per_session() -> timeseries.Panel:
    return timeseries_panel(
        "Cost per session (mean)",
        "Cost in USD of a closed session's LLM calls.",
        "currencyUSD",
        [query(_mean(N.SESSION_COST, FEATURE_BY, SESSION_FILTER), BY_FEATURE)],
    )


def active_sessions() -> timeseries.Panel:
    return timeseries_panel(
        "Open sessions and pending agent traces",
        "Sessions open now (bounded by [agents] max_sessions) and traces whose spans wait for "
        "their run span (bounded by max_pending_traces).",
        "short",
        [
            query(f"sum by (instance) ({N.SESSIONS_ACTIVE})", "sessions {{instance}}"),
            query(f"sum by (instance) ({N.AGENT_PENDING_TRACES})", "pending traces {{instance}}", ref_id="B"),
        ],
    )


def tracking_losses() -> timeseries.Panel:
    return timeseries_panel(
        "Calls under no run, and state dropped, by reason",
        "LLM and tool calls counted under no run (missing_parent, cycle, late, outside_run, evicted) "
        "and tracking state dropped to bound memory (pending_cap, timeout, links_cap, tool_keys_cap, "
        "session_cap, judge_cap, session_store, session_queue), per second.",
        "ops",
        [
            query(
                f"sum by (reason) (rate({N.AGENT_UNATTRIBUTED_TOTAL}[$__rate_interval]))",
                "unattributed {{reason}}",
            ),
            query(
                f"sum by (reason) (rate({N.AGENT_EVICTIONS_TOTAL}[$__rate_interval]))",
                "dropped {{reason}}",
                ref_id="B",
            ),
        ],
    )


def runaway_stat() -> stat.Panel:
    return stat_panel(
        "Runaway runs, last hour",
        "Runs counted as runaway over the last hour, every agent of the selected services.",
        "short",
        f"sum(increase({N.AGENT_RUNAWAY_RUNS_TOTAL}{{{SERVICE_FILTER}}}[1h]))",
    )


def build() -> models.Dashboard:
    """The conversations and agents dashboard."""
    runs = N.AGENT_RUNS_TOTAL
    board = (
        new_dashboard(
            UID,
            "llmpulse / Conversations and agents",
            "Agent runs (calls, tokens, cost, duration, errors, runaway runs), tool calls and errors "
            "per tool, and conversations (turns, duration, cost, abandonment after the first answer).",
            ["agents", "sessions"],
        )
        .with_variable(datasource_variable())
        .with_variable(service_variable(runs))
        .with_variable(label_variable("agent", "Agent", f"{runs}{{{SERVICE_FILTER}}}"))
        .with_variable(label_variable("tool", "Tool", f"{N.TOOL_CALLS_TOTAL}{{{SERVICE_FILTER}}}"))
        .with_variable(label_variable("feature", "Feature", f"{N.SESSIONS_TOTAL}{{{SERVICE_FILTER}}}"))
        .with_row(dashboard.Row("Agent runs"))
        .with_panel(runaway_stat())
        .with_panel(runs_rate())
        .with_panel(run_error_ratio())
        .with_panel(run_duration())
        .with_panel(calls_per_run())
        .with_panel(tokens_and_cost_per_run())
        .with_panel(tokens_per_run())
        .with_panel(runaway_runs())
        .with_row(dashboard.Row("Tools"))
        .with_panel(tool_rate())
        .with_panel(tool_error_ratio())
        .with_panel(tool_duration())
        .with_row(dashboard.Row("Conversations"))
        .with_panel(sessions_rate())
        .with_panel(abandonment())
        .with_panel(turns_per_session())
        .with_panel(session_duration())
        .with_panel(cost_per_session())
        .with_panel(active_sessions())
        .with_row(dashboard.Row("Conversations: user signals and judging"))
        .with_panel(corrections_and_follow_ups())
        .with_panel(session_feedback())
        .with_panel(session_survivorship())
        .with_panel(session_judge_chart())
        .with_panel(session_judging())
        .with_row(dashboard.Row("Tracking"))
        .with_panel(tracking_losses())
    )
    return finish(board)
