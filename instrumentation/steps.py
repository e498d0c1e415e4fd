"""``llmpulse.step(...)``: a span for one pipeline step (retrieval, rerank, tool, ...).

LLM calls made inside a step become its children, which is how a slow retrieval step shows
up next to the model call it fed. ``step("retrieval", ...)`` follows the GenAI semantic
conventions' retrieval operation (span ``retrieval {data_source}``), ``step(..., tool_name=)``
their ``execute_tool`` operation.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sized
from types import TracebackType
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from llmpulse.contract import attributes as A
from llmpulse.instrumentation.context import current_attributes

F = TypeVar("F", bound=Callable[..., Any])

_FALLBACK_SCOPE = "llmpulse"


class step:
    """Record a pipeline step as a span; usable as a context manager or a decorator.

    ``name`` names the step; ``"retrieval"`` uses the semconv retrieval operation, with
    ``data_source`` as ``gen_ai.data_source.id``; a step given ``tool_name`` is a semconv
    ``execute_tool`` span (``execute_tool {tool_name}``). ``query`` is recorded only where message
    content capture is on for this trace (and then redacted). Results can be added during the
    step with :meth:`record`; a decorated function that returns a sized collection records
    its length as the document count.
    """

    def __init__(
        self,
        name: str,
        *,
        data_source: str | None = None,
        tool_name: str | None = None,
        query: str | None = None,
        document_count: int | None = None,
        top_score: float | None = None,
        attributes: dict[str, AttributeValue] | None = None,
    ) -> None:
        self.name = name
        self._data_source = data_source
        self._tool_name = tool_name
        self._query = query
        self._initial: dict[str, AttributeValue] = dict(attributes or {})
        if document_count is not None:
            self._initial[A.STEP_DOCUMENT_COUNT] = document_count
        if top_score is not None:
            self._initial[A.STEP_TOP_SCORE] = float(top_score)
        self._active: list[tuple[Span, object]] = []

    @property
    def span(self) -> Span:
        """The span of the innermost active use of this step (a non-recording span outside one)."""
        return self._active[-1][0] if self._active else trace.INVALID_SPAN

    def record(
        self,
        *,
        document_count: int | None = None,
        top_score: float | None = None,
        **attributes: AttributeValue,
    ) -> None:
        """Add results to the running step's span."""
        attrs: dict[str, AttributeValue] = dict(attributes)
        if document_count is not None:
            attrs[A.STEP_DOCUMENT_COUNT] = document_count
        if top_score is not None:
            attrs[A.STEP_TOP_SCORE] = float(top_score)
        self.span.set_attributes(attrs)

    def _describe(self) -> tuple[str, dict[str, AttributeValue]]:
        """The span's name and starting attributes (the context's first, then this step's)."""
        attrs: dict[str, AttributeValue] = {**current_attributes(), **self._initial}
        attrs[A.SPAN_KIND] = A.SPAN_KIND_STEP
        attrs[A.STEP_NAME] = self.name
        span_name = self.name
        if self.name == A.OP_RETRIEVAL:
            attrs[A.GEN_AI_OPERATION_NAME] = A.OP_RETRIEVAL
            if self._data_source:
                attrs[A.GEN_AI_DATA_SOURCE_ID] = self._data_source
                span_name = f"{A.OP_RETRIEVAL} {self._data_source}"
        elif self._tool_name:
            attrs[A.GEN_AI_OPERATION_NAME] = A.OP_EXECUTE_TOOL
            attrs[A.GEN_AI_TOOL_NAME] = self._tool_name
            span_name = f"{A.OP_EXECUTE_TOOL} {self._tool_name}"
        return span_name, attrs

    def _content(self, runtime: Any, span: Span) -> None:
        """Add the opt-in content (the retrieval query) where capture is on for this trace."""
        if self._query is not None and runtime.content.decide(span):
            span.set_attribute(A.GEN_AI_RETRIEVAL_QUERY_TEXT, runtime.content.text(self._query))

    def _start(self) -> tuple[Span, object]:
        runtime = _runtime()
        tracer: Tracer = runtime.tracer if runtime is not None else trace.get_tracer(_FALLBACK_SCOPE)
        span_name, attrs = self._describe()
        span = tracer.start_span(span_name, kind=SpanKind.INTERNAL, attributes=attrs)
        if runtime is not None:
            self._content(runtime, span)
        token = otel_context.attach(self._context(span))
        return span, token

    def _context(self, span: Span) -> otel_context.Context:
        """The context the step's body runs in: the current one with ``span`` as its span."""
        return trace.set_span_in_context(span)

    @staticmethod
    def _end(span: Span, token: object, error: BaseException | None) -> None:
        otel_context.detach(token)  # type: ignore[arg-type]
        if error is not None:
            span.set_attribute(A.ERROR_TYPE, type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()

    def __enter__(self) -> step:
        self._active.append(self._start())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        span, token = self._active.pop()
        self._end(span, token, exc)

    async def __aenter__(self) -> step:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        """Decorate ``func`` so each call is one step span."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                span, token = self._start()
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    self._end(span, token, exc)
                    raise
                _count(span, result)
                self._end(span, token, None)
                return result

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            span, token = self._start()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                self._end(span, token, exc)
                raise
            _count(span, result)
            self._end(span, token, None)
            return result

        return cast(F, wrapper)


def _count(span: Span, result: Any) -> None:
    if isinstance(result, Sized) and not isinstance(result, (str, bytes, dict)):
        span.set_attribute(A.STEP_DOCUMENT_COUNT, len(result))


def _runtime() -> Any:
    from llmpulse.instrumentation.instrumentor import active_runtime

    return active_runtime()
