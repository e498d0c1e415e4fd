"""The ``[agents]`` table of ``llmpulse serve --config``: caps, timeouts and memory bounds.

Parsed once into an immutable :class:`AgentSettings`; an unknown key or a bad value raises
:class:`AgentConfigError` with the key, the value and what is expected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from llmpulse.errors import LLMPulseError

__all__ = ["AgentCap", "AgentConfigError", "AgentSettings"]


class AgentConfigError(LLMPulseError):
    """A bad ``[agents]`` table."""


@dataclass(frozen=True, slots=True)
class AgentCap:
    """How many LLM calls and tool calls one run of an agent may make before it counts as runaway."""

    llm_calls: int
    tool_calls: int


@dataclass(frozen=True)
class AgentSettings:
    """Settings of the agents engine (the ``[agents]`` table; every key optional).

    Attributes:
        enabled: false leaves agent runs, tools and sessions untracked.
        max_llm_calls / max_tool_calls: the default runaway caps per run.
        agent_caps: per-agent caps, ``[agents.agent_caps.<name>]`` with ``llm_calls`` and/or
            ``tool_calls`` (the default fills what is left out).
        repeated_tool_calls: a run that calls one tool with the same arguments this many times is
            runaway (``repeated_tool_call``).
        run_grace_s: how long an ended run waits for late children before it is counted.
        trace_idle_s: how long a trace's spans wait for their run span after the trace's last span;
            also how long an open tool-call loop waits for its next call.
        max_pending_traces: traces tracked at once; the oldest is evicted for a new one. Also the
            open tool-call loops held at once.
        max_links_per_trace: parent links (tool, chain and bridging spans) remembered per trace.
        max_tool_keys_per_run: distinct (tool, arguments) pairs counted per run.
        session_timeout_s: a conversation closes after this much inactivity (3 min).
        max_sessions: conversations open at once; the least recently active is closed for a new one.
        tick_s: seconds between housekeeping passes (runs counted, sessions closed).
        judge_rate: share of conversations judged as a whole once they close (by a hash of the
            conversation id; 0 judges none). Needs the quality engine's judge and content capture.
        judge_turns: turns a judged session's transcript keeps (the latest; older ones are dropped).
        judge_chars: characters kept of each user message and answer in a transcript.
        max_judged_sessions: sampled sessions holding a transcript at once; more are not judged.
        capture_sessions: keep the sampled sessions' turns (content as captured, redacted again)
            in the quality store, for ``llmpulse sessions`` and the console; needs the quality
            engine (its store).
        capture_bytes: content bytes of captured sessions the store keeps; the oldest sessions
            are dropped past it (counted as ``session_store`` evictions).
    """

    enabled: bool = True
    max_llm_calls: int = 25
    max_tool_calls: int = 50
    agent_caps: Mapping[str, AgentCap] = field(default_factory=lambda: MappingProxyType({}))
    repeated_tool_calls: int = 5
    run_grace_s: float = 2.0
    trace_idle_s: float = 60.0
    max_pending_traces: int = 10_000
    max_links_per_trace: int = 10_000
    max_tool_keys_per_run: int = 1_000
    session_timeout_s: float = 180.0
    max_sessions: int = 100_000
    tick_s: float = 1.0
    judge_rate: float = 0.05
    judge_turns: int = 20
    judge_chars: int = 2_000
    max_judged_sessions: int = 1_000
    capture_sessions: bool = True
    capture_bytes: int = 64 * 1024 * 1024

    def cap_of(self, agent: str) -> AgentCap:
        """The runaway caps of ``agent`` (its own, else the defaults)."""
        cap = self.agent_caps.get(agent)
        return cap if cap is not None else AgentCap(self.max_llm_calls, self.max_tool_calls)

    @classmethod
    def from_dict(cls, table: Mapping[str, Any]) -> AgentSettings:
        """Settings from the ``[agents]`` table; raises :class:`AgentConfigError`."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise AgentConfigError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key in ("enabled", "capture_sessions"):
                if not isinstance(value, bool):
                    raise AgentConfigError(f"{key} = {value!r}: expected true or false")
                values[key] = value
            elif key == "judge_rate":
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                    raise AgentConfigError(f"judge_rate = {value!r}: expected a number from 0 to 1")
                values[key] = float(value)
            elif key == "agent_caps":
                values[key] = MappingProxyType(_caps(value, table))
            elif key.endswith("_s"):
                values[key] = _positive(key, value, float)
            else:
                values[key] = _positive(key, value, int)
        return cls(**values)


def _positive(key: str, value: Any, kind: type) -> Any:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (kind is int and not isinstance(value, int))
    ):
        raise AgentConfigError(
            f"{key} = {value!r}: expected a positive {'integer' if kind is int else 'number'}"
        )
    if not 0 < value < math.inf:  # NaN fails both comparisons
        raise AgentConfigError(f"{key} = {value!r}: expected a positive finite number")
    return kind(value)


def _caps(value: Any, table: Mapping[str, Any]) -> dict[str, AgentCap]:
    if not isinstance(value, Mapping):
        raise AgentConfigError("agent_caps must be a table of [agents.agent_caps.<agent name>] tables")
    default_llm = _positive("max_llm_calls", table.get("max_llm_calls", AgentSettings.max_llm_calls), int)
    default_tool = _positive("max_tool_calls", table.get("max_tool_calls", AgentSettings.max_tool_calls), int)
    caps: dict[str, AgentCap] = {}
    for agent, cap in value.items():
        if not isinstance(cap, Mapping) or set(cap) - {"llm_calls", "tool_calls"}:
            raise AgentConfigError(
                f"agent_caps.{agent} = {cap!r}: expected a table with llm_calls and/or tool_calls"
            )
        caps[str(agent)] = AgentCap(
            _positive(f"agent_caps.{agent}.llm_calls", cap.get("llm_calls", default_llm), int),
            _positive(f"agent_caps.{agent}.tool_calls", cap.get("tool_calls", default_tool), int),
        )
    return caps
