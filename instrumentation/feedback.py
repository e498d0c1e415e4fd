"""``llmpulse.feedback(...)``: user feedback and implicit signals, recorded as spans.

A feedback span belongs to the current trace when there is one (so it sits next to the
call it judges), and carries ``gen_ai.response.id`` when the app knows which response the
feedback is about, so the processor can join feedback to calls recorded earlier.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from llmpulse.contract import attributes as A
from llmpulse.contract.redaction import Redactor
from llmpulse.instrumentation.context import current_attributes

_FALLBACK_SCOPE = "llmpulse"


_THUMBS = {"up": 1.0, "down": 0.0}


def _number(value: str | float | int | bool | None) -> float | None:
    """The feedback value as the float the span contract carries."""
    if value is None:
        return None
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _THUMBS:
            return _THUMBS[word]
        try:
            return float(word)
        except ValueError:
            raise ValueError(f"feedback value {value!r} is not a number, 'up' or 'down'") from None
    return float(value)


def feedback(
    kind: str,
    value: str | float | int | bool | None = None,
    *,
    response_id: str | None = None,
    comment: str | None = None,
) -> None:
    """Record one feedback event.

    ``kind`` is one of ``thumbs``, ``rating``, ``comment`` (explicit) or ``correction``,
    ``follow_up``, ``abandoned`` (implicit signals); see ``llmpulse.contract.attributes.FEEDBACK_KINDS``.
    ``value`` is ``"up"``/``"down"`` (or ``True``/``False``, ``1``/``0``) for thumbs and a number
    for a rating; it is recorded as a number (the span contract: thumbs up 1, down 0). ``comment``
    is free text and passes through the built-in redaction before it is recorded.

    Raises ``ValueError`` for an unknown ``kind`` or a value that is not a number (programming
    errors at the call site).
    """
    if kind not in A.FEEDBACK_KINDS:
        raise ValueError(f"unknown feedback kind {kind!r}; use one of {', '.join(A.FEEDBACK_KINDS)}")
    number = _number(value)
    from llmpulse.instrumentation.instrumentor import active_runtime

    runtime = active_runtime()
    tracer = runtime.tracer if runtime is not None else trace.get_tracer(_FALLBACK_SCOPE)
    attrs: dict[str, AttributeValue] = {
        **current_attributes(),
        A.SPAN_KIND: A.SPAN_KIND_FEEDBACK,
        A.FEEDBACK_KIND: kind,
    }
    if number is not None:
        attrs[A.FEEDBACK_VALUE] = number
    if response_id is not None:
        attrs[A.GEN_AI_RESPONSE_ID] = response_id
    if comment:
        redact = runtime.content.text if runtime is not None else Redactor()
        attrs[A.FEEDBACK_COMMENT] = redact(comment)
    tracer.start_span(f"feedback {kind}", kind=SpanKind.INTERNAL, attributes=attrs).end()
