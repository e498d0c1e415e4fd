"""Agents, tools and conversations: what llmpulse derives from a trace's span tree.

Agent runs (semconv ``invoke_agent`` / ``invoke_workflow``, OpenInference ``AGENT`` and root
``CHAIN`` spans, OpenLLMetry ``agent`` / ``workflow`` / root ``task`` spans) with the LLM calls,
tokens, cost and tool calls under each, runaway runs (over a per-agent cap, or one tool called
with the same arguments again and again), tool calls and errors per tool, and sessions (turns,
duration, cost, abandonment after the first AI response) from the conversation id. See
docs/agents.md.

Hand-rolled tool-call loops without agent spans are runs too (kind ``tool_loop``).

Modules: ``settings`` (the ``[agents]`` table), ``runs`` (runs from parent span ids, bounded),
``loops`` (tool-call loops from LLM calls alone, bounded),
``sessions`` (conversations, bounded), ``metric_names``, ``metrics`` (aggregates and exposition),
``engine`` (the record listener), ``capture`` (captured sessions to the store), ``extension``
(the processor extension), ``cli`` (``llmpulse sessions list|show``).
"""

from llmpulse.processor.agents.engine import AgentEngine
from llmpulse.processor.agents.extension import agents_extension
from llmpulse.processor.agents.settings import AgentCap, AgentConfigError, AgentSettings

__all__ = ["AgentCap", "AgentConfigError", "AgentEngine", "AgentSettings", "agents_extension"]
