"""Agent runs assembled from a trace's spans as they arrive, in bounded memory.

Spans end, and so arrive, children first: a run's LLM calls and tool calls come before the
``invoke_agent`` span that holds them. So :class:`RunTracker` keeps, per trace, what the spans
seen so far add up to *per parent span id* (:class:`Contribution`: calls, tokens, cost, tool calls
and errors, repeated (tool, arguments) pairs), the parent links of the spans that can have
children (tools, chains, spans of other kinds in an agent's trace) and the runs that ended. A run
is counted ``run_grace_s`` after its span arrived: then every contribution whose parent chain
reaches the run's span (and no nearer run) is added to it. A call is counted under its nearest
run only, so a sub-agent's calls count for the sub-agent.

Nothing grows without bound: at most ``max_pending_traces`` traces (the least recently active is
evicted), ``max_links_per_trace`` links per trace, ``max_tool_keys_per_run`` (tool, arguments)
pairs per run, and one :class:`Contribution` per distinct parent however many calls share it, so
a run of 10^5 tool calls costs a few hundred bytes. Whatever cannot be attributed is counted by
reason (:mod:`~llmpulse.processor.agents.metric_names`): a parent chain that ends at a span never
seen, parent ids that loop (found without a visited set: a walk longer than the trace's links
must repeat), a call that arrives after its run was counted, a call outside every run of a trace
that has runs, a trace evicted for room.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from llmpulse.processor.agents import metric_names as N
from llmpulse.processor.agents.settings import AgentSettings
from llmpulse.processor.pipeline.normalize import RUN_CHAIN, RUN_WORKFLOW
from llmpulse.processor.pipeline.records import AgentSpan

__all__ = ["Contribution", "OpenRunaway", "RunResult", "RunTracker", "runaway_reasons"]

_ROOT: Final = b""  # the parent id of a trace's root span


class Contribution:
    """What spans under one parent (or one whole run) add up to."""

    __slots__ = (
        "agent",
        "cost_usd",
        "input_tokens",
        "keys_overflow",
        "llm_calls",
        "llm_errors",
        "output_tokens",
        "raised",
        "repeats",
        "spans",
        "tool_calls",
        "tool_errors",
    )

    def __init__(self) -> None:
        self.llm_calls = 0
        self.llm_errors = 0
        self.tool_calls = 0
        self.tool_errors = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = 0.0
        self.spans = 0  # LLM and tool spans added
        self.repeats: dict[int, int] = {}  # hash of (tool, arguments) -> calls
        self.keys_overflow = False
        self.raised: tuple[str, ...] = ()  # runaway reasons already counted while the run was open
        self.agent = ""  # the run's agent as its calls name it (llmpulse.agent.name, ...); "" if none does

    def add_repeat(self, key: int, max_keys: int) -> int:
        """Count one call of a (tool, arguments) pair, within ``max_keys`` distinct pairs; returns
        the pair's calls so far (0 when it is past the cap)."""
        repeats = self.repeats
        n = repeats.get(key)
        if n is not None:
            repeats[key] = n = n + 1
            return n
        if len(repeats) < max_keys:
            repeats[key] = 1
            return 1
        self.keys_overflow = True
        return 0

    def merge(self, other: Contribution, max_keys: int) -> None:
        """Add ``other`` into this one."""
        self.llm_calls += other.llm_calls
        self.llm_errors += other.llm_errors
        self.tool_calls += other.tool_calls
        self.tool_errors += other.tool_errors
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd
        self.spans += other.spans
        self.keys_overflow = self.keys_overflow or other.keys_overflow
        if not self.agent:
            self.agent = other.agent
        if other.raised:
            self.raised = tuple(sorted({*self.raised, *other.raised}))
        for key, n in other.repeats.items():
            mine = self.repeats.get(key)
            if mine is not None:
                self.repeats[key] = mine + n
            elif len(self.repeats) < max_keys:
                self.repeats[key] = n
            else:
                self.keys_overflow = True

    @property
    def max_repeat(self) -> int:
        """Calls of the (tool, arguments) pair called most often."""
        return max(self.repeats.values(), default=0)


def runaway_reasons(settings: AgentSettings, agent: str, totals: Contribution) -> tuple[str, ...]:
    """Why a run of ``agent`` that added up to ``totals`` is runaway (its agent's caps, repeated
    (tool, arguments) pairs), leaving out the reasons counted already while it was open."""
    cap = settings.cap_of(agent)
    found: list[str] = []
    if totals.llm_calls > cap.llm_calls:
        found.append(N.RUNAWAY_LLM_CALLS)
    if totals.tool_calls > cap.tool_calls:
        found.append(N.RUNAWAY_TOOL_CALLS)
    if totals.max_repeat >= settings.repeated_tool_calls:
        found.append(N.RUNAWAY_REPEATED_TOOL_CALL)
    return tuple(r for r in found if r not in totals.raised)


class RunResult:
    """One counted run: its span, what its calls added up to, and why it is runaway (if it is)."""

    __slots__ = ("kind", "runaway", "span", "totals")

    def __init__(self, span: AgentSpan, kind: str, totals: Contribution, runaway: tuple[str, ...]) -> None:
        self.span = span
        self.kind = kind  # agent | workflow (a root chain counts as a workflow)
        self.totals = totals
        self.runaway = runaway

    @property
    def duration_s(self) -> float:
        """The run span's duration."""
        return max(0, self.span.end_ns - self.span.start_ns) / 1e9


class OpenRunaway:
    """A run found runaway before its span arrived: its trace, the span its calls hang under
    (the run's, or the nearest one not ended yet) and what it had done by then."""

    __slots__ = ("agent", "key", "llm_calls", "max_repeat", "reasons", "tool_calls", "trace_id")

    def __init__(
        self,
        trace_id: bytes,
        *,
        key: bytes,
        reasons: tuple[str, ...],
        llm_calls: int,
        tool_calls: int,
        max_repeat: int,
        agent: str = "",
    ) -> None:
        self.trace_id = trace_id
        self.key = key
        self.agent = agent  # as the run's calls name it; "" when none does
        self.reasons = reasons
        self.llm_calls = llm_calls
        self.tool_calls = tool_calls
        self.max_repeat = max_repeat


class _Run:
    __slots__ = ("done", "ended_at", "kind", "span", "totals")

    def __init__(self, span: AgentSpan, kind: str, ended_at: float) -> None:
        self.span = span
        self.kind = kind
        self.ended_at = ended_at
        self.done = False
        self.totals = Contribution()


class _Trace:
    __slots__ = ("agentic", "last_seen", "links_full", "parents", "pending", "runs", "waiting")

    def __init__(self, now: float) -> None:
        self.last_seen = now
        self.parents: dict[bytes, bytes] = {}  # span id -> parent span id (b"" for a root)
        self.pending: dict[bytes, Contribution] = {}  # parent span id -> what its children added
        self.runs: dict[bytes, _Run] = {}
        self.waiting = 0  # runs ended but not yet counted
        self.agentic = False  # had a tool, chain or run span
        self.links_full = False


_RUN, _MISSING, _ROOT_REACHED, _CYCLE = range(4)


class RunTracker:
    """Per-trace state from which runs are counted; everything on the processor's event loop."""

    def __init__(self, settings: AgentSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self._clock = clock
        self._traces: OrderedDict[bytes, _Trace] = OrderedDict()  # least recently active first
        self.unattributed = dict.fromkeys(N.UNATTRIBUTED_REASONS, 0)
        self.evictions = dict.fromkeys(N.EVICT_REASONS, 0)
        self._results: list[RunResult] = []  # runs counted since the last take()
        # A run still open has no span yet: held to its agent's cap when its calls name the agent
        # (llmpulse.agent.name), else to the largest cap any agent has (never a false alarm for
        # an agent with a larger cap of its own). The smallest caps filter the calls worth a look.
        caps = [settings.cap_of(""), *settings.agent_caps.values()]
        self._open_llm_cap = max(c.llm_calls for c in caps)
        self._open_tool_cap = max(c.tool_calls for c in caps)
        self._least_llm_cap = min(c.llm_calls for c in caps)
        self._least_tool_cap = min(c.tool_calls for c in caps)
        self.raised: list[OpenRunaway] = []  # runaway found in open runs since the last take_raised()

    @property
    def pending_traces(self) -> int:
        """Traces tracked now."""
        return len(self._traces)

    # --- spans in ------------------------------------------------------------------------
    def _trace(self, trace_id: bytes) -> _Trace:
        traces = self._traces
        trace = traces.get(trace_id)
        now = self._clock()
        if trace is not None:
            trace.last_seen = now
            traces.move_to_end(trace_id)
            return trace
        if len(traces) >= self.settings.max_pending_traces:
            _old_id, old = traces.popitem(last=False)
            self.evictions[N.EVICT_PENDING_CAP] += 1
            self._close(old, evicted=True)
        trace = traces[trace_id] = _Trace(now)
        return trace

    def _contribution(self, trace: _Trace, parent: bytes) -> Contribution:
        contribution = trace.pending.get(parent)
        if contribution is None:
            contribution = trace.pending[parent] = Contribution()
        return contribution

    def _link(
        self, trace: _Trace, trace_id: bytes, span_id: bytes, parent: bytes, *, roll_up: bool = True
    ) -> None:
        if span_id in trace.parents or len(trace.parents) < self.settings.max_links_per_trace:
            trace.parents[span_id] = parent
        elif not trace.links_full:
            trace.links_full = True
            self.evictions[N.EVICT_LINKS_CAP] += 1
            return
        if roll_up and span_id in trace.pending:
            self._roll_up(trace, trace_id, span_id, parent)

    def _roll_up(self, trace: _Trace, trace_id: bytes, span_id: bytes, parent: bytes) -> None:
        """A span that is no run ended: what its children added moves up to its nearest ancestor
        not ended yet (or a run), so the counts of a run still open add up under one key.

        Attribution is unchanged (the walk from the old key went through that ancestor anyway);
        a parent chain that loops is left alone (counted as a cycle later)."""
        runs, parents = trace.runs, trace.parents
        node, steps, limit = parent, 0, len(parents) + 1
        while node != _ROOT and node not in runs:
            up = parents.get(node)
            if up is None or up == _ROOT:
                break
            node = up
            steps += 1
            if steps > limit:
                return
        if node == _ROOT:
            return  # under the trace's root: nothing above to add up to
        moved = trace.pending.pop(span_id)
        target = self._contribution(trace, node)
        target.merge(moved, self.settings.max_tool_keys_per_run)
        if node not in runs:  # an ended run is judged when it is counted
            self._check_open(trace_id, node, target, target.max_repeat)

    def _check_open(self, trace_id: bytes, key: bytes, c: Contribution, repeat: int) -> None:
        """Count an open run as runaway as soon as it passes a cap (its named agent's, else the
        largest), once per reason."""
        found = []
        if c.agent:
            cap = self.settings.cap_of(c.agent)
            llm_cap, tool_cap = cap.llm_calls, cap.tool_calls
        else:
            llm_cap, tool_cap = self._open_llm_cap, self._open_tool_cap
        if c.llm_calls > llm_cap:
            found.append(N.RUNAWAY_LLM_CALLS)
        if c.tool_calls > tool_cap:
            found.append(N.RUNAWAY_TOOL_CALLS)
        if repeat >= self.settings.repeated_tool_calls:
            found.append(N.RUNAWAY_REPEATED_TOOL_CALL)
        new = tuple(r for r in found if r not in c.raised)
        if new:
            c.raised = tuple(sorted({*c.raised, *new}))
            self.raised.append(
                OpenRunaway(
                    trace_id,
                    key=key,
                    reasons=new,
                    llm_calls=c.llm_calls,
                    tool_calls=c.tool_calls,
                    max_repeat=c.max_repeat,
                    agent=c.agent,
                )
            )

    def add_call(
        self,
        trace_id: bytes,
        parent: bytes,
        *,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float,
        error: bool,
        agent: str = "",
    ) -> None:
        """One LLM call; a root call (no parent) is under no run and costs nothing here.
        ``agent``: the run's agent as the call's span names it ("" when it does not)."""
        if not parent:
            return
        c = self._contribution(self._trace(trace_id), parent)
        if agent and not c.agent:
            c.agent = agent
        c.llm_calls += 1
        c.spans += 1
        c.input_tokens += input_tokens
        c.output_tokens += output_tokens
        c.cost_usd += cost_usd
        if error:
            c.llm_errors += 1
        if c.llm_calls > self._least_llm_cap:
            self._check_open(trace_id, parent, c, 0)

    def add_tool(
        self,
        trace_id: bytes,
        span_id: bytes,
        parent: bytes,
        repeat_key: int | None,
        error: bool,
        *,
        agent: str = "",
    ) -> None:
        """One tool call; ``repeat_key`` hashes (tool, arguments) when the span carries arguments,
        ``agent`` is the run's agent as the span names it."""
        if not parent:
            return
        trace = self._trace(trace_id)
        trace.agentic = True
        # a tool can have children (an agent used as a tool)
        self._link(trace, trace_id, span_id, parent)
        c = self._contribution(trace, parent)
        if agent and not c.agent:
            c.agent = agent
        c.tool_calls += 1
        c.spans += 1
        if error:
            c.tool_errors += 1
        repeat = 0 if repeat_key is None else c.add_repeat(repeat_key, self.settings.max_tool_keys_per_run)
        if c.tool_calls > self._least_tool_cap or repeat >= self.settings.repeated_tool_calls:
            self._check_open(trace_id, parent, c, repeat)

    def add_agent(self, span: AgentSpan) -> None:
        """A run (agent, workflow, root chain) or a chain inside one."""
        trace = self._trace(span.trace_id)
        trace.agentic = True
        parent = span.parent_span_id
        if span.kind == RUN_CHAIN and parent:
            self._link(trace, span.trace_id, span.span_id, parent)
            return
        kind = RUN_WORKFLOW if span.kind == RUN_CHAIN else span.kind
        if span.span_id in trace.runs:
            return  # the same span sent twice (an exporter's retry)
        trace.runs[span.span_id] = _Run(span, kind, self._clock())
        trace.waiting += 1
        self._link(trace, span.trace_id, span.span_id, parent, roll_up=False)

    def is_agentic(self, trace_id: bytes) -> bool:
        """Whether a trace tracked now had a tool, chain or run span (its calls belong to runs
        that its spans describe)."""
        trace = self._traces.get(trace_id)
        return trace is not None and trace.agentic

    def has_span(self, trace_id: bytes, span_id: bytes) -> bool:
        """Whether a span that can have children (a link or a run) of a tracked trace arrived."""
        trace = self._traces.get(trace_id)
        return trace is not None and (span_id in trace.parents or span_id in trace.runs)

    def add_other(self, trace_id: bytes, span_id: bytes, parent: bytes) -> None:
        """A span of another kind: only a link, and only in a trace already tracked."""
        trace = self._traces.get(trace_id)
        if trace is not None:
            self._link(trace, trace_id, span_id, parent)

    # --- runs out ------------------------------------------------------------------------
    def _resolve(self, trace: _Trace, node: bytes) -> tuple[int, bytes]:
        runs, parents = trace.runs, trace.parents
        limit = len(parents) + 1
        steps = 0
        while True:
            if node in runs:
                return _RUN, node
            parent = parents.get(node)
            if parent is None:
                return _MISSING, node
            if parent == _ROOT:
                return _ROOT_REACHED, node
            node = parent
            steps += 1
            if steps > limit:
                return _CYCLE, node

    def _count_run(self, trace: _Trace, run_id: bytes) -> None:
        run = trace.runs[run_id]
        max_keys = self.settings.max_tool_keys_per_run
        for key in list(trace.pending):
            status, target = self._resolve(trace, key)
            if status == _RUN and target == run_id:
                run.totals.merge(trace.pending.pop(key), max_keys)
            elif status == _CYCLE:
                self.unattributed[N.UNATTRIBUTED_CYCLE] += trace.pending.pop(key).spans
        run.done = True
        trace.waiting -= 1
        totals = run.totals
        if totals.keys_overflow:
            self.evictions[N.EVICT_TOOL_KEYS_CAP] += 1
        runaway = runaway_reasons(self.settings, run.span.name, totals)
        self._results.append(RunResult(run.span, run.kind, totals, runaway))
        run.totals = Contribution()  # the counted totals belong to the result now

    def _count_late(self, trace: _Trace) -> None:
        """Contributions that reach a run already counted: late, counted under no run."""
        for key in list(trace.pending):
            status, target = self._resolve(trace, key)
            if status == _RUN and trace.runs[target].done:
                self.unattributed[N.UNATTRIBUTED_LATE] += trace.pending.pop(key).spans

    def _close(self, trace: _Trace, *, evicted: bool = False, timed_out: bool = False) -> None:
        """Count what is left of a trace that is dropped."""
        for run_id, run in list(trace.runs.items()):
            if not run.done:
                self._count_run(trace, run_id)
        if not trace.pending:
            return
        has_runs = bool(trace.runs)
        if timed_out and trace.agentic and not has_runs:
            self.evictions[N.EVICT_TIMEOUT] += 1  # its run may still be going, or its span was lost
        for key, c in trace.pending.items():
            status, _target = self._resolve(trace, key)
            if status == _CYCLE:
                reason = N.UNATTRIBUTED_CYCLE
            elif evicted:
                reason = N.UNATTRIBUTED_EVICTED
            elif not has_runs:
                continue  # a trace without runs (a plain app's calls under a web request)
            elif status == _RUN:
                reason = N.UNATTRIBUTED_LATE
            elif status == _MISSING:
                reason = N.UNATTRIBUTED_MISSING_PARENT
            else:
                reason = N.UNATTRIBUTED_OUTSIDE_RUN
            self.unattributed[reason] += c.spans
        trace.pending.clear()

    def tick(self) -> None:
        """Count the runs whose grace has passed; drop traces idle for ``trace_idle_s``."""
        now = self._clock()
        grace, idle = self.settings.run_grace_s, self.settings.trace_idle_s
        traces = self._traces
        for trace in list(traces.values()):
            if trace.waiting:
                for run_id, run in list(trace.runs.items()):
                    if not run.done and now - run.ended_at >= grace:
                        self._count_run(trace, run_id)
            if trace.pending and trace.runs and not trace.waiting:
                self._count_late(trace)
        while traces:
            trace_id, trace = next(iter(traces.items()))
            if now - trace.last_seen < idle:
                break  # ordered by last activity: the rest are younger
            del traces[trace_id]
            self._close(trace, timed_out=True)

    def flush(self) -> None:
        """Count every run and drop every trace (at shutdown)."""
        while self._traces:
            _trace_id, trace = self._traces.popitem(last=False)
            self._close(trace, timed_out=True)

    def take_raised(self) -> list[OpenRunaway]:
        """The open runs found runaway since the last call."""
        raised, self.raised = self.raised, []
        return raised

    def take(self) -> list[RunResult]:
        """The runs counted since the last call."""
        results, self._results = self._results, []
        return results
