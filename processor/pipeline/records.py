"""The normalised records the processor derives from spans (:mod:`~llmpulse.processor.pipeline.normalize`)."""

from __future__ import annotations

from llmpulse.contract.attributes import UNKNOWN_SERVICE
from llmpulse.contract.content import Content, parse_content


class LLMCall:
    """One LLM call, normalised. Label fields are raw strings (capped later by the metrics); once
    the call is counted, ``service`` and ``feature`` hold their capped label values, so the
    engines (listeners) keep their state under the labels the metrics show."""

    __slots__ = (
        "_content",
        "app_version",
        "cache_creation_1h_tokens",
        "cache_creation_tokens",
        "cache_read_tokens",
        "content_source",
        "conversation_id",
        "cost_usd",
        "duration_s",
        "end_ns",
        "environment",
        "error_type",
        "feature",
        "finish_reason",
        "has_content",
        "input_tokens",
        "model",
        "operation",
        "outcome",
        "output_tokens",
        "output_type",
        "parent_span_id",
        "pricing_version",
        "prompt_version",
        "provider",
        "query_category",
        "rag_index_version",
        "reasoning_tokens",
        "refusal_flag",
        "response_id",
        "response_model",
        "run_agent",
        "secondary",
        "service",
        "span_id",
        "tool_loop_id",
        "tool_request_count",
        "tool_request_hashes",
        "tool_results",
        "trace_id",
        "ttfc_s",
    )

    service: str  # the resource's service.name
    environment: str  # the resource's deployment environment, "" when it names none
    feature: str
    provider: str
    model: str
    operation: str
    response_model: str
    finish_reason: str
    outcome: str
    error_type: str
    duration_s: float
    ttfc_s: float | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_creation_tokens: int | None
    cache_creation_1h_tokens: int | None  # part of cache_creation_tokens written with a 1-hour TTL
    reasoning_tokens: int | None
    cost_usd: float | None
    pricing_version: str  # the table that priced cost_usd ("" when unpriced)
    response_id: str
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    end_ns: int
    secondary: bool
    has_content: bool  # the span carries gen_ai.input/output.messages (sampled or captured content)
    content_source: tuple[str | None, str | None, str | None] | None
    """The span's input messages, output messages and system instructions as captured (JSON
    text), or None when it has none of them; :attr:`content` parses them on first use."""
    output_type: str | None  # gen_ai.output.type
    refusal_flag: bool  # llmpulse.refusal as set on the span (outcome is "error" if the call failed)
    conversation_id: str  # gen_ai.conversation.id or a peer's session key; "" when the span has none
    run_agent: str  # the agent of the run the call is part of, as the span names it ("" when it does not)
    # a tool-call loop without agent spans (llmpulse.tool_calls.*, llmpulse.tool_results.count)
    tool_request_count: int  # tool calls the model asked for (0: none, or the span does not say)
    tool_request_hashes: tuple[str, ...]  # a digest of name and arguments per requested call
    tool_results: int | None  # tool results the request carried; None when the span does not say
    tool_loop_id: str  # the loop's id (llmpulse.tool_loop.id), "" when the span does not say
    # what the incident page scopes a regression by ("" when the span names none); raw, capped later
    prompt_version: str  # llmpulse.prompt.version, OpenInference's or Traceloop's prompt version
    app_version: str  # llmpulse.app.version, else the resource's service.version
    query_category: str  # llmpulse.query.category (or the Traceloop association property)
    rag_index_version: str  # llmpulse.rag.index.version
    _content: Content  # set on the first read of ``content``

    @property
    def content(self) -> Content | None:
        """The parsed content, shared by every engine: parsed on first use, then cached."""
        source = self.content_source
        if source is None:
            return None
        try:
            return self._content
        except AttributeError:
            parsed = self._content = parse_content(*source)
            return parsed

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__ if name != "_content")
        return f"LLMCall({fields})"


class StepRun:
    """One pipeline step (retrieval, rerank, tool call, a named llmpulse step)."""

    __slots__ = (
        "duration_s",
        "end_ns",
        "environment",
        "error",
        "feature",
        "run_agent",
        "service",
        "step",
        "tool",
        "tool_arguments",
        "trace_id",
    )

    def __init__(
        self,
        feature: str,
        step: str,
        duration_s: float,
        error: bool,
        *,
        trace_id: bytes,
        end_ns: int,
        service: str = UNKNOWN_SERVICE,
        environment: str = "",
    ) -> None:
        self.service = service
        self.environment = environment
        self.feature = feature
        self.step = step
        self.duration_s = duration_s
        self.error = error
        self.trace_id = trace_id
        self.end_ns = end_ns
        self.tool = ""  # a tool call's tool name ("" for other steps)
        self.tool_arguments: str | None = None  # its arguments' digest or text, when the span has them
        self.run_agent = ""  # the agent of the run the step is part of, as the span names it

    def __repr__(self) -> str:
        return (
            f"StepRun(service={self.service!r}, feature={self.feature!r}, step={self.step!r},"
            f" duration_s={self.duration_s!r})"
        )


class AgentSpan:
    """One agent run, workflow or chain span (``invoke_agent``, ``invoke_workflow``, OpenInference
    ``AGENT``/``CHAIN``, OpenLLMetry ``agent``/``workflow``/``task``).

    ``kind`` is ``agent``, ``workflow`` or ``chain``; a chain is a run only when it is its trace's
    root (no parent), otherwise a step inside the run above it.
    """

    __slots__ = (
        "conversation_id",
        "end_ns",
        "environment",
        "error",
        "feature",
        "kind",
        "name",
        "parent_span_id",
        "service",
        "span_id",
        "start_ns",
        "trace_id",
    )

    def __init__(
        self,
        kind: str,
        name: str,
        *,
        trace_id: bytes,
        span_id: bytes,
        parent_span_id: bytes,
        start_ns: int,
        end_ns: int,
        error: bool,
        feature: str = "",
        conversation_id: str = "",
        service: str = UNKNOWN_SERVICE,
        environment: str = "",
    ) -> None:
        self.kind = kind
        self.name = name
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.error = error
        self.feature = feature
        self.conversation_id = conversation_id
        self.service = service
        self.environment = environment

    def __repr__(self) -> str:
        return (
            f"AgentSpan(kind={self.kind!r}, name={self.name!r}, service={self.service!r},"
            f" error={self.error!r})"
        )


class Feedback:
    """One piece of user feedback."""

    __slots__ = ("conversation_id", "environment", "feature", "kind", "sentiment", "service")

    def __init__(
        self,
        feature: str,
        kind: str,
        sentiment: str,
        *,
        service: str = UNKNOWN_SERVICE,
        environment: str = "",
        conversation_id: str = "",
    ) -> None:
        self.service = service
        self.environment = environment
        self.feature = feature
        self.kind = kind
        self.sentiment = sentiment
        self.conversation_id = conversation_id  # the conversation it was given in ("" when none)

    def __repr__(self) -> str:
        return (
            f"Feedback(service={self.service!r}, feature={self.feature!r}, kind={self.kind!r},"
            f" sentiment={self.sentiment!r})"
        )


Record = LLMCall | StepRun | Feedback | AgentSpan | str | None
"""What :func:`normalize_span` returns: a record, a rejection reason, or None (not ours)."""
