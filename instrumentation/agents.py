"""``llmpulse.agent(...)`` and ``llmpulse.tool(...)``: spans for a hand-rolled agent loop.

``agent("planner")`` is a semconv ``invoke_agent`` span (``invoke_agent planner``, with
``gen_ai.operation.name``, ``gen_ai.agent.name`` and ``gen_ai.agent.id``); the LLM calls and
tools inside it become its children, which is how the processor counts a run's calls, tokens,
cost and tool calls, and carry the run's agent as ``llmpulse.agent.name`` (and
``llmpulse.agent.id``), so a run found looping before its own span arrives is named.
``tool("search", arguments=...)`` is a semconv ``execute_tool`` span
(``execute_tool search``, ``gen_ai.tool.name``, ``gen_ai.tool.call.id``, ``gen_ai.tool.type``).
The arguments leave the process only as a digest (``llmpulse.tool.arguments_hash``, so the
processor finds a run that calls one tool with the same arguments again and again) unless
message content is captured for the trace, when ``gen_ai.tool.call.arguments`` carries them,
redacted. Both are context managers and decorators; a decorated tool's arguments are the
function's arguments. The host's exceptions pass through unchanged (the span records
``error.type``).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from llmpulse.contract import attributes as A
from llmpulse.instrumentation.context import current_attributes, with_attributes
from llmpulse.instrumentation.steps import step

__all__ = ["agent", "tool"]

F = TypeVar("F")
_log = logging.getLogger(__name__)
_NO_ARGUMENTS = object()
_RUN_KEYS = (A.RUN_AGENT_NAME, A.RUN_AGENT_ID)  # an agent run's, on the spans inside it


class agent(step):
    """An agent run as a semconv ``invoke_agent`` span; a context manager or a decorator.

    ``name`` is ``gen_ai.agent.name`` (the ``agent`` label of the run metrics: keep it to a
    handful of values); ``agent_id`` is ``gen_ai.agent.id``.
    """

    def __init__(
        self, name: str, *, agent_id: str | None = None, attributes: dict[str, AttributeValue] | None = None
    ) -> None:
        super().__init__(name, attributes=attributes)
        self._agent_id = agent_id

        # what every span started inside the run carries (see _context)
        self._run: dict[str, AttributeValue] = {A.RUN_AGENT_NAME: name}
        if agent_id:
            self._run[A.RUN_AGENT_ID] = agent_id

    def _describe(self) -> tuple[str, dict[str, AttributeValue]]:
        attrs: dict[str, AttributeValue] = {**current_attributes(), **self._initial}
        # an outer run's name is not this span's: the run span names itself with gen_ai.agent.*
        for key in _RUN_KEYS:
            attrs.pop(key, None)
        attrs[A.GEN_AI_OPERATION_NAME] = A.OP_INVOKE_AGENT
        attrs[A.GEN_AI_AGENT_NAME] = self.name
        if self._agent_id:
            attrs[A.GEN_AI_AGENT_ID] = self._agent_id
        return f"{A.OP_INVOKE_AGENT} {self.name}", attrs

    def _context(self, span: Span) -> otel_context.Context:
        """The run's span, and its agent's name and id as context attributes, so the LLM calls,
        tools and steps started inside it carry them (``llmpulse.agent.name``/``.id``) from their
        start: the processor names a run found runaway before its own span arrived. Semconv
        defines ``gen_ai.agent.*`` for agent spans, not for inference or tool spans, hence
        llmpulse's keys; an inner run's keys replace an outer one's."""
        return with_attributes(self._run, super()._context(span), replacing=_RUN_KEYS)

    def _content(self, runtime: Any, span: Span) -> None:
        """An agent span carries no content of its own."""


def arguments_digest(arguments: Any) -> tuple[str, str]:
    """(JSON text, 16 hex digits of its SHA-256) of a tool call's arguments, keys sorted."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, sort_keys=True, default=str)
    return text, hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


class tool(step):
    """A tool call as a semconv ``execute_tool`` span; a context manager or a decorator.

    ``arguments`` (a JSON-serialisable value or a JSON string) are hashed into
    ``llmpulse.tool.arguments_hash`` and, where content capture is on for this trace, recorded
    redacted as ``gen_ai.tool.call.arguments``. Decorating a function records each call's
    arguments.
    """

    def __init__(
        self,
        name: str,
        *,
        arguments: Any = _NO_ARGUMENTS,
        call_id: str | None = None,
        tool_type: str = "function",
        attributes: dict[str, AttributeValue] | None = None,
    ) -> None:
        super().__init__(name, tool_name=name, attributes=attributes)
        self._arguments = arguments
        self._call_id = call_id
        self._tool_type = tool_type
        self._text: str | None = None

    def _describe(self) -> tuple[str, dict[str, AttributeValue]]:
        span_name, attrs = super()._describe()
        attrs[A.GEN_AI_TOOL_TYPE] = self._tool_type
        if self._call_id:
            attrs[A.GEN_AI_TOOL_CALL_ID] = self._call_id
        self._text = None
        if self._arguments is not _NO_ARGUMENTS:
            try:
                self._text, attrs[A.TOOL_ARGUMENTS_HASH] = arguments_digest(self._arguments)
            except Exception:  # arguments that do not serialise: no digest, the tool still runs
                _log.debug("event=tool_arguments_not_hashed tool=%s", self.name, exc_info=True)
        return span_name, attrs

    def _content(self, runtime: Any, span: Span) -> None:
        if self._text is not None and runtime.content.decide(span):
            span.set_attribute(A.GEN_AI_TOOL_CALL_ARGUMENTS, runtime.content.text(self._text))

    def _for_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tool:
        return tool(
            self.name,
            arguments={"args": list(args), "kwargs": kwargs},
            call_id=self._call_id,
            tool_type=self._tool_type,
            attributes=self._initial,
        )

    def __call__(self, func: F) -> F:
        """Decorate ``func``: each call is one tool span with the call's arguments."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._for_call(args, kwargs):
                    return await func(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(cast(Any, func))
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._for_call(args, kwargs):
                return cast(Any, func)(*args, **kwargs)

        return cast(F, wrapper)
