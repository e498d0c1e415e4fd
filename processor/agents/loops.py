"""Tool-call loops without agent spans, recognised as runs from their LLM calls alone.

An app that hand-rolls ``while finish_reason == "tool_calls": run the tools; call again`` with
the plain openai or anthropic SDK makes LLM-call spans only. :class:`LoopTracker` groups the
consecutive calls of one trace under one parent span into an implicit run of kind
``tool_loop``; calls that are their traces' roots (a script with no span around its loop: each
call a trace of its own) are grouped by the loop id llmpulse's adapters put on them
(``llmpulse.tool_loop.id``, the same on every call of one loop) within their service, and a
root call without one is left alone:

* a loop **opens** at a call that asks for tools: its finish reason is ``tool_calls`` (every
  producer's spelling: ``llmpulse.finish_reason``, ``gen_ai.response.finish_reasons``,
  OpenInference's ``llm.finish_reason``, the anthropic SDK's stop reason), one of several
  ``gen_ai.response.finish_reasons`` is, or ``llmpulse.tool_calls.count`` says so;
* a call under the same key **continues** it; one of llmpulse's calls that carries no tool
  results (``llmpulse.tool_results.count``) while the loop's calls said what they asked for
  starts a new loop instead (the app began another question);
* it **closes** at a call that asks for no tools (or fails), or after ``trace_idle_s`` without
  a call; it is counted ``run_grace_s`` later once its parent span has arrived (that parent
  could be a run's span: spans of one trace can come in separate export batches), else
  ``trace_idle_s`` later; never when its trace turned out to have agent or tool spans (the runs
  those spans describe count the calls) or it has a single call.

Its agent is the calls' feature (``llmpulse.feature``; ``unknown`` without one), so the
per-agent caps of ``[agents.agent_caps.<feature>]`` apply. Tool calls per run are those the model
asked for: ``llmpulse.tool_calls.count`` where llmpulse's adapters wrote it, else the tool-call
reasons among several finish reasons, else one per call that finished with ``tool_calls`` (a
lower bound for parallel calls); repeated requests are
found by the per-call digests of name and arguments (``llmpulse.tool_calls.hashes``). Runaway
is found while the loop is open, at the call that passes a cap. At most
``max_pending_traces`` loops are open at once, and as many closed ones wait for their parent;
past either, the least recently active is closed, or the oldest closed one counted, for room
(``loop_cap``).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable

from llmpulse.contract.attributes import FINISH_TOOL_CALLS
from llmpulse.processor.agents import metric_names as N
from llmpulse.processor.agents.runs import Contribution, OpenRunaway, RunResult, runaway_reasons
from llmpulse.processor.agents.settings import AgentCap, AgentSettings
from llmpulse.processor.metrics.names import OUTCOME_ERROR
from llmpulse.processor.pipeline.records import AgentSpan, LLMCall

__all__ = ["LoopTracker"]


class _Loop:
    __slots__ = (
        "agent",
        "cap",
        "closed_at",
        "end_ns",
        "environment",
        "error",
        "knows_results",
        "last_seen",
        "parent",
        "service",
        "span_id",
        "start_ns",
        "totals",
        "trace_id",
    )

    def __init__(self, call: LLMCall, now: float, cap: AgentCap) -> None:
        self.cap = cap  # its agent's caps (its agent is known from its first call)
        # what names the run, from its first call (not the call itself: it may hold content)
        self.trace_id, self.parent, self.span_id = call.trace_id, call.parent_span_id, call.span_id
        self.service, self.environment, self.agent = call.service, call.environment, call.feature
        self.start_ns = call.end_ns - round(call.duration_s * 1e9)
        self.end_ns = call.end_ns
        self.last_seen = now
        self.closed_at = 0.0
        self.error = False
        # llmpulse's adapters say what a call asked for and whether its request answered a tool
        # (their digests: a peer's finish reasons give a count, never the digests)
        self.knows_results = bool(call.tool_request_hashes)
        self.totals = Contribution()


class LoopTracker:
    """Open and closing tool-call loops; everything on the processor's event loop."""

    def __init__(
        self,
        settings: AgentSettings,
        clock: Callable[[], float],
        *,
        is_agentic: Callable[[bytes], bool],
        has_span: Callable[[bytes, bytes], bool],
        evictions: dict[str, int],
    ) -> None:
        self.settings = settings
        self.evictions = evictions  # counted by reason (the run tracker's, so one table goes out)
        self._clock = clock
        self._is_agentic = is_agentic  # whether a trace has agent or tool spans (RunTracker's view)
        self._has_span = has_span  # whether a span of a trace arrived (the loop's parent)
        self._open: OrderedDict[tuple[bytes, bytes], _Loop] = OrderedDict()  # least recently active first
        self._closing: deque[_Loop] = deque()  # closed, oldest first, waiting for their parent
        self._results: list[RunResult] = []
        self.raised: list[OpenRunaway] = []
        self._default_cap = settings.cap_of("")  # built once: a loop per asking call looks it up

    @property
    def open_loops(self) -> int:
        """Loops open now."""
        return len(self._open)

    @property
    def waiting_loops(self) -> int:
        """Loops closed and waiting to be counted."""
        return len(self._closing)

    def add_call(self, call: LLMCall) -> None:
        """One LLM call (any: most return at the first test)."""
        parent = call.parent_span_id
        if not parent and not call.tool_loop_id:
            return  # a trace's root is its only root: no other call of the loop is in its trace
        asks = call.finish_reason == FINISH_TOOL_CALLS or call.tool_request_count > 0
        loops = self._open
        if not asks and not loops:
            return
        # roots: the loop's calls are in traces of their own, tied by the adapters' loop id
        key = (call.trace_id, parent) if parent else (call.service.encode(), call.tool_loop_id.encode())
        loop = loops.get(key)
        if loop is None and (not asks or call.run_agent):
            return  # not a loop; or a call that names its run's agent: its run has a span
        if self._is_agentic(call.trace_id):
            if loop is not None:
                del loops[key]  # the trace's own agent or tool spans describe this run
            return
        if loop is None:
            loop = self._start(key, call)
        elif loop.knows_results and call.tool_results is None:
            self._close(loops.pop(key))  # no tool results: another question under the same parent
            if not asks or call.run_agent:
                return
            loop = self._start(key, call)
        else:
            loop.last_seen = self._clock()
            loops.move_to_end(key)
        self._add(loop, call, asks)
        if not asks:
            self._close(loops.pop(key))

    def _start(self, key: tuple[bytes, bytes], call: LLMCall) -> _Loop:
        loops = self._open
        if len(loops) >= self.settings.max_pending_traces:
            _old_key, old = loops.popitem(last=False)
            if not self._is_agentic(old.trace_id):  # else its trace's own run spans count its calls
                self.evictions[N.EVICT_LOOP_CAP] += 1
            self._close(old)
        cap = self.settings.agent_caps.get(call.feature, self._default_cap)
        loop = loops[key] = _Loop(call, self._clock(), cap)
        return loop

    def _add(self, loop: _Loop, call: LLMCall, asks: bool) -> None:
        c = loop.totals
        c.llm_calls += 1
        c.spans += 1
        c.input_tokens += call.input_tokens or 0
        c.output_tokens += call.output_tokens or 0
        c.cost_usd += call.cost_usd or 0.0
        loop.end_ns = max(loop.end_ns, call.end_ns)
        loop.error = call.outcome == OUTCOME_ERROR
        if loop.error:
            c.llm_errors += 1
        requested = call.tool_request_count or (1 if asks else 0)
        c.tool_calls += requested
        max_keys = self.settings.max_tool_keys_per_run
        repeat = 0
        for digest in call.tool_request_hashes:
            repeat = max(repeat, c.add_repeat(hash(digest), max_keys))
        cap = loop.cap
        if (
            c.llm_calls > cap.llm_calls
            or c.tool_calls > cap.tool_calls
            or repeat >= self.settings.repeated_tool_calls
        ):
            self._check_open(loop)

    def _check_open(self, loop: _Loop) -> None:
        """Runaway found at the call that passes a cap: counted now, once per reason (the loop's
        agent is known from its first call, so its own caps apply)."""
        c = loop.totals
        found = runaway_reasons(self.settings, loop.agent, c)
        if not found:
            return
        c.raised = tuple(sorted({*c.raised, *found}))
        self.raised.append(
            OpenRunaway(
                loop.trace_id,
                key=loop.parent,
                reasons=found,
                llm_calls=c.llm_calls,
                tool_calls=c.tool_calls,
                max_repeat=c.max_repeat,
                agent=loop.agent,
            )
        )

    def _close(self, loop: _Loop) -> None:
        """To be counted after the grace, unless its trace has agent or tool spans by now (checked
        here, while the run tracker still holds the trace, and again when counted)."""
        if self._is_agentic(loop.trace_id):
            return
        loop.closed_at = self._clock()
        closing = self._closing
        closing.append(loop)
        if len(closing) > self.settings.max_pending_traces:  # bounded too: the oldest counted now
            self.evictions[N.EVICT_LOOP_CAP] += 1
            self._count(closing.popleft())

    def tick(self) -> None:
        """Close the loops idle for ``trace_idle_s``; count those closed ``run_grace_s`` ago."""
        now = self._clock()
        loops = self._open
        idle = self.settings.trace_idle_s
        while loops:
            key, loop = next(iter(loops.items()))
            if now - loop.last_seen < idle:
                break  # ordered by last activity: the rest are younger
            del loops[key]
            self._close(loop)
        grace = self.settings.run_grace_s
        waiting: deque[_Loop] = deque()
        for loop in self._closing:
            waited = now - loop.closed_at
            # the parent ends after the loop: once it is here, an agent span it might be has come
            # (a loop of roots has no parent to wait for)
            if waited >= idle or (
                waited >= grace and (not loop.parent or self._has_span(loop.trace_id, loop.parent))
            ):
                self._count(loop)
            else:
                waiting.append(loop)
        self._closing = waiting

    def flush(self) -> None:
        """Count every loop (at shutdown)."""
        while self._open:
            _key, loop = self._open.popitem(last=False)
            self._close(loop)
        for loop in self._closing:
            self._count(loop)
        self._closing.clear()

    def _count(self, loop: _Loop) -> None:
        c = loop.totals
        if c.llm_calls < 2 or self._is_agentic(loop.trace_id):
            return  # one call asked for tools and none followed; or the trace's spans describe its runs
        if c.keys_overflow:
            self.evictions[N.EVICT_TOOL_KEYS_CAP] += 1
        span = AgentSpan(
            N.KIND_TOOL_LOOP,
            loop.agent,
            trace_id=loop.trace_id,
            span_id=loop.parent or loop.span_id,
            parent_span_id=loop.parent,
            start_ns=loop.start_ns,
            end_ns=loop.end_ns,
            error=loop.error,
            feature=loop.agent,
            service=loop.service,
            environment=loop.environment,
        )
        self._results.append(
            RunResult(span, N.KIND_TOOL_LOOP, c, runaway_reasons(self.settings, loop.agent, c))
        )

    def take(self) -> list[RunResult]:
        """The loops counted since the last call."""
        results, self._results = self._results, []
        return results

    def take_raised(self) -> list[OpenRunaway]:
        """The open loops found runaway since the last call."""
        raised, self.raised = self.raised, []
        return raised
