"""The agents engine's aggregates and their exposition, built on each scrape.

Updates are plain arithmetic on per-series objects (one dict lookup), as in
:mod:`llmpulse.processor.metrics.derived`, whose :class:`~llmpulse.processor.metrics.derived.Histogram`
(with one exemplar per bucket) is reused. The runaway counter carries the trace id of the latest
runaway run as its exemplar (OpenMetrics exposition only). Like the processor's own metrics, a
series is exposed at zero on its first scrape and with its counts from the next one on, so the
first runaway run of a new agent reaches ``increase()`` in a rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar

from llmpulse.processor.agents import metric_names as N
from llmpulse.processor.metrics.derived import Histogram
from llmpulse.processor.metrics.names import OUTCOME_ERROR, OUTCOME_OK

__all__ = ["AgentMetrics", "AgentsCollector"]

Labels = tuple[str, str, str]  # service, deployment_environment, and agent | tool | feature


class RunSeries:
    """Everything counted for the runs of one agent."""

    __slots__ = ("cost", "duration", "llm_calls", "runaway", "runs", "tokens", "tool_calls")

    def __init__(self) -> None:
        self.runs: dict[tuple[str, str], int] = {}  # (kind, outcome) -> runs
        self.duration = Histogram(N.RUN_SECONDS_BUCKETS)
        self.llm_calls = Histogram(N.CALLS_BUCKETS)
        self.tool_calls = Histogram(N.CALLS_BUCKETS)
        self.tokens = Histogram(N.AGENTS_METRICS_BY_NAME[N.AGENT_RUN_TOKENS].buckets)
        self.cost = Histogram(N.COST_BUCKETS)
        self.runaway: dict[str, list[Any]] = {}  # reason -> [runs, exemplar trace id, exemplar time ns]


class ToolSeries:
    """Calls, errors and durations of one tool."""

    __slots__ = ("calls", "duration", "errors")

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self.duration = Histogram(N.TOOL_SECONDS_BUCKETS)


class SessionSeries:
    """Closed sessions of one feature."""

    __slots__ = (
        "abandoned",
        "corrected",
        "cost",
        "duration",
        "feedback_positive",
        "followed_up",
        "judge",
        "sessions",
        "turns",
        "with_feedback",
    )

    def __init__(self) -> None:
        self.sessions = 0
        self.abandoned = 0
        self.corrected = 0
        self.followed_up = 0
        self.with_feedback = 0
        self.feedback_positive = 0
        self.judge: dict[str, int] = {}  # outcome -> sampled sessions
        self.turns = Histogram(N.TURNS_BUCKETS)
        self.duration = Histogram(N.SESSION_SECONDS_BUCKETS)
        self.cost = Histogram(N.COST_BUCKETS)


class AgentMetrics:
    """The aggregates behind every agents metric (per agent, per tool, per session feature)."""

    def __init__(self) -> None:
        self.runs: dict[Labels, RunSeries] = {}
        self.tools: dict[Labels, ToolSeries] = {}
        self.sessions: dict[Labels, SessionSeries] = {}
        self.unattributed: dict[str, int] = dict.fromkeys(N.UNATTRIBUTED_REASONS, 0)
        self.evictions: dict[str, int] = dict.fromkeys(N.EVICT_REASONS, 0)
        self.pending_traces = 0
        self.sessions_active = 0
        self.feedback_unmatched = 0

    def run_series(self, labels: Labels) -> RunSeries:
        """The series of one agent, created on first use."""
        series = self.runs.get(labels)
        if series is None:
            series = self.runs[labels] = RunSeries()
        return series

    def tool_series(self, labels: Labels) -> ToolSeries:
        """The series of one tool, created on first use."""
        series = self.tools.get(labels)
        if series is None:
            series = self.tools[labels] = ToolSeries()
        return series

    def session_series(self, labels: Labels) -> SessionSeries:
        """The series of one feature's sessions, created on first use."""
        series = self.sessions.get(labels)
        if series is None:
            series = self.sessions[labels] = SessionSeries()
        return series


def _family(name: str) -> Any:
    spec = N.AGENTS_METRICS_BY_NAME[name]
    if spec.type == "counter":
        return CounterMetricFamily(spec.family, spec.help, labels=list(spec.labels))
    if spec.type == "gauge":
        return GaugeMetricFamily(spec.family, spec.help, labels=list(spec.labels))
    return HistogramMetricFamily(spec.family, spec.help, labels=list(spec.labels))


class AgentsCollector(Collector):
    """Exposes :class:`AgentMetrics`; a series new to this collector is shown at zero once."""

    def __init__(self, metrics: AgentMetrics) -> None:
        self._metrics = metrics
        self._seen: set[tuple[str, tuple[str, ...]]] = set()

    def _new(self, family: Any, labels: list[str]) -> bool:
        key = (family.name, tuple(labels))
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def _counter(
        self, family: Any, labels: list[str], value: float, exemplar: Exemplar | None = None
    ) -> None:
        if self._new(family, labels):
            family.add_metric(labels, 0)
        else:
            family.add_metric(labels, value, exemplar=exemplar)

    def _histogram(self, family: Any, labels: list[str], hist: Histogram) -> None:
        if self._new(family, labels):
            family.add_metric(labels, [(le, 0) for le, *_ in hist.buckets()], 0.0)
        else:
            family.add_metric(labels, hist.buckets(), hist.sum)

    def collect(self) -> Iterator[Any]:
        """Every family from the current aggregates."""
        m = self._metrics
        runs, runaway = _family(N.AGENT_RUNS_TOTAL), _family(N.AGENT_RUNAWAY_RUNS_TOTAL)
        duration, llm_calls = _family(N.AGENT_RUN_DURATION), _family(N.AGENT_RUN_LLM_CALLS)
        tool_calls, tokens, cost = (
            _family(N.AGENT_RUN_TOOL_CALLS),
            _family(N.AGENT_RUN_TOKENS),
            _family(N.AGENT_RUN_COST),
        )
        for labels, s in list(m.runs.items()):
            lv = list(labels)
            for (kind, outcome), n in list(s.runs.items()):
                self._counter(runs, [*lv, kind, outcome], n)
            for hist, family in (
                (s.duration, duration),
                (s.llm_calls, llm_calls),
                (s.tool_calls, tool_calls),
                (s.tokens, tokens),
                (s.cost, cost),
            ):
                self._histogram(family, lv, hist)
            for reason, (n, trace, time_ns) in list(s.runaway.items()):
                exemplar = Exemplar({"trace_id": trace.hex()}, n, time_ns / 1e9)
                self._counter(runaway, [*lv, reason], n, exemplar)
        yield from (runs, duration, llm_calls, tool_calls, tokens, cost, runaway)
        calls, errors, tool_duration = (
            _family(N.TOOL_CALLS_TOTAL),
            _family(N.TOOL_ERRORS_TOTAL),
            _family(N.TOOL_DURATION),
        )
        for labels, t in list(m.tools.items()):
            lv = list(labels)
            self._counter(calls, lv, t.calls)
            self._counter(errors, lv, t.errors)
            self._histogram(tool_duration, lv, t.duration)
        yield from (calls, errors, tool_duration)
        sessions, abandoned = _family(N.SESSIONS_TOTAL), _family(N.SESSIONS_ABANDONED_TOTAL)
        turns, session_duration, session_cost = (
            _family(N.SESSION_TURNS),
            _family(N.SESSION_DURATION),
            _family(N.SESSION_COST),
        )
        signals = [
            (_family(N.SESSIONS_CORRECTED_TOTAL), "corrected"),
            (_family(N.SESSIONS_FOLLOWED_UP_TOTAL), "followed_up"),
            (_family(N.SESSIONS_WITH_FEEDBACK_TOTAL), "with_feedback"),
            (_family(N.SESSIONS_FEEDBACK_POSITIVE_TOTAL), "feedback_positive"),
        ]
        judge = _family(N.SESSION_JUDGE_SAMPLES_TOTAL)
        for labels, ss in list(m.sessions.items()):
            lv = list(labels)
            self._counter(sessions, lv, ss.sessions)
            self._counter(abandoned, lv, ss.abandoned)
            for family, attribute in signals:
                self._counter(family, lv, getattr(ss, attribute))
            self._histogram(turns, lv, ss.turns)
            self._histogram(session_duration, lv, ss.duration)
            self._histogram(session_cost, lv, ss.cost)
            for outcome, n in list(ss.judge.items()):
                self._counter(judge, [*lv, outcome], n)
        yield from (sessions, abandoned, turns, session_duration, session_cost, judge)
        yield from (family for family, _ in signals)
        unmatched = _family(N.SESSION_FEEDBACK_UNMATCHED_TOTAL)
        unmatched.add_metric([], m.feedback_unmatched)
        yield unmatched
        unattributed, evictions = _family(N.AGENT_UNATTRIBUTED_TOTAL), _family(N.AGENT_EVICTIONS_TOTAL)
        for reason, n in m.unattributed.items():
            unattributed.add_metric([reason], n)  # fixed label sets, shown from the start
        for reason, n in m.evictions.items():
            evictions.add_metric([reason], n)
        pending, active = _family(N.AGENT_PENDING_TRACES), _family(N.SESSIONS_ACTIVE)
        pending.add_metric([], m.pending_traces)
        active.add_metric([], m.sessions_active)
        yield from (unattributed, evictions, pending, active)

    def describe(self) -> Iterator[Any]:
        """No description: the families depend on the data (registry built with auto_describe=False)."""
        return iter(())


def outcome_of(error: bool) -> str:
    """The ``outcome`` label of a run."""
    return OUTCOME_ERROR if error else OUTCOME_OK
