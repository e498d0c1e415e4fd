"""One LLM call's span: started by the request hook, finished exactly once.

:class:`Runtime` bundles what every wrapper needs (tracer, settings, pricing, content
policy); it is built once by ``instrument()`` and closed over by the wrapper factories.
:class:`CallRecorder` owns the per-call state. When another GenAI instrumentation already
opened a span for the same call (the official OpenAI instrumentation, OpenLLMetry,
OpenInference), the recorder annotates that span instead of starting a second one, and
leaves ending it to its owner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from llmpulse.contract import attributes as A
from llmpulse.contract.pricing import PricingTable
from llmpulse.instrumentation.config import Settings
from llmpulse.instrumentation.content import ContentPolicy
from llmpulse.instrumentation.context import current_attributes

_log = logging.getLogger(__name__)

_OTHER_LLM_MARKERS = (A.OPENLLMETRY_REQUEST_TYPE, A.OPENINFERENCE_MODEL_NAME)
_OPENINFERENCE_LLM_KINDS = frozenset({"LLM", "EMBEDDING"})
_PROBED_KEYS = frozenset(
    {A.SPAN_KIND, A.GEN_AI_OPERATION_NAME, A.OPENINFERENCE_SPAN_KIND, *_OTHER_LLM_MARKERS}
)


@dataclass(frozen=True)
class Runtime:
    """What the wrappers close over. Immutable; one per ``instrument()``."""

    tracer: Tracer
    settings: Settings
    pricing: PricingTable
    content: ContentPolicy


def foreign_llm_span(span: Span) -> Span | None:
    """``span`` (the parent of a new call) when it is an LLM span another instrumentation opened."""
    if not span.is_recording():
        return None
    attrs: Mapping[str, Any] | None = getattr(span, "attributes", None)
    if not attrs:
        return None
    try:
        # One pass over the keys instead of a lookup per key: the SDK's attribute mapping answers
        # a missing key (``in``, ``get``) by raising and catching KeyError inside, which made a
        # call under an agent's span (three keys missing) 4-6 us dearer than under a step's.
        present = _PROBED_KEYS.intersection(attrs)
    except RuntimeError:  # another thread added an attribute meanwhile
        present = frozenset(key for key in _PROBED_KEYS if key in attrs)
    if not present or A.SPAN_KIND in present:
        return None
    if A.GEN_AI_OPERATION_NAME in present and attrs[A.GEN_AI_OPERATION_NAME] in A.LLM_OPERATIONS:
        return span
    if A.OPENINFERENCE_SPAN_KIND in present and attrs[A.OPENINFERENCE_SPAN_KIND] in _OPENINFERENCE_LLM_KINDS:
        return span
    if not present.isdisjoint(_OTHER_LLM_MARKERS):
        return span
    return None


class CallRecorder:
    """Records one call on its span and ends the span exactly once."""

    __slots__ = (
        "_ended",
        "_owned",
        "_t0",
        "capture",
        "ctx",
        "endpoint",
        "hide_usage",
        "in_tool_loop",
        "model",
        "operation",
        "runtime",
        "span",
        "stream",
    )

    def __init__(
        self,
        runtime: Runtime,
        operation: str,
        model: str | None,
        attrs: dict[str, AttributeValue],
        *,
        stream: bool = False,
    ) -> None:
        self.runtime = runtime
        self.operation = operation
        self.model = model
        self.stream = stream
        self.hide_usage = False
        self.in_tool_loop = False  # the request continued a tool-call loop (named by its request)
        self.endpoint = ""
        self._ended = False
        # The context is read once: for the app's llmpulse.context attributes, the parent
        # span, and (by the hook) to make this call's span current.
        self.ctx = ctx = otel_context.get_current()
        extra = current_attributes(ctx)
        if extra:
            attrs.update(extra)
        attrs[A.SPAN_KIND] = A.SPAN_KIND_LLM
        foreign = foreign_llm_span(trace.get_current_span(ctx))
        if foreign is None:
            name = f"{operation} {model}" if model else operation
            self.span = runtime.tracer.start_span(name, ctx, SpanKind.CLIENT, attrs)
            self._owned = True
        else:
            self.span = foreign
            self._owned = False
            foreign.set_attributes(attrs)
        content = runtime.content
        self.capture = content.mode != "off" and content.decide(self.span)
        self._t0 = time.perf_counter()

    @property
    def ended(self) -> bool:
        """Whether :meth:`finish` already ran."""
        return self._ended

    def first_chunk(self) -> None:
        """Record time to first chunk, in seconds since the call started."""
        self.span.set_attribute(A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, time.perf_counter() - self._t0)

    def finish(self, attrs: dict[str, AttributeValue], error: BaseException | None = None) -> None:
        """Set the response attributes (and cost), mark errors, end the span. Runs once."""
        if self._ended:
            return
        self._ended = True
        try:
            if error is not None:
                attrs[A.ERROR_TYPE] = _error_type(error)
                attrs[A.FINISH_REASON] = A.FINISH_ERROR
            elif A.GEN_AI_USAGE_INPUT_TOKENS in attrs:
                self._cost(attrs)
            span = self.span
            span.set_attributes(attrs)
            if self._owned:
                if error is not None:
                    span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                span.end()
        except Exception:
            _log.debug("event=span_finish_failed", exc_info=True)

    def _cost(self, attrs: dict[str, AttributeValue]) -> None:
        table = self.runtime.pricing
        get = attrs.get
        model = get(A.GEN_AI_RESPONSE_MODEL) or self.model
        model = model if isinstance(model, str) else None
        tokens_in = int(get(A.GEN_AI_USAGE_INPUT_TOKENS, 0))  # type: ignore[arg-type]
        tokens_out = int(get(A.GEN_AI_USAGE_OUTPUT_TOKENS, 0))  # type: ignore[arg-type]
        read = int(get(A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, 0))  # type: ignore[arg-type]
        write = int(get(A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, 0))  # type: ignore[arg-type]
        write_1h = int(get(A.CACHE_CREATION_1H_INPUT_TOKENS, 0))  # type: ignore[arg-type]
        # keywords spelled out, not a dict unpacked: a third of this method's time went to that
        cost = table.cost_of(
            model, tokens_in, tokens_out, cache_read=read, cache_write=write, cache_write_1h=write_1h
        )
        if cost is None and model != self.model:
            cost = table.cost_of(
                self.model, tokens_in, tokens_out, cache_read=read, cache_write=write, cache_write_1h=write_1h
            )
        if cost is None:
            attrs[A.UNPRICED] = True
            return
        attrs[A.COST_USD] = cost
        attrs[A.PRICING_VERSION] = table.version


def _error_type(error: BaseException) -> str:
    return type(error).__qualname__
