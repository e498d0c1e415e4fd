"""Metric and label names the agents engine exports (agent runs, tool calls, sessions), in the
style of :mod:`llmpulse.processor.metrics.names`.

Every series starts with ``service`` and ``deployment_environment``, like the metrics derived
from LLM spans. ``agent`` (the run's agent or workflow name) and ``tool`` are free-form, capped
like every other label (``--max-label-values``); ``kind`` is ``agent``, ``workflow`` or
``tool_loop`` (a tool-call loop recognised without agent spans);
``reason`` comes from the fixed tuples below. :data:`AGENTS_EXPORTED_SERIES` lists every sample
name, so dashboards and rules are checked against it.
"""

from __future__ import annotations

from typing import Final

from llmpulse.processor.metrics.names import (
    FEATURE,
    KIND,
    OUTCOME,
    REASON,
    SERVICE_LABELS,
    TOKEN_BUCKETS,
    MetricSpec,
)

# --- labels and their values ----------------------------------------------------------------
AGENT: Final = "agent"
TOOL: Final = "tool"
RUN_LABELS: Final = (*SERVICE_LABELS, AGENT)
TOOL_LABELS: Final = (*SERVICE_LABELS, TOOL)
SESSION_LABELS: Final = (*SERVICE_LABELS, FEATURE)

RUNAWAY_LLM_CALLS: Final = "llm_calls"  # more LLM calls than the agent's cap
RUNAWAY_TOOL_CALLS: Final = "tool_calls"  # more tool calls than the agent's cap
RUNAWAY_REPEATED_TOOL_CALL: Final = (
    "repeated_tool_call"  # one tool called with the same arguments again and again
)
KIND_TOOL_LOOP: Final = "tool_loop"  # the kind of a run recognised from a tool-call loop's LLM calls
RUNAWAY_REASONS: Final = (RUNAWAY_LLM_CALLS, RUNAWAY_TOOL_CALLS, RUNAWAY_REPEATED_TOOL_CALL)

# why a call or tool span was not counted under any run
UNATTRIBUTED_MISSING_PARENT: Final = "missing_parent"  # its parent chain ends at a span never seen
UNATTRIBUTED_CYCLE: Final = "cycle"  # its parent ids loop
UNATTRIBUTED_LATE: Final = "late"  # it arrived after its run had been counted
UNATTRIBUTED_OUTSIDE_RUN: Final = "outside_run"  # a trace with runs, but this span is under none
UNATTRIBUTED_EVICTED: Final = "evicted"  # its trace was evicted (pending cap) before a run claimed it
UNATTRIBUTED_REASONS: Final = (
    UNATTRIBUTED_MISSING_PARENT,
    UNATTRIBUTED_CYCLE,
    UNATTRIBUTED_LATE,
    UNATTRIBUTED_OUTSIDE_RUN,
    UNATTRIBUTED_EVICTED,
)

# why tracking state was dropped or cut
EVICT_PENDING_CAP: Final = "pending_cap"  # the oldest pending agent trace made room for a new one
EVICT_TIMEOUT: Final = "timeout"  # an agent trace waited trace_idle_s without its run span
EVICT_LINKS_CAP: Final = "links_cap"  # a trace had more parent links than max_links_per_trace
EVICT_TOOL_KEYS_CAP: Final = "tool_keys_cap"  # a run called more distinct (tool, arguments) than tracked
EVICT_SESSION_CAP: Final = "session_cap"  # the least recently active session was closed early for room
EVICT_JUDGE_CAP: Final = "judge_cap"  # a session sampled for judging kept no transcript: too many held
EVICT_SESSION_STORE: Final = (
    "session_store"  # a captured session left the store: over capture_bytes or too old
)
EVICT_LOOP_CAP: Final = "loop_cap"  # the least recently active open tool-call loop was counted early for room
EVICT_SESSION_QUEUE: Final = "session_queue"  # a captured session was not stored: the writer's queue was full
EVICT_REASONS: Final = (
    EVICT_PENDING_CAP,
    EVICT_TIMEOUT,
    EVICT_LINKS_CAP,
    EVICT_TOOL_KEYS_CAP,
    EVICT_SESSION_CAP,
    EVICT_JUDGE_CAP,
    EVICT_SESSION_STORE,
    EVICT_SESSION_QUEUE,
    EVICT_LOOP_CAP,
)

# what became of a closed session sampled for judging
SESSION_JUDGE_OFFERED: Final = "offered"  # its transcript went to the judge's queue
SESSION_JUDGE_INCOMPLETE: Final = "incomplete"  # a turn had no content (capture off) or was clipped
SESSION_JUDGE_NO_JUDGE: Final = "no_judge"  # no session judge: the quality engine or its judge is off
SESSION_JUDGE_OUTCOMES: Final = (SESSION_JUDGE_OFFERED, SESSION_JUDGE_INCOMPLETE, SESSION_JUDGE_NO_JUDGE)

RUN_SECONDS_BUCKETS: Final = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0,
)  # fmt: skip
CALLS_BUCKETS: Final = (
    0.0,
    1.0,
    2.0,
    3.0,
    5.0,
    8.0,
    13.0,
    21.0,
    34.0,
    55.0,
    89.0,
    144.0,
    233.0,
    610.0,
    1597.0,
)
COST_BUCKETS: Final = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
TOOL_SECONDS_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
TURNS_BUCKETS: Final = (1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 100.0)
SESSION_SECONDS_BUCKETS: Final = (
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
)  # fmt: skip

# --- metric names (as exposed) --------------------------------------------------------------
AGENT_RUNS_TOTAL: Final = "llmpulse_agent_runs_total"
AGENT_RUN_DURATION: Final = "llmpulse_agent_run_duration_seconds"
AGENT_RUN_LLM_CALLS: Final = "llmpulse_agent_run_llm_calls"
AGENT_RUN_TOOL_CALLS: Final = "llmpulse_agent_run_tool_calls"
AGENT_RUN_TOKENS: Final = "llmpulse_agent_run_tokens"
AGENT_RUN_COST: Final = "llmpulse_agent_run_cost_usd"
AGENT_RUNAWAY_RUNS_TOTAL: Final = "llmpulse_agent_runaway_runs_total"
TOOL_CALLS_TOTAL: Final = "llmpulse_tool_calls_total"
TOOL_ERRORS_TOTAL: Final = "llmpulse_tool_errors_total"
TOOL_DURATION: Final = "llmpulse_tool_duration_seconds"
AGENT_UNATTRIBUTED_TOTAL: Final = "llmpulse_agent_spans_unattributed_total"
AGENT_EVICTIONS_TOTAL: Final = "llmpulse_agent_tracking_evictions_total"
AGENT_PENDING_TRACES: Final = "llmpulse_agent_pending_traces"
SESSIONS_TOTAL: Final = "llmpulse_sessions_total"
SESSIONS_ABANDONED_TOTAL: Final = "llmpulse_sessions_abandoned_total"
SESSION_TURNS: Final = "llmpulse_session_turns"
SESSION_DURATION: Final = "llmpulse_session_duration_seconds"
SESSION_COST: Final = "llmpulse_session_cost_usd"
SESSIONS_ACTIVE: Final = "llmpulse_sessions_active"
SESSIONS_CORRECTED_TOTAL: Final = "llmpulse_sessions_corrected_total"
SESSIONS_FOLLOWED_UP_TOTAL: Final = "llmpulse_sessions_followed_up_total"
SESSIONS_WITH_FEEDBACK_TOTAL: Final = "llmpulse_sessions_with_feedback_total"
SESSIONS_FEEDBACK_POSITIVE_TOTAL: Final = "llmpulse_sessions_feedback_positive_total"
SESSION_FEEDBACK_UNMATCHED_TOTAL: Final = "llmpulse_session_feedback_unmatched_total"
SESSION_JUDGE_SAMPLES_TOTAL: Final = "llmpulse_session_judge_samples_total"

AGENTS_METRICS: Final[tuple[MetricSpec, ...]] = (
    MetricSpec(
        AGENT_RUNS_TOTAL,
        "counter",
        (*RUN_LABELS, KIND, OUTCOME),
        "Agent and workflow runs that ended, by kind (agent|workflow|tool_loop) and outcome (ok|error).",
    ),
    MetricSpec(
        AGENT_RUN_DURATION, "histogram", RUN_LABELS, "Duration of agent runs.", RUN_SECONDS_BUCKETS, True
    ),
    MetricSpec(
        AGENT_RUN_LLM_CALLS, "histogram", RUN_LABELS, "LLM calls under one run's span.", CALLS_BUCKETS, True
    ),
    MetricSpec(
        AGENT_RUN_TOOL_CALLS, "histogram", RUN_LABELS, "Tool calls under one run's span.", CALLS_BUCKETS, True
    ),
    MetricSpec(
        AGENT_RUN_TOKENS,
        "histogram",
        RUN_LABELS,
        "Input plus output tokens of the LLM calls under one run's span.",
        TOKEN_BUCKETS,
    ),
    MetricSpec(
        AGENT_RUN_COST,
        "histogram",
        RUN_LABELS,
        "Cost in USD of the LLM calls under one run's span.",
        COST_BUCKETS,
        True,
    ),
    MetricSpec(
        AGENT_RUNAWAY_RUNS_TOTAL,
        "counter",
        (*RUN_LABELS, REASON),
        "Runs over the agent's LLM-call or tool-call cap, or calling one tool with the same arguments "
        "repeatedly (reason llm_calls|tool_calls|repeated_tool_call); exemplar: the latest trace.",
        exemplars=True,
    ),
    MetricSpec(TOOL_CALLS_TOTAL, "counter", TOOL_LABELS, "Tool calls (execute_tool spans) by tool."),
    MetricSpec(TOOL_ERRORS_TOTAL, "counter", TOOL_LABELS, "Tool calls that ended in an error, by tool."),
    MetricSpec(
        TOOL_DURATION, "histogram", TOOL_LABELS, "Duration of tool calls.", TOOL_SECONDS_BUCKETS, True
    ),
    MetricSpec(
        AGENT_UNATTRIBUTED_TOTAL,
        "counter",
        (REASON,),
        "LLM calls and tool calls counted under no run, by reason "
        "(missing_parent|cycle|late|outside_run|evicted).",
    ),
    MetricSpec(
        AGENT_EVICTIONS_TOTAL,
        "counter",
        (REASON,),
        "Tracking state dropped or cut to bound memory, by reason "
        "(pending_cap|timeout|links_cap|tool_keys_cap|session_cap).",
    ),
    MetricSpec(AGENT_PENDING_TRACES, "gauge", (), "Traces whose spans wait for their run span."),
    MetricSpec(
        SESSIONS_TOTAL,
        "counter",
        SESSION_LABELS,
        "Conversations (sessions) closed after the inactivity timeout.",
    ),
    MetricSpec(
        SESSIONS_ABANDONED_TOTAL,
        "counter",
        SESSION_LABELS,
        "Closed sessions abandoned after the first AI response: one turn, answered without error.",
    ),
    MetricSpec(
        SESSION_TURNS, "histogram", SESSION_LABELS, "Turns (traces) per closed session.", TURNS_BUCKETS
    ),
    MetricSpec(
        SESSION_DURATION,
        "histogram",
        SESSION_LABELS,
        "First span start to last span end of a closed session.",
        SESSION_SECONDS_BUCKETS,
    ),
    MetricSpec(
        SESSION_COST,
        "histogram",
        SESSION_LABELS,
        "Cost in USD of a closed session's LLM calls.",
        COST_BUCKETS,
    ),
    MetricSpec(SESSIONS_ACTIVE, "gauge", (), "Sessions open (active within the inactivity timeout)."),
    MetricSpec(
        SESSIONS_CORRECTED_TOTAL,
        "counter",
        SESSION_LABELS,
        "Closed sessions in which the user corrected an answer (llmpulse.feedback correction).",
    ),
    MetricSpec(
        SESSIONS_FOLLOWED_UP_TOTAL,
        "counter",
        SESSION_LABELS,
        "Closed sessions with a follow-up signal (llmpulse.feedback follow_up).",
    ),
    MetricSpec(
        SESSIONS_WITH_FEEDBACK_TOTAL,
        "counter",
        SESSION_LABELS,
        "Closed sessions with explicit feedback (thumbs or rating): the session feedback coverage.",
    ),
    MetricSpec(
        SESSIONS_FEEDBACK_POSITIVE_TOTAL,
        "counter",
        SESSION_LABELS,
        "Closed sessions whose explicit feedback was more than half positive.",
    ),
    MetricSpec(
        SESSION_FEEDBACK_UNMATCHED_TOTAL,
        "counter",
        (),
        "Feedback naming a conversation that was not open (closed already, or never had a call).",
    ),
    MetricSpec(
        SESSION_JUDGE_SAMPLES_TOTAL,
        "counter",
        (*SESSION_LABELS, OUTCOME),
        "Closed sessions sampled for judging, by outcome (offered|incomplete|no_judge).",
    ),
)

AGENTS_METRICS_BY_NAME: Final = {spec.name: spec for spec in AGENTS_METRICS}

AGENTS_EXPORTED_SERIES: Final[frozenset[str]] = frozenset(
    name for spec in AGENTS_METRICS for name in spec.series
)
"""Every sample name the agents engine adds to a scrape."""
