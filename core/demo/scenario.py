"""The demo's incidents, their schedule, and the alert each one should raise: one table.

Times are *simulated* minutes from the start of the demo; a :class:`Schedule` divides them by
the speed factor. Each :class:`Incident` names the feature it hits, what is injected, where
(the fake provider or the app), the alerts that should report it, and the series to plot.

Which of those alerts exist is read from the rule files at run time
(:func:`llmpulse.demo.rules.alert_rules`): an incident whose alerts are not defined yet is
reported as "no alert rule yet" and not counted as a miss, and starts being checked the day its
rule lands (alerting/rules/llmpulse-quality.yml and llmpulse-drift.yml). An
incident whose rule exists but whose engine exports nothing in this run (``requires``) is
reported as "engine not running", not as a miss.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "AGENT",
    "AGENT_TOOL",
    "EXIT_SHARE",
    "FEATURES",
    "INCIDENTS",
    "LOOP_REPEATS",
    "Feature",
    "Incident",
    "ScenarioState",
    "Schedule",
    "read_active",
]


@dataclass(frozen=True)
class Feature:
    """One feature of the demo app: its model, provider SDK and how much traffic it gets.

    ``rate_per_s`` is user requests per second: a single call, an agent's conversation or a
    chat conversation. ``turns``: a conversation has one of these many turns, drawn uniformly
    (``(1,)``: every request is on its own, under a session id of its own). ``calls_per_turn``:
    the LLM calls of one turn on average (an agent's run makes several).
    """

    name: str
    provider: str  # "openai" | "anthropic"
    model: str
    rate_per_s: float
    rag: bool  # retrieval and rerank steps before the call, thumbs feedback after
    agent: bool = False  # an agent run: LLM calls and tool calls under an invoke_agent span
    turns: tuple[int, ...] = (1,)
    calls_per_turn: float = 1.0

    @property
    def calls_per_s(self) -> float:
        """LLM calls per second, on average (early exits of a conversation left out)."""
        return self.rate_per_s * sum(self.turns) / len(self.turns) * self.calls_per_turn


FEATURES: tuple[Feature, ...] = (
    # conversations of 2 to 4 questions, 7 calls/s (fewer: some users abandon on the way); a
    # conversation of one question is a user who left after the first answer. 2.5 a second so
    # that in the abandonment surge, when most conversations end after a question or two, a
    # compressed hour (30 s at speed 120) still holds the 100 calls the survivorship alert asks
    # for (4 calls/s; at 2 conversations/s it was 3.2, under 100 half of the time)
    Feature("support-chat", "openai", "gpt-4o-mini", 2.5, rag=True, turns=(2,) * 6 + (3,) * 5 + (4,) * 4),
    Feature("doc-qa", "openai", "gpt-4o", 2.5, rag=True),
    Feature("summarize", "anthropic", "claude-haiku-4-5", 2.0, rag=False),
    # its own model: the provider-side incidents pick their calls by model. A run: one call per
    # leg of the trip (one or two) with its flight search, then the answer: 2.5 calls per turn.
    Feature(
        "trip-agent",
        "openai",
        "gpt-4.1-mini",
        0.5,
        rag=False,
        agent=True,
        turns=(2, 2, 3),
        calls_per_turn=2.5,
    ),
)
AGENT = "trip-planner"  # the trip-agent feature's agent (gen_ai.agent.name)
AGENT_TOOL = "search_flights"  # the tool that fails in the tool_failure incident
LOOP_REPEATS = 6  # searches with the same arguments per run in the agent_loop incident (cap: 5)
EXIT_SHARE = 0.6  # conversations that end after the first answer in the first_answer_exit incident


@dataclass(frozen=True)
class Incident:
    """One scripted incident and what should detect it.

    ``alerts``: the alert names that report it, in order of preference (the first one defined
    in the rule files is "its" alert; any of them counts as detection). ``side_effects``: other
    alerts the incident legitimately raises as well (an error burst moves the error-rate SPC
    chart too); credited to it, never false alarms, not required. ``requires``: PromQL that
    returns data once the engine behind the alerts runs; when it returns nothing at the end of
    the run, a missing alert is reported as "engine not running", not as a miss. ``series``:
    PromQL for the report's plot, first one with data wins; ``{feature}`` and ``{w}`` (the
    compressed 5-minute window) are filled in; ``series_label`` names them, ``|``-separated.
    """

    key: str
    title: str
    feature: str
    start_min: float
    duration_min: float
    injected: str
    alerts: tuple[str, ...]
    series: tuple[str, ...]
    series_label: str
    where: str = "provider"  # "provider" (the fake LLM API) or "app" (the instrumented app)
    # required of `alerts`: a label's value, or the values it may have
    extra_labels: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)
    side_effects: tuple[str, ...] = ()
    requires: str | None = None
    # What the on-call does when it is over (the runbook's last step), done by the demo:
    # "refreeze_drift" re-freezes the feature's drift reference from the next prompts.
    after: str | None = None

    @property
    def end_min(self) -> float:
        return self.start_min + self.duration_min


WARMUP_MIN = 65.0  # the latency and cost baselines skip the last hour: history first
TAIL_MIN = 30.0  # the last incident's alerts arrive well before the end
LAG_MIN = 60.0  # an alert may reach the webhook this long after its incident ended


def _timeline(*spec: tuple[float, float]) -> list[tuple[float, float]]:
    """(duration, gap after) pairs -> (start, duration) after the warm-up."""
    out, at = [], WARMUP_MIN
    for duration, gap in spec:
        out.append((at, duration))
        at += duration + gap
    return out


# The abandonment surge lasts 90 minutes: its risk gauge needs most of an hour of the surge's
# calls in its window, then the alert's `for: 30m`. 40 minutes after the topic shift: the
# on-call's refreeze takes its new drift reference from the next 150 support-chat prompts,
# about 20 real seconds of traffic (not compressed); a reference frozen while the surge began
# held its prompt mix, and the returning normal prompts then drifted (LLMPulseInputDrift).
_T = _timeline(
    (20, 10), (40, 10), (40, 10), (60, 10), (30, 40), (90, 10), (25, 10), (20, 10), (20, 10), (60, 0)
)  # fmt: skip

INCIDENTS: tuple[Incident, ...] = (
    Incident(
        "error_burst",
        "provider error burst",
        "support-chat",
        *_T[0],
        "35% of gpt-4o-mini calls answered HTTP 500/503",
        ("LLMPulseErrorRateHigh",),
        ('sum(feature_model:llmpulse_error_ratio:rate5m{{feature="{feature}"}})',),
        "error ratio",
        # the slow error-budget burn (30m/6h) outlasts the fast page by design
        side_effects=("LLMPulseQualitySPCAlarm", "LLMPulseErrorBudgetBurnSlow"),
    ),
    Incident(
        "retrieval_slowdown",
        "retrieval slowdown",
        "doc-qa",
        *_T[1],
        "retrieval step 250 ms -> 1.2 s (the vector store is slow)",
        ("LLMPulseStepLatencyHigh",),
        (
            'feature_step:llmpulse_step_duration_seconds:histogram_quantile5m{{feature="{feature}",step="retrieval"}}',
        ),
        "retrieval p95 (s)",
        where="app",
        extra_labels={"step": "retrieval"},
    ),
    Incident(
        "quality_regression",
        "quality regression (worse model answering)",
        "support-chat",
        *_T[2],
        "a weaker model answers: short, vague, wrong answers (judge scores 1-2)",
        ("LLMPulseQualityScoreDrop", "LLMPulseQualitySPCAlarm"),
        (
            'llmpulse_spc_ewma{{feature="{feature}",statistic="judge_score"}}',
            'sum(rate(gen_ai_client_token_usage_sum{{feature="{feature}",token_type="output"}}[{w}]))'
            ' / sum(rate(gen_ai_client_token_usage_count{{feature="{feature}",token_type="output"}}[{w}]))',
        ),
        "judge score EWMA|output tokens per call",
        # the weaker model answers under its own name: the model-change alert is right too
        side_effects=("LLMPulseOutputDrift", "LLMPulseQualitySPCAlarm", "LLMPulseResponseModelChanged"),
        requires="llmpulse_judge_score_count",
    ),
    Incident(
        "cost_spike",
        "cost spike (prompt bloat)",
        "doc-qa",
        *_T[3],
        "a prompt change stuffs 10x more retrieved context into every gpt-4o call",
        ("LLMPulseCostPerHourAnomaly",),
        ('feature:llmpulse_cost_usd_per_hour:rate5m{{feature="{feature}"}}',),
        "USD per hour",
        where="app",
        side_effects=("LLMPulseQualitySPCAlarm",),
    ),
    Incident(
        "topic_shift",
        "topic shift in user questions",
        "support-chat",
        *_T[4],
        "users start asking about a product launch the knowledge base does not cover",
        ("LLMPulseInputSimilarityDrop", "LLMPulseInputDrift"),
        (
            'llmpulse_drift_similarity_ewma{{feature="{feature}"}}',
            'llmpulse_drift_score{{feature="{feature}",signal="input"}}',
            'sum(rate(gen_ai_client_token_usage_sum{{feature="{feature}",token_type="input"}}[{w}]))'
            ' / sum(rate(gen_ai_client_token_usage_count{{feature="{feature}",token_type="input"}}[{w}]))',
        ),
        "similarity EWMA|input drift score (MMD²)|input tokens per call",
        where="app",
        requires="llmpulse_drift_similarity_ewma",
        after="refreeze_drift",
    ),
    Incident(
        "abandonment_surge",
        "abandonment surge, happy explicit feedback",
        "support-chat",
        *_T[5],
        "55% of users abandon; the few who click thumbs are 95% happy",
        ("LLMPulseSurvivorshipBiasRisk",),
        (
            'llmpulse_user_survivorship_risk{{feature="{feature}"}}',
            'sum(rate(llmpulse_feedback_total{{feature="{feature}",kind="abandoned"}}[{w}]))'
            ' / sum(feature_model:llmpulse_requests:rate5m{{feature="{feature}"}})',
        ),
        "survivorship risk|abandoned per call",
        where="app",
        # the users who abandon end their conversation: the session alerts see it too; and the
        # prompts are then mostly first questions (other openers than follow-ups): an input mix
        # the drift test may tell from the usual one
        side_effects=(
            "LLMPulseSessionAbandonmentHigh",
            "LLMPulseSessionSurvivorshipBiasRisk",
            "LLMPulseInputDrift",
        ),
        requires="llmpulse_user_survivorship_risk",
    ),
    Incident(
        "silent_model_change",
        "silent model change",
        "summarize",
        *_T[6],
        "claude-haiku-4-5 calls answered by claude-3-5-haiku",
        ("LLMPulseResponseModelChanged",),
        ('sum(feature_model_response_model:llmpulse_model_mismatch:rate5m{{feature="{feature}"}})',),
        "mismatched answers/s",
    ),
    Incident(
        "tool_failure",
        "a tool starts failing",
        "trip-agent",
        *_T[7],
        f"60% of the agent's {AGENT_TOOL} tool calls time out (the flight search backend is down)",
        ("LLMPulseToolErrorRateHigh",),
        (
            f'sum(rate(llmpulse_tool_errors_total{{{{tool="{AGENT_TOOL}"}}}}[{{w}}]))'
            f' / sum(rate(llmpulse_tool_calls_total{{{{tool="{AGENT_TOOL}"}}}}[{{w}}]))',
        ),
        "tool error ratio",
        where="app",
        extra_labels={"tool": AGENT_TOOL},
    ),
    Incident(
        "agent_loop",
        "an agent that loops",
        "trip-agent",
        *_T[8],
        f"the {AGENT} agent calls {AGENT_TOOL} with the same arguments {LOOP_REPEATS} times per run",
        ("LLMPulseAgentRunaway",),
        (
            f'sum(increase(llmpulse_agent_runaway_runs_total{{{{agent="{AGENT}"}}}}[{{w}}]))',
            f'sum(rate(llmpulse_agent_run_tool_calls_sum{{{{agent="{AGENT}"}}}}[{{w}}]))'
            f' / sum(rate(llmpulse_agent_run_tool_calls_count{{{{agent="{AGENT}"}}}}[{{w}}]))',
        ),
        "runaway runs|tool calls per run",
        where="app",
        # A looping run is caught while it is still open, before its agent span has arrived:
        # its calls carry llmpulse.agent.name, so it is counted under its agent (docs/agents.md).
        extra_labels={"agent": AGENT},
        # about three times the LLM calls per run: the feature's cost per hour and SPC windows move too
        side_effects=("LLMPulseCostPerHourAnomaly", "LLMPulseQualitySPCAlarm"),
    ),
    Incident(
        "first_answer_exit",
        "users leave after the first answer",
        "support-chat",
        *_T[9],
        "60% of conversations end after the first answer, silently: no thumbs, no abandon signal",
        ("LLMPulseSessionAbandonmentHigh",),
        (
            'sum(increase(llmpulse_sessions_abandoned_total{{feature="{feature}"}}[{w}]))'
            ' / sum(increase(llmpulse_sessions_total{{feature="{feature}"}}[{w}]))',
            'sum(rate(llmpulse_feedback_total{{feature="{feature}",kind="abandoned"}}[{w}]))'
            ' / sum(feature_model:llmpulse_requests:rate5m{{feature="{feature}"}})',
        ),
        "sessions ended after the first answer|abandoned per call",
        where="app",
        # the few who stay and rate are as happy as ever: the session survivorship risk is right
        # too; mostly first questions, as in the abandonment surge: the input drift test too
        side_effects=("LLMPulseSessionSurvivorshipBiasRisk", "LLMPulseInputDrift"),
        requires="llmpulse_sessions_total",
    ),
)

TOTAL_MIN: float = INCIDENTS[-1].end_min + TAIL_MIN


@dataclass(frozen=True)
class Schedule:
    """The incident table played at ``speed`` simulated seconds per real second."""

    speed: float
    incidents: tuple[Incident, ...] = INCIDENTS
    total_min: float = TOTAL_MIN

    def seconds(self, sim_minutes: float) -> float:
        """Real seconds for ``sim_minutes`` simulated minutes."""
        return sim_minutes * 60.0 / self.speed

    @property
    def duration_s(self) -> float:
        return self.seconds(self.total_min)

    def active(self, elapsed_s: float) -> list[Incident]:
        """Incidents running ``elapsed_s`` real seconds after the start."""
        minute = elapsed_s * self.speed / 60.0
        return [i for i in self.incidents if i.start_min <= minute < i.end_min]

    def window(self, incident: Incident) -> tuple[float, float]:
        """Real seconds after the start during which an alert is credited to ``incident``: from
        its start until :data:`LAG_MIN` after its end (windows lag: a drift test's current
        window still holds the incident's samples a while after it ended)."""
        return self.seconds(incident.start_min), self.seconds(incident.end_min + LAG_MIN)


class ScenarioState:
    """The set of running incidents, shared with the in-process fake provider (directly) and
    with the app subprocess (through a small JSON file replaced atomically)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._active: frozenset[str] = frozenset()
        self._write()

    @property
    def path(self) -> Path:
        return self._path

    @property
    def active(self) -> frozenset[str]:
        with self._lock:
            return self._active

    def set_active(self, keys: Iterable[str]) -> bool:
        """Record the running incidents; True when that changed anything."""
        new = frozenset(keys)
        with self._lock:
            if new == self._active:
                return False
            self._active = new
        self._write()
        return True

    def stop_app(self) -> None:
        """Tell the app to finish its in-flight requests and exit."""
        self._write(stop=True)

    def _write(self, *, stop: bool = False) -> None:
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"active": sorted(self.active), "stop": stop}))
        os.replace(tmp, self._path)


def read_active(path: Path) -> tuple[frozenset[str], bool]:
    """(running incident keys, stop requested) as written by :class:`ScenarioState`."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return frozenset(), False
    return frozenset(document.get("active", ())), bool(document.get("stop", False))
