"""What the quality engine consumes and produces: samples, feedback, verdicts, evaluation records.

A :class:`QualitySample` is one LLM call as the processor saw it. Content fields are ``None``
when the span carried no content (content capture is opt-in and usually sampled); the engine
still uses the numbers (error, latency, cost) for its control charts. :func:`messages_from_json`
and :func:`output_text` turn the semconv ``gen_ai.input.messages`` / ``gen_ai.output.messages``
JSON strings into what the sample holds, with the rules of :mod:`llmpulse.contract.content`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmpulse.contract import attributes as A
from llmpulse.contract.content import joined_output_text, joined_user_text, parse_content

__all__ = [
    "EvaluationRecord",
    "FeedbackEvent",
    "QualitySample",
    "Verdict",
    "messages_from_json",
    "output_text",
    "user_text",
]


@dataclass(slots=True)
class QualitySample:
    """One LLM call. ``trace_id`` is the 16-byte OTLP trace id; times are seconds.

    Treat as immutable. Not ``frozen``: one is built per LLM call on the ingest path, and a
    frozen dataclass's ``__init__`` costs four times as much (1.7 against 0.4 µs here).
    """

    trace_id: bytes
    feature: str
    model: str
    span_id: bytes = b""
    provider: str = ""
    response_id: str | None = None
    input_messages: list[dict[str, Any]] | None = None
    """Semconv input messages (``[{"role": ..., "parts": [{"type": "text", "content": ...}]}]``)."""
    output_text: str | None = None
    """The answer's text; ``None`` when the span carried no output content."""
    system_instructions: str | None = None
    retrieved_context: list[str] | None = None
    output_type: str | None = None
    """``gen_ai.output.type``: ``json`` when JSON output was requested."""
    finish_reason: str | None = None
    """Normalised finish reason (``llmpulse.finish_reason``)."""
    refusal: bool = False
    """The API signalled a refusal (``llmpulse.refusal``)."""
    input_tokens: int | None = None
    output_tokens: int | None = None
    error_type: str | None = None
    duration_s: float | None = None
    cost_usd: float | None = None
    timestamp: float = 0.0
    """End time, Unix seconds."""
    content_bytes: int = 0
    """Characters of content the sample holds (as received), for memory budgets."""
    service: str = A.UNKNOWN_SERVICE
    """The resource's ``service.name``: quality state is kept per (service, feature)."""
    response_model: str | None = None
    """``gen_ai.response.model`` when the span names one."""
    prompt_version: str | None = None
    """What the call says about the app around it (``None`` when it names nothing): recorded
    with a flagged sample so the incident page can scope a regression by them."""
    app_version: str | None = None
    query_category: str | None = None
    rag_index_version: str | None = None
    scope: str = "call"
    """``call`` (one LLM call) or ``session`` (a whole conversation in ``input_messages``,
    judged on the session dimensions)."""
    conversation_id: str = ""
    environment: str = ""
    """The call's conversation and ``deployment.environment`` ("" when none; set on samples
    with content): a flagged call's open session starts keeping its turns from it."""

    @property
    def key(self) -> tuple[str, str]:
        """``(service, feature)``: what the engine keeps charts, counts and samples under."""
        return (self.service, self.feature)

    @property
    def has_content(self) -> bool:
        """Whether the span carried the answer's text (needed for content checks and judging)."""
        return self.output_text is not None

    @property
    def is_error(self) -> bool:
        """The call failed (``error.type`` set or finish reason ``error``)."""
        return self.error_type is not None or self.finish_reason == A.FINISH_ERROR


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    """One piece of user feedback (a feedback span).

    ``kind`` is one of :data:`llmpulse.contract.attributes.FEEDBACK_KINDS`; ``sentiment`` is
    ``positive``, ``negative`` or ``neutral`` (the processor's normalisation of the value).
    """

    feature: str
    kind: str
    sentiment: str = "neutral"
    response_id: str | None = None
    trace_id: bytes = b""
    comment: str | None = None
    timestamp: float = 0.0
    service: str = A.UNKNOWN_SERVICE

    @property
    def key(self) -> tuple[str, str]:
        """``(service, feature)``."""
        return (self.service, self.feature)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judge's answer for one sample: a score per dimension (1-5) and a short explanation."""

    scores: dict[str, float]
    explanation: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def overall(self) -> float:
        """Mean of the dimension scores."""
        return sum(self.scores.values()) / len(self.scores)


@dataclass(frozen=True, slots=True)
class EvaluationRecord:
    """One dimension of a verdict shaped like the semconv event ``gen_ai.evaluation.result``."""

    name: str
    score: float
    label: str
    """``pass`` or ``fail``."""
    explanation: str
    response_id: str | None
    trace_id: bytes
    span_id: bytes
    feature: str
    attributes: dict[str, Any] = field(default_factory=dict)

    EVENT_NAME = "gen_ai.evaluation.result"

    @classmethod
    def from_verdict(
        cls, sample: QualitySample, verdict: Verdict, fail_at_or_below: float
    ) -> list[EvaluationRecord]:
        """One record per dimension; a score at or below ``fail_at_or_below`` is labelled ``fail``."""
        records = []
        for name, score in verdict.scores.items():
            label = "fail" if score <= fail_at_or_below else "pass"
            attributes: dict[str, Any] = {
                A.GEN_AI_EVALUATION_NAME: name,
                A.GEN_AI_EVALUATION_SCORE_VALUE: score,
                A.GEN_AI_EVALUATION_SCORE_LABEL: label,
                A.GEN_AI_EVALUATION_EXPLANATION: verdict.explanation,
            }
            if sample.response_id:
                attributes[A.GEN_AI_RESPONSE_ID] = sample.response_id
            records.append(
                cls(
                    name,
                    score,
                    label,
                    verdict.explanation,
                    sample.response_id,
                    sample.trace_id,
                    sample.span_id,
                    sample.feature,
                    attributes,
                )
            )
        return records


def messages_from_json(value: str | None) -> list[dict[str, Any]] | None:
    """Parse a semconv messages attribute; ``None`` when absent or not a JSON list of objects.

    The instrumentation truncates long content, which breaks the JSON: such a value is treated
    as absent rather than guessed at (:meth:`llmpulse.contract.content.Content.input_messages`).
    """
    return parse_content(value).input_messages()


def output_text(messages: list[dict[str, Any]] | None) -> str | None:
    """The text of the assistant's output messages, or ``None`` when there are none."""
    return joined_output_text(messages)


def user_text(messages: list[dict[str, Any]] | None) -> str:
    """The concatenated text of the ``user`` messages (empty when there is none)."""
    return joined_user_text(messages)
