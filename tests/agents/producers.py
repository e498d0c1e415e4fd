"""Agent traces as each producer writes them, as raw OTLP spans (children before parents, the
order a BatchSpanProcessor exports them in).

Attribute names and span names follow the producers' own code:

* the official GenAI conventions (v1.41; what ``opentelemetry-instrumentation-genai-*`` and the
  agent frameworks that follow semconv write): ``invoke_agent {gen_ai.agent.name}`` with
  ``gen_ai.operation.name=invoke_agent``, ``gen_ai.agent.name``, ``gen_ai.agent.id``,
  ``gen_ai.conversation.id``; ``chat {model}`` children; ``execute_tool {gen_ai.tool.name}``
  with ``gen_ai.tool.call.id``, ``gen_ai.tool.type``, ``gen_ai.tool.call.arguments`` (opt-in);
* OpenInference (``openinference-instrumentation-openai-agents``): a root ``CHAIN`` span "Agent
  workflow", an ``AGENT`` span named after the agent, ``LLM`` spans with ``llm.model_name``,
  ``llm.token_count.*``, ``TOOL`` spans with ``tool.name`` and the arguments in ``input.value``,
  ``session.id`` on every span (``using_session``);
* OpenLLMetry (``traceloop-sdk`` decorators): ``<name>.workflow`` / ``<name>.task`` /
  ``<name>.tool`` spans with ``traceloop.span.kind``, ``traceloop.entity.name``,
  ``traceloop.entity.input`` (``{"args": [...], "kwargs": {...}}``), ``traceloop.workflow.name``;
  ``openai.chat`` with ``llm.request.type=chat``, ``gen_ai.system``, the pre-1.37 usage keys and
  the association properties (``traceloop.association.properties.session_id``) on every span.
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmpulse.contract import attributes as A
from llmpulse.testing.otlp import T0, llm_attributes, make_span

STATUS_ERROR = 2
CLIENT = Span.SPAN_KIND_CLIENT
INTERNAL = Span.SPAN_KIND_INTERNAL


class Ids:
    """Span ids 1, 2, 3, ... of one trace."""

    def __init__(self, trace: int) -> None:
        self.trace_id = trace.to_bytes(16, "big")
        self._next = trace * 1000

    def span(self) -> bytes:
        self._next += 1
        return self._next.to_bytes(8, "big")


def semconv_agent_run(
    trace: int,
    *,
    agent: str = "weather",
    conversation: str = "conv-semconv",
    llm_calls: int = 3,
    tools: list[tuple[str, str, bool]] | None = None,
    error: bool = False,
) -> list[Span]:
    """An ``invoke_agent`` span with ``llm_calls`` chat children and the given tool calls
    (name, arguments, failed)."""
    ids = Ids(trace)
    root = ids.span()
    spans: list[Span] = []
    t = T0
    for i in range(llm_calls):
        spans.append(
            make_span(
                llm_attributes(  # the semconv keys of an llmpulse span: no llmpulse key, no cost
                    **{
                        A.SPAN_KIND: None,
                        A.COST_USD: None,
                        A.FEATURE: None,
                        A.FINISH_REASON: None,
                        A.GEN_AI_RESPONSE_FINISH_REASONS: ["tool_calls" if i < llm_calls - 1 else "stop"],
                        A.GEN_AI_CONVERSATION_ID: conversation,
                        A.SERVER_ADDRESS: "api.openai.com",
                    }
                ),
                trace_id=ids.trace_id,
                span_id=ids.span(),
                parent_span_id=root,
                name="chat gpt-4o",
                kind=CLIENT,
                start_ns=t,
                duration_s=0.5,
            )
        )
        t += 600_000_000
    for j, (tool, arguments, failed) in enumerate(tools or []):
        attrs: dict[str, Any] = {
            A.GEN_AI_OPERATION_NAME: "execute_tool",
            A.GEN_AI_TOOL_NAME: tool,
            A.GEN_AI_TOOL_CALL_ID: f"call_{trace}_{j}",
            A.GEN_AI_TOOL_TYPE: "function",
            A.GEN_AI_TOOL_CALL_ARGUMENTS: arguments,
        }
        if failed:
            attrs[A.ERROR_TYPE] = "TimeoutError"
        spans.append(
            make_span(
                attrs,
                trace_id=ids.trace_id,
                span_id=ids.span(),
                parent_span_id=root,
                name=f"execute_tool {tool}",
                kind=INTERNAL,
                start_ns=t,
                duration_s=0.1,
                status_code=STATUS_ERROR if failed else 0,
            )
        )
        t += 200_000_000
    run_attrs: dict[str, Any] = {
        A.GEN_AI_OPERATION_NAME: "invoke_agent",
        A.GEN_AI_PROVIDER_NAME: "openai",
        A.GEN_AI_AGENT_NAME: agent,
        A.GEN_AI_AGENT_ID: f"asst_{agent}",
        A.GEN_AI_REQUEST_MODEL: "gpt-4o",
        A.GEN_AI_CONVERSATION_ID: conversation,
    }
    if error:
        run_attrs[A.ERROR_TYPE] = "MaxTurnsExceeded"
    spans.append(
        make_span(
            run_attrs,
            trace_id=ids.trace_id,
            span_id=root,
            name=f"invoke_agent {agent}",
            kind=CLIENT,
            start_ns=T0 - 100_000_000,
            end_ns=t + 100_000_000,
            status_code=STATUS_ERROR if error else 0,
        )
    )
    return spans


def openinference_agent_run(trace: int, *, session: str = "sess-oi") -> list[Span]:
    """openai-agents under OpenInference: CHAIN "Agent workflow" > AGENT "Assistant" > 2 LLM + 1 TOOL."""
    ids = Ids(trace)
    workflow, agent = ids.span(), ids.span()
    common = {A.SESSION_ID: session}

    def llm(prompt: int, completion: int, start: int) -> Span:
        return make_span(
            {
                **common,
                A.OPENINFERENCE_SPAN_KIND: "LLM",
                A.OPENINFERENCE_MODEL_NAME: "gpt-4o",
                A.OPENINFERENCE_PROVIDER: "openai",
                A.OPENINFERENCE_SYSTEM: "openai",
                A.OPENINFERENCE_TOKEN_COUNT_PROMPT: prompt,
                A.OPENINFERENCE_TOKEN_COUNT_COMPLETION: completion,
                A.OPENINFERENCE_TOKEN_COUNT_TOTAL: prompt + completion,
                "input.mime_type": "application/json",
            },
            trace_id=ids.trace_id,
            span_id=ids.span(),
            parent_span_id=agent,
            name="response",
            kind=INTERNAL,
            start_ns=start,
            duration_s=0.4,
        )

    spans = [
        llm(200, 10, T0),
        make_span(
            {
                **common,
                A.OPENINFERENCE_SPAN_KIND: "TOOL",
                A.OPENINFERENCE_TOOL_NAME: "get_weather",
                A.OPENINFERENCE_INPUT_VALUE: json.dumps({"city": "Paris"}),
                "output.value": "sunny",
            },
            trace_id=ids.trace_id,
            span_id=ids.span(),
            parent_span_id=agent,
            name="get_weather",
            kind=INTERNAL,
            start_ns=T0 + 500_000_000,
            duration_s=0.05,
        ),
        llm(300, 30, T0 + 600_000_000),
        make_span(
            {**common, A.OPENINFERENCE_SPAN_KIND: "AGENT", "graph.node.id": "Assistant"},
            trace_id=ids.trace_id,
            span_id=agent,
            parent_span_id=workflow,
            name="Assistant",
            kind=INTERNAL,
            start_ns=T0 - 10_000_000,
            end_ns=T0 + 1_010_000_000,
        ),
        make_span(
            {**common, A.OPENINFERENCE_SPAN_KIND: "CHAIN"},
            trace_id=ids.trace_id,
            span_id=workflow,
            name="Agent workflow",
            kind=INTERNAL,
            start_ns=T0 - 20_000_000,
            end_ns=T0 + 1_020_000_000,
        ),
    ]
    return spans


def openllmetry_workflow(trace: int, *, session: str = "sess-ollm", tool_fails: bool = True) -> list[Span]:
    """traceloop-sdk: workflow "trip_planner" > task "plan" > 2 openai.chat, tool "search_flights"."""
    ids = Ids(trace)
    workflow, task = ids.span(), ids.span()
    common = {
        A.OPENLLMETRY_SESSION_ID: session,
        A.OPENLLMETRY_WORKFLOW_NAME: "trip_planner",
    }

    def chat(start: int) -> Span:
        return make_span(
            {
                **common,
                A.OPENLLMETRY_REQUEST_TYPE: "chat",
                A.LEGACY_GEN_AI_SYSTEM: "OpenAI",
                A.GEN_AI_REQUEST_MODEL: "gpt-4o",
                A.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
                A.LEGACY_GEN_AI_USAGE_PROMPT_TOKENS: 50,
                A.LEGACY_GEN_AI_USAGE_COMPLETION_TOKENS: 5,
                A.OPENLLMETRY_GEN_AI_TOTAL_TOKENS: 55,
            },
            trace_id=ids.trace_id,
            span_id=ids.span(),
            parent_span_id=task,
            name="openai.chat",
            kind=CLIENT,
            start_ns=start,
            duration_s=0.3,
        )

    tool_attrs: dict[str, Any] = {
        **common,
        A.OPENLLMETRY_SPAN_KIND: "tool",
        A.OPENLLMETRY_ENTITY_NAME: "search_flights",
        A.OPENLLMETRY_ENTITY_INPUT: json.dumps({"args": [], "kwargs": {"to": "LIS"}}),
        "traceloop.entity.path": "plan",
    }
    spans = [
        chat(T0),
        make_span(
            tool_attrs,
            trace_id=ids.trace_id,
            span_id=ids.span(),
            parent_span_id=task,
            name="search_flights.tool",
            kind=INTERNAL,
            start_ns=T0 + 400_000_000,
            duration_s=0.2,
            status_code=STATUS_ERROR if tool_fails else 0,
        ),
        chat(T0 + 700_000_000),
        make_span(
            {**common, A.OPENLLMETRY_SPAN_KIND: "task", A.OPENLLMETRY_ENTITY_NAME: "plan"},
            trace_id=ids.trace_id,
            span_id=task,
            parent_span_id=workflow,
            name="plan.task",
            kind=INTERNAL,
            start_ns=T0 - 10_000_000,
            end_ns=T0 + 1_010_000_000,
        ),
        make_span(
            {**common, A.OPENLLMETRY_SPAN_KIND: "workflow", A.OPENLLMETRY_ENTITY_NAME: "trip_planner"},
            trace_id=ids.trace_id,
            span_id=workflow,
            name="trip_planner.workflow",
            kind=INTERNAL,
            start_ns=T0 - 20_000_000,
            end_ns=T0 + 1_020_000_000,
        ),
    ]
    return spans
