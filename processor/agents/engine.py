"""The agents engine: agent runs, tool calls and sessions from the processor's records.

:class:`AgentEngine` is a record listener (:class:`~llmpulse.processor.pipeline.queue.RecordListener`
with the optional ``on_step``, ``on_agent`` and ``on_other``): every LLM call, tool span, agent
or chain span and link span goes to the :class:`~llmpulse.processor.agents.runs.RunTracker`, and
every span with a conversation id to the :class:`~llmpulse.processor.agents.sessions.SessionTracker`.
:meth:`tick` (once a second from the extension) counts the runs whose grace has passed and
closes idle sessions; their figures go to :class:`~llmpulse.processor.agents.metrics.AgentMetrics`.
Tool calls are counted per tool as they arrive. Feedback given in a conversation counts for
its session; a closed session sampled for judging goes, as a transcript, to ``session_judge``
(:data:`SessionJudge`, wired to the quality engine's judge by :mod:`llmpulse.processor.engines`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from llmpulse.processor.agents import metric_names as N
from llmpulse.processor.agents.capture import SessionCapture, record_of
from llmpulse.processor.agents.loops import LoopTracker
from llmpulse.processor.agents.metrics import AgentMetrics, outcome_of
from llmpulse.processor.agents.runs import OpenRunaway, RunResult, RunTracker
from llmpulse.processor.agents.sessions import Session, SessionTracker
from llmpulse.processor.agents.settings import AgentSettings
from llmpulse.processor.metrics.derived import LabelCap
from llmpulse.processor.metrics.names import OUTCOME_ERROR, UNKNOWN_VALUE
from llmpulse.processor.pipeline.records import AgentSpan, Feedback, LLMCall, StepRun
from llmpulse.processor.quality.types import QualitySample

__all__ = ["AgentEngine", "SessionJudge"]

_FAILED_ANSWER = "(no answer: the call failed)"


class SessionJudge(Protocol):
    """Takes a closed session to judge; returns whether it was queued."""

    def __call__(
        self,
        service: str,
        feature: str,
        conversation_id: str,
        *,
        trace_id: bytes,
        messages: list[dict[str, Any]],
        end_ns: int,
    ) -> bool:
        """``messages``: the conversation as semconv messages, oldest first; ``trace_id``: its
        last turn's; ``end_ns``: its last span's end."""
        ...


class AgentEngine:
    """Agent runs, tools and sessions, on the processor's event loop (no locks)."""

    def __init__(
        self,
        settings: AgentSettings | None = None,
        *,
        metrics: AgentMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_label_values: int = 100,
        session_judge: SessionJudge | None = None,
        capture: SessionCapture | None = None,
    ) -> None:
        self.settings = settings if settings is not None else AgentSettings()
        self.session_judge = session_judge
        self.capture = capture
        self.metrics = metrics if metrics is not None else AgentMetrics()
        self.runs = RunTracker(self.settings, clock)
        self.loops = LoopTracker(
            self.settings,
            clock,
            is_agentic=self.runs.is_agentic,
            has_span=self.runs.has_span,
            evictions=self.runs.evictions,
        )
        self.sessions = SessionTracker(self.settings, clock)
        self._service = LabelCap("service", max_label_values)
        self._environment = LabelCap("deployment_environment", max_label_values)
        self._agent = LabelCap(N.AGENT, max_label_values)
        self._tool = LabelCap(N.TOOL, max_label_values)
        self._feature = LabelCap("feature", max_label_values)
        self.runaway_recent: list[dict[str, Any]] = []  # the last runaway runs, for /api/status

    # --- the listener -----------------------------------------------------------------
    def on_call(self, call: LLMCall, span: Any | None) -> None:
        """An LLM call: to its run (by parent span id), to a tool-call loop, to its session."""
        loops = self.loops
        loops.add_call(call)
        if loops.raised:
            self._count_open(call.service, call.environment, call.end_ns, loops.take_raised())
        conversation = call.conversation_id
        if not conversation and not call.parent_span_id:
            return  # a plain call (no run above it, no session): nothing for this engine
        error = call.outcome == OUTCOME_ERROR
        cost = call.cost_usd or 0.0
        self.runs.add_call(
            call.trace_id,
            call.parent_span_id,
            input_tokens=call.input_tokens or 0,
            output_tokens=call.output_tokens or 0,
            cost_usd=cost,
            error=error,
            agent=call.run_agent,
        )
        if self.runs.raised:
            self._count_open(call.service, call.environment, call.end_ns, self.runs.take_raised())
        if conversation:
            end = call.end_ns
            session = self.sessions.observe(
                call.service,
                call.environment,
                conversation,
                feature=call.feature,
                trace_id=call.trace_id,
                start_ns=end - round(call.duration_s * 1e9),
                end_ns=end,
                cost_usd=cost,
                answered=not error,
            )
            if session.transcript is not None:
                self.sessions.add_call(
                    session,
                    call.trace_id,
                    start_ns=end - round(call.duration_s * 1e9),
                    end_ns=end,
                    model=call.model,
                    input_tokens=call.input_tokens or 0,
                    output_tokens=call.output_tokens or 0,
                    cost_usd=cost,
                    error=error,
                    text=_text_of(call, error),
                )

    def promote(self, sample: QualitySample) -> None:
        """A flagged call of a conversation (from the quality engine): with session capture on,
        its open session keeps its turns from this call on, though it was not sampled."""
        if self.capture is None or sample.output_text is None:
            return
        session = self.sessions.promote(
            sample.service, sample.environment, sample.conversation_id, sample.trace_id
        )
        if session is None:
            return
        end = round(sample.timestamp * 1e9)
        self.sessions.add_call(
            session,
            sample.trace_id,
            start_ns=end - round((sample.duration_s or 0.0) * 1e9),
            end_ns=end,
            model=sample.model,
            input_tokens=sample.input_tokens or 0,
            output_tokens=sample.output_tokens or 0,
            cost_usd=sample.cost_usd or 0.0,
            error=sample.is_error,
            text=(_last_user(sample.input_messages), sample.output_text),
        )

    def on_feedback(self, feedback: Feedback, span: Any | None) -> None:
        """Feedback given in a conversation: counted for its open session."""
        if feedback.conversation_id:
            self.sessions.feedback(
                self._service(feedback.service),
                feedback.environment,
                feedback.conversation_id,
                feedback.kind,
                feedback.sentiment,
            )

    def on_step(self, step: StepRun, span: Any) -> None:
        """A step: a tool call is counted per tool and under its run; any other step is a link."""
        name = step.tool
        if not name:
            self.runs.add_other(span.trace_id, span.span_id, span.parent_span_id)
            return
        labels = (self._service(step.service), self._environment(step.environment), self._tool(name))
        series = self.metrics.tool_series(labels)
        series.calls += 1
        if step.error:
            series.errors += 1
        series.duration.observe_traced(step.duration_s, step.trace_id, step.end_ns)
        arguments = step.tool_arguments
        repeat_key = None if arguments is None else hash((name, arguments))
        self.runs.add_tool(
            span.trace_id, span.span_id, span.parent_span_id, repeat_key, step.error, agent=step.run_agent
        )
        if self.runs.raised:
            self._count_open(step.service, step.environment, step.end_ns, self.runs.take_raised())

    def on_agent(self, agent: AgentSpan, span: Any) -> None:
        """An agent run, workflow or chain span."""
        self.runs.add_agent(agent)
        if self.runs.raised:
            self._count_open(agent.service, agent.environment, agent.end_ns, self.runs.take_raised())
        if agent.conversation_id:
            self.sessions.observe(
                self._service(agent.service),
                agent.environment,
                agent.conversation_id,
                feature=self._feature(agent.feature) if agent.feature else "",
                trace_id=agent.trace_id,
                start_ns=agent.start_ns,
                end_ns=agent.end_ns,
            )

    def on_other(self, span: Any, service: str, environment: str) -> None:
        """A span of another kind: a possible link between a run and its calls."""
        self.runs.add_other(span.trace_id, span.span_id, span.parent_span_id)
        if self.runs.raised:
            self._count_open(service, environment, span.end_time_unix_nano, self.runs.take_raised())

    # --- housekeeping -----------------------------------------------------------------
    def tick(self) -> None:
        """Count the runs whose grace has passed and the sessions that closed."""
        self.loops.tick()  # first: a loop closing now asks the run tracker about its trace
        self.runs.tick()
        self.sessions.tick()
        self._apply()

    def flush(self) -> None:
        """Count everything still pending (at shutdown)."""
        self.loops.flush()
        self.runs.flush()
        self.sessions.flush()
        self._apply()

    def _apply(self) -> None:
        m = self.metrics
        for result in self.runs.take():
            self._count_run(result)
        for result in self.loops.take():
            self._count_run(result)
        for session in self.sessions.take():
            self._count_session(session)
        m.unattributed.update(self.runs.unattributed)
        m.evictions.update(self.runs.evictions)
        m.evictions[N.EVICT_SESSION_CAP] = self.sessions.evicted
        m.evictions[N.EVICT_JUDGE_CAP] = self.sessions.judge_cap_refused
        if self.capture is not None:
            m.evictions[N.EVICT_SESSION_STORE] = self.capture.evicted
            m.evictions[N.EVICT_SESSION_QUEUE] = self.capture.refused
        m.feedback_unmatched = self.sessions.feedback_unmatched
        m.pending_traces = self.runs.pending_traces
        m.sessions_active = self.sessions.active

    def _count_run(self, result: RunResult) -> None:
        span, totals = result.span, result.totals
        labels = (self._service(span.service), self._environment(span.environment), self._agent(span.name))
        s = self.metrics.run_series(labels)
        key = (result.kind, outcome_of(span.error))
        s.runs[key] = s.runs.get(key, 0) + 1
        trace, end = span.trace_id, span.end_ns
        s.duration.observe_traced(result.duration_s, trace, end)
        s.llm_calls.observe_traced(totals.llm_calls, trace, end)
        s.tool_calls.observe_traced(totals.tool_calls, trace, end)
        s.tokens.observe(totals.input_tokens + totals.output_tokens)
        s.cost.observe_traced(totals.cost_usd, trace, end)
        for reason in result.runaway:
            self._runaway(
                s,
                labels=labels,
                reason=reason,
                trace=trace,
                end=end,
                llm_calls=totals.llm_calls,
                tool_calls=totals.tool_calls,
                max_repeat=totals.max_repeat,
                open_run=False,
            )

    def _count_open(self, service: str, environment: str, end_ns: int, raised: list[OpenRunaway]) -> None:
        """Runaway found in runs still open: counted now, with the trace id as exemplar, under the
        agent the run's calls name (``llmpulse.agent.name``, a peer's ``gen_ai.agent.name``, a
        tool-call loop's feature), or ``unknown`` when none does (the run's own span, which names
        it, has not arrived)."""
        service, environment = self._service(service), self._environment(environment)
        for found in raised:
            labels = (service, environment, self._agent(found.agent) if found.agent else UNKNOWN_VALUE)
            s = self.metrics.run_series(labels)
            for reason in found.reasons:
                self._runaway(
                    s,
                    labels=labels,
                    reason=reason,
                    trace=found.trace_id,
                    end=end_ns,
                    llm_calls=found.llm_calls,
                    tool_calls=found.tool_calls,
                    max_repeat=found.max_repeat,
                    open_run=True,
                )

    def _runaway(
        self,
        s: Any,
        *,
        labels: tuple[str, str, str],
        reason: str,
        trace: bytes,
        end: int,
        llm_calls: int,
        tool_calls: int,
        max_repeat: int,
        open_run: bool,
    ) -> None:
        entry = s.runaway.get(reason)
        if entry is None:
            s.runaway[reason] = [1, trace, end]
        else:
            entry[0] += 1
            entry[1], entry[2] = trace, end
        self.runaway_recent.append(
            {
                "service": labels[0],
                "agent": labels[2],
                "reason": reason,
                "trace_id": trace.hex(),
                "llm_calls": llm_calls,
                "tool_calls": tool_calls,
                "max_repeated_tool_calls": max_repeat,
                "open": open_run,
            }
        )
        del self.runaway_recent[:-20]

    def _count_session(self, session: Session) -> None:
        feature = self._feature(session.feature or UNKNOWN_VALUE)
        labels = (self._service(session.service), self._environment(session.environment), feature)
        s = self.metrics.session_series(labels)
        s.sessions += 1
        if session.abandoned:
            s.abandoned += 1
        s.corrected += session.corrections > 0
        s.followed_up += session.follow_ups > 0
        s.with_feedback += session.explicit > 0
        s.feedback_positive += session.feedback_positive
        s.turns.observe(session.turns)
        s.duration.observe(session.duration_s)
        s.cost.observe(session.cost_usd)
        if session.transcript is not None:
            if self.capture is not None and any(t.content for t in session.transcript.values()):
                self.capture.save(record_of(session, labels[0], feature))  # before its verdict can come
            if session.promoted:
                return  # kept for a flagged call, not sampled: not judged
            outcome = self._judge_session(session, labels[0], feature)
            s.judge[outcome] = s.judge.get(outcome, 0) + 1

    def _judge_session(self, session: Session, service: str, feature: str) -> str:
        transcript = session.transcript
        if not session.judgeable or not transcript:
            return N.SESSION_JUDGE_INCOMPLETE
        if self.session_judge is None:
            return N.SESSION_JUDGE_NO_JUDGE
        messages: list[dict[str, Any]] = []
        for turn in transcript.values():
            if turn.user:
                messages.append({"role": "user", "parts": [{"type": "text", "content": turn.user}]})
            messages.append({"role": "assistant", "parts": [{"type": "text", "content": turn.answer}]})
        last = next(reversed(transcript))
        queued = self.session_judge(
            service,
            feature,
            session.conversation_id,
            trace_id=last,
            messages=messages,
            end_ns=session.last_ns,
        )
        return N.SESSION_JUDGE_OFFERED if queued else N.SESSION_JUDGE_NO_JUDGE

    def status(self) -> dict[str, Any]:
        """The ``agents`` section of ``/api/status``."""
        m = self.metrics
        agents = {}
        for (service, environment, agent), s in sorted(m.runs.items()):
            runs = sum(s.runs.values())
            errors = sum(n for (_kind, outcome), n in s.runs.items() if outcome == OUTCOME_ERROR)
            agents[f"{service}/{agent}" + (f"@{environment}" if environment else "")] = {
                "runs": runs,
                "errors": errors,
                "runaway": {reason: entry[0] for reason, entry in s.runaway.items()},
                "mean_llm_calls": round(s.llm_calls.sum / runs, 3) if runs else None,
                "mean_cost_usd": round(s.cost.sum / runs, 6) if runs else None,
            }
        return {
            "agents": agents,
            "tools": {
                f"{service}/{tool}": {"calls": t.calls, "errors": t.errors}
                for (service, _env, tool), t in sorted(m.tools.items())
            },
            "sessions": {
                f"{service}/{feature}": {
                    "closed": ss.sessions,
                    "abandoned": ss.abandoned,
                    "corrected": ss.corrected,
                    "followed_up": ss.followed_up,
                    "with_feedback": ss.with_feedback,
                    "feedback_positive": ss.feedback_positive,
                    "judge": dict(ss.judge),
                }
                for (service, _env, feature), ss in sorted(m.sessions.items())
            },
            "session_feedback_unmatched": m.feedback_unmatched,
            "captured_sessions": None
            if self.capture is None
            else {
                "stored": self.capture.stored,
                "verdicts": self.capture.verdicts,
                "dropped_from_store": self.capture.evicted,
                "refused_queue_full": self.capture.refused,
            },
            "runaway_recent": list(self.runaway_recent),
            "pending_traces": m.pending_traces,
            "open_tool_loops": self.loops.open_loops,
            "sessions_active": m.sessions_active,
            "unattributed": dict(m.unattributed),
            "evictions": dict(m.evictions),
        }


def _last_user(messages: list[dict[str, Any]] | None) -> str:
    """The text of the last user message of semconv ``messages`` ("" when none)."""
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            parts = message.get("parts")
            if isinstance(parts, list):
                return "\n".join(
                    str(p.get("content", ""))
                    for p in parts
                    if isinstance(p, dict) and p.get("type") == "text"
                )
            return str(message.get("content", ""))
    return ""


def _text_of(call: LLMCall, error: bool) -> tuple[str, str] | None:
    """(last user message, answer) of a call that carried content; None without."""
    content = call.content
    if content is None:
        return None
    answer = content.output_text()
    if answer is None and error:
        answer = _FAILED_ANSWER
    return None if answer is None else (content.last_user_text(), answer)
