"""Every Prometheus metric and label name the processor exports: the single source of truth.

Names are given *as exposed* (``llmpulse_requests_total``, not ``llmpulse_requests``), so a
PromQL expression, a dashboard or an alert rule can be checked against :data:`EXPORTED_SERIES`
by plain string comparison. Nothing else in the project spells a metric name.

Label conventions (one spelling everywhere, so PromQL joins need no ``label_replace``):

* ``service`` - the resource's ``service.name`` (``unknown_service``, the OpenTelemetry default,
  when absent), on every metric derived from spans,
* ``deployment_environment`` - the resource's ``deployment.environment.name`` (or the older
  ``deployment.environment``); empty, so absent in Prometheus, when the resource has neither,
* ``feature`` - the application feature (``llmpulse.feature``; ``unknown`` when absent),
* ``provider`` - ``gen_ai.provider.name`` (or the pre-1.37 ``gen_ai.system`` and the other
  producers' equivalents), e.g. ``openai``,
* ``model`` - the *requested* model (``gen_ai.request.model``), falling back to the response model,
* ``operation`` - ``gen_ai.operation.name`` (``chat``, ``embeddings``, ...).

The semantic-convention histograms keep their semconv names, units and advised buckets but use
these short label names too (``operation`` rather than ``gen_ai_operation_name``), plus
``feature``. Label values of every free-form label are capped per label; values past the cap are
folded into :data:`OVERFLOW_VALUE` and counted in :data:`LABEL_OVERFLOW_TOTAL`. A value unseen for
the idle time frees its slot (its series leave the exposition), counted in
:data:`LABEL_EVICTIONS_TOTAL`, so a flood of junk values does not keep later real ones out for
good. Prompt text and raw user ids are never label values.

Token types: ``input`` and ``output`` are the totals; ``cache_read`` and ``cache_creation`` are
*parts of* ``input`` and ``reasoning`` is part of ``output`` (semconv >= 1.37), so never sum all
token types together.

The processor exposes no ``_created`` series (its families come from a custom collector).
A label set seen for the first time is exposed at zero on its first scrape and with its counts
from the next one on (see :mod:`llmpulse.processor.metrics.exposition`), so ``rate()`` and
``increase()`` see the first events of a new series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from llmpulse.contract import attributes as A

# --- label names ------------------------------------------------------------------------
SERVICE: Final = "service"
DEPLOYMENT_ENVIRONMENT: Final = "deployment_environment"
FEATURE: Final = "feature"
PROVIDER: Final = "provider"
MODEL: Final = "model"
OPERATION: Final = "operation"
FINISH_REASON: Final = "finish_reason"
OUTCOME: Final = "outcome"
ERROR_TYPE: Final = "error_type"
TOKEN_TYPE: Final = "token_type"
RESPONSE_MODEL: Final = "response_model"
STEP: Final = "step"
KIND: Final = "kind"
SENTIMENT: Final = "sentiment"
LABEL: Final = "label"
REASON: Final = "reason"
RECEIVER: Final = "receiver"
VERSION: Final = "version"
PRICING_VERSION: Final = "pricing_version"
DIMENSION: Final = "dimension"
VALUE: Final = "value"

SERVICE_LABELS: Final = (SERVICE, DEPLOYMENT_ENVIRONMENT)
"""Where a span came from: the labels every metric derived from spans starts with."""
LLM_LABELS: Final = (*SERVICE_LABELS, FEATURE, PROVIDER, MODEL, OPERATION)
"""The label set every per-call LLM metric starts with."""
STEP_LABELS: Final = (*SERVICE_LABELS, FEATURE, STEP)
FEEDBACK_LABELS: Final = (*SERVICE_LABELS, FEATURE, KIND, SENTIMENT)

# --- fixed label values -----------------------------------------------------------------
# ``dimension`` of llmpulse_scope_requests_total: what a call says about the app around it
SCOPE_PROMPT_VERSION: Final = "prompt_version"
SCOPE_APP_VERSION: Final = "app_version"
SCOPE_QUERY_CATEGORY: Final = "query_category"
SCOPE_RAG_INDEX_VERSION: Final = "rag_index_version"
SCOPE_DIMENSIONS: Final = (
    SCOPE_PROMPT_VERSION,
    SCOPE_APP_VERSION,
    SCOPE_QUERY_CATEGORY,
    SCOPE_RAG_INDEX_VERSION,
)
"""Each dimension's values are capped like a label of their own (``label`` in the overflow counter)."""
OVERFLOW_VALUE: Final = "__other__"
"""Stands in for every label value past the per-label cap."""
OVERFLOW_SERIES: Final = "series"
"""Value of ``label`` in the overflow counter when a whole LLM label set was folded (series cap)."""
UNKNOWN_VALUE: Final = "unknown"
"""Used when a span does not carry the attribute a label comes from."""
UNKNOWN_SERVICE: Final = A.UNKNOWN_SERVICE
"""``service`` of spans whose resource has no ``service.name`` (the OpenTelemetry SDKs' default)."""
PRICING_REPORTED: Final = "reported"
"""``pricing_version`` of a cost the span carried without naming its pricing table."""

OUTCOME_OK: Final = "ok"
OUTCOME_ERROR: Final = "error"
OUTCOME_REFUSAL: Final = "refusal"
OUTCOMES: Final = (OUTCOME_OK, OUTCOME_ERROR, OUTCOME_REFUSAL)

FINISH_REASON_OTHER: Final = "other"  # a finish reason we could not map
FINISH_REASON_NONE: Final = "none"  # the span reports no finish reason
# The normalised values are llmpulse.contract.attributes.FINISH_REASONS plus the two above.

TOKEN_INPUT: Final = "input"
TOKEN_OUTPUT: Final = "output"
TOKEN_CACHE_READ: Final = "cache_read"
TOKEN_CACHE_CREATION: Final = "cache_creation"
TOKEN_REASONING: Final = "reasoning"
TOKEN_TYPES: Final = (TOKEN_INPUT, TOKEN_OUTPUT, TOKEN_CACHE_READ, TOKEN_CACHE_CREATION, TOKEN_REASONING)
SEMCONV_TOKEN_TYPES: Final = (TOKEN_INPUT, TOKEN_OUTPUT)

SENTIMENT_POSITIVE: Final = "positive"
SENTIMENT_NEGATIVE: Final = "negative"
SENTIMENT_NEUTRAL: Final = "neutral"
SENTIMENTS: Final = (SENTIMENT_POSITIVE, SENTIMENT_NEGATIVE, SENTIMENT_NEUTRAL)

RECEIVER_GRPC: Final = "grpc"
RECEIVER_HTTP: Final = "http"
RECEIVER_KAFKA: Final = "kafka"  # records read from the Kafka topic (processor.kafka)
RECEIVERS: Final = (RECEIVER_GRPC, RECEIVER_HTTP, RECEIVER_KAFKA)

# kind of an accepted span
ACCEPTED_LLM: Final = "llm"
ACCEPTED_STEP: Final = "step"
ACCEPTED_FEEDBACK: Final = "feedback"
ACCEPTED_DUPLICATE: Final = "duplicate"  # a second span for a call already counted
ACCEPTED_AGENT: Final = "agent"  # an agent run, workflow or chain span (read by the agents engine)
ACCEPTED_OTHER: Final = "other"  # not an LLM, step, agent or feedback span: ignored cheaply
ACCEPTED_KINDS: Final = (
    ACCEPTED_LLM,
    ACCEPTED_STEP,
    ACCEPTED_FEEDBACK,
    ACCEPTED_AGENT,
    ACCEPTED_DUPLICATE,
    ACCEPTED_OTHER,
)

# reason a single span was rejected (its batch-mates are kept)
REJECT_INVALID_TOKENS: Final = "invalid_tokens"
REJECT_INVALID_COST: Final = "invalid_cost"
REJECT_INVALID_FINISH_REASON: Final = "invalid_finish_reason"
REJECT_INVALID_DURATION: Final = "invalid_duration"
REJECT_INVALID_TIME_TO_FIRST_CHUNK: Final = "invalid_time_to_first_chunk"
REJECT_INVALID_ATTRIBUTE: Final = "invalid_attribute"  # a label attribute of the wrong type
REJECT_INVALID_FEEDBACK: Final = "invalid_feedback"
REJECT_INVALID_ID: Final = "invalid_id"  # a trace id not of 16 bytes or a span id not of 8
REJECT_REASONS: Final = (
    REJECT_INVALID_TOKENS,
    REJECT_INVALID_COST,
    REJECT_INVALID_FINISH_REASON,
    REJECT_INVALID_DURATION,
    REJECT_INVALID_TIME_TO_FIRST_CHUNK,
    REJECT_INVALID_ATTRIBUTE,
    REJECT_INVALID_FEEDBACK,
    REJECT_INVALID_ID,
)

# reason a whole request was refused
REFUSE_QUEUE_FULL: Final = "queue_full"  # RESOURCE_EXHAUSTED / 429, the client retries
REFUSE_SHUTTING_DOWN: Final = "shutting_down"  # UNAVAILABLE / 503, the client retries
REFUSE_DEADLINE_EXCEEDED: Final = "deadline_exceeded"  # queued past the client's deadline: not counted
REFUSE_UNDECODABLE: Final = "undecodable"  # INVALID_ARGUMENT / 400
REFUSE_TOO_LARGE: Final = "too_large"  # RESOURCE_EXHAUSTED / 413
REFUSE_UNAUTHENTICATED: Final = "unauthenticated"  # UNAUTHENTICATED / 401
REFUSE_UNSUPPORTED_MEDIA_TYPE: Final = "unsupported_media_type"  # 415
REFUSE_REASONS: Final = (
    REFUSE_QUEUE_FULL,
    REFUSE_SHUTTING_DOWN,
    REFUSE_UNDECODABLE,
    REFUSE_TOO_LARGE,
    REFUSE_UNAUTHENTICATED,
    REFUSE_UNSUPPORTED_MEDIA_TYPE,
    REFUSE_DEADLINE_EXCEEDED,
)
# why a save of a key's state (SPC charts, drift references) was refused by the store
SAVE_REFUSED_STALE_OWNER: Final = "stale_owner"  # another replica claimed the key since (fencing)
SAVE_REFUSED_REASONS: Final = (SAVE_REFUSED_STALE_OWNER,)

# --- advised buckets (semconv) ------------------------------------------------------------
DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TOKEN_BUCKETS: Final = tuple(float(4**i) for i in range(14))  # 1, 4, 16 ... 67108864
# At most 1.5x apart from 10 ms to 1 s, where retrieval, rerank and tool steps live: a p95 read
# from the buckets is then within half a bucket of the true one (120 ms reads 0.1-0.125 s).
STEP_DURATION_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2,
    0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
BATCH_SECONDS_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


# --- metric names (as exposed) ------------------------------------------------------------
# Semantic-convention histograms.
OPERATION_DURATION: Final = "gen_ai_client_operation_duration_seconds"
TOKEN_USAGE: Final = "gen_ai_client_token_usage"
TIME_TO_FIRST_CHUNK: Final = "gen_ai_client_operation_time_to_first_chunk_seconds"

# llmpulse metrics derived from LLM spans.
REQUESTS_TOTAL: Final = "llmpulse_requests_total"
ERRORS_TOTAL: Final = "llmpulse_errors_total"
REFUSALS_TOTAL: Final = "llmpulse_refusals_total"
TOKENS_TOTAL: Final = "llmpulse_tokens_total"
COST_USD_TOTAL: Final = "llmpulse_cost_usd_total"
UNPRICED_REQUESTS_TOTAL: Final = "llmpulse_unpriced_requests_total"
MODEL_MISMATCH_TOTAL: Final = "llmpulse_model_mismatch_total"
SCOPE_REQUESTS_TOTAL: Final = "llmpulse_scope_requests_total"
# ... from step spans
STEP_DURATION: Final = "llmpulse_step_duration_seconds"
STEP_ERRORS_TOTAL: Final = "llmpulse_step_errors_total"
# ... from feedback spans
FEEDBACK_TOTAL: Final = "llmpulse_feedback_total"
# ... about the labels themselves
LABEL_OVERFLOW_TOTAL: Final = "llmpulse_label_overflow_total"
LABEL_EVICTIONS_TOTAL: Final = "llmpulse_label_evictions_total"

# Self-metrics of the processor.
SPANS_RECEIVED_TOTAL: Final = "llmpulse_processor_spans_received_total"
SPANS_ACCEPTED_TOTAL: Final = "llmpulse_processor_spans_accepted_total"
SPANS_REJECTED_TOTAL: Final = "llmpulse_processor_spans_rejected_total"
SPANS_REFUSED_TOTAL: Final = "llmpulse_processor_spans_refused_total"
REQUESTS_REFUSED_TOTAL: Final = "llmpulse_processor_requests_refused_total"
QUEUE_SPANS: Final = "llmpulse_processor_queue_spans"
QUEUE_CAPACITY_SPANS: Final = "llmpulse_processor_queue_capacity_spans"
BATCH_PROCESSING_SECONDS: Final = "llmpulse_processor_batch_processing_seconds"
BUILD_INFO: Final = "llmpulse_processor_build_info"

MetricType = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One exported metric: exposed name, type, labels, help text and buckets (histograms)."""

    name: str
    type: MetricType
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] = ()
    exemplars: bool = False

    @property
    def family(self) -> str:
        """The family name prometheus-client uses (``_total`` stripped from counters)."""
        if self.type == "counter" and self.name.endswith("_total"):
            return self.name[: -len("_total")]
        return self.name

    @property
    def series(self) -> tuple[str, ...]:
        """Every sample name this metric exposes."""
        if self.type == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


METRICS: Final[tuple[MetricSpec, ...]] = (
    MetricSpec(
        OPERATION_DURATION,
        "histogram",
        LLM_LABELS,
        "Duration of GenAI operations (semconv gen_ai.client.operation.duration).",
        DURATION_BUCKETS,
        exemplars=True,
    ),
    MetricSpec(
        TOKEN_USAGE,
        "histogram",
        (*LLM_LABELS, TOKEN_TYPE),
        "Tokens per GenAI operation by token_type input|output (semconv gen_ai.client.token.usage).",
        TOKEN_BUCKETS,
    ),
    MetricSpec(
        TIME_TO_FIRST_CHUNK,
        "histogram",
        LLM_LABELS,
        "Time to the first streamed chunk (semconv gen_ai.client.operation.time_to_first_chunk).",
        DURATION_BUCKETS,
        exemplars=True,
    ),
    MetricSpec(
        REQUESTS_TOTAL,
        "counter",
        (*LLM_LABELS, FINISH_REASON, OUTCOME),
        "LLM calls by normalised finish reason and outcome (ok|error|refusal).",
    ),
    MetricSpec(ERRORS_TOTAL, "counter", (*LLM_LABELS, ERROR_TYPE), "Failed LLM calls by error.type."),
    MetricSpec(REFUSALS_TOTAL, "counter", LLM_LABELS, "LLM calls the model refused to answer."),
    MetricSpec(
        TOKENS_TOTAL,
        "counter",
        (*LLM_LABELS, TOKEN_TYPE),
        "Tokens by type; cache_read/cache_creation are part of input, reasoning part of output.",
    ),
    MetricSpec(
        COST_USD_TOTAL,
        "counter",
        (*LLM_LABELS, PRICING_VERSION),
        "Cost of LLM calls in US dollars, by the pricing table that priced them (span's or processor's).",
    ),
    MetricSpec(
        UNPRICED_REQUESTS_TOTAL,
        "counter",
        LLM_LABELS,
        "Successful LLM calls without a cost: none on the span and a model the pricing table does not know.",
    ),
    MetricSpec(
        MODEL_MISMATCH_TOTAL,
        "counter",
        (*LLM_LABELS, RESPONSE_MODEL),
        "Calls whose response model is not the requested model (nor a dated version of it).",
    ),
    MetricSpec(
        SCOPE_REQUESTS_TOTAL,
        "counter",
        (*LLM_LABELS, DIMENSION, VALUE),
        "LLM calls by the prompt version, app version, query category or RAG index version they name "
        "(dimension; calls that name none are not counted), for scoping a regression.",
    ),
    MetricSpec(
        STEP_DURATION,
        "histogram",
        STEP_LABELS,
        "Duration of pipeline steps (retrieval, rerank, tools, llmpulse steps).",
        STEP_DURATION_BUCKETS,
        exemplars=True,
    ),
    MetricSpec(STEP_ERRORS_TOTAL, "counter", STEP_LABELS, "Pipeline steps that ended in an error."),
    MetricSpec(
        FEEDBACK_TOTAL,
        "counter",
        FEEDBACK_LABELS,
        "User feedback events by kind and sentiment (positive|negative|neutral).",
    ),
    MetricSpec(
        LABEL_OVERFLOW_TOTAL,
        "counter",
        (LABEL,),
        f"Spans whose label value was folded into {OVERFLOW_VALUE} because the label reached its cap.",
    ),
    MetricSpec(
        LABEL_EVICTIONS_TOTAL,
        "counter",
        (LABEL,),
        "Label values that freed their slot under the cap after going unseen for --label-idle-seconds "
        "(their series left the exposition).",
    ),
    MetricSpec(SPANS_RECEIVED_TOTAL, "counter", (RECEIVER,), "Spans in decoded export requests."),
    MetricSpec(
        SPANS_ACCEPTED_TOTAL,
        "counter",
        (KIND,),
        "Spans processed, by kind (llm|step|feedback|agent|duplicate|other).",
    ),
    MetricSpec(SPANS_REJECTED_TOTAL, "counter", (REASON,), "Spans rejected for bad values, by reason."),
    MetricSpec(
        SPANS_REFUSED_TOTAL,
        "counter",
        (RECEIVER, REASON),
        "Spans in decoded requests refused whole (queue_full, shutting_down); the client retries.",
    ),
    MetricSpec(
        REQUESTS_REFUSED_TOTAL,
        "counter",
        (RECEIVER, REASON),
        "Export requests answered with an error status, by reason.",
    ),
    MetricSpec(QUEUE_SPANS, "gauge", (), "Spans waiting in the processing queue."),
    MetricSpec(QUEUE_CAPACITY_SPANS, "gauge", (), "Capacity of the processing queue in spans."),
    MetricSpec(
        BATCH_PROCESSING_SECONDS,
        "histogram",
        (),
        "Time to process one export request.",
        BATCH_SECONDS_BUCKETS,
    ),
    MetricSpec(BUILD_INFO, "gauge", (VERSION,), "Always 1; the version label says which llmpulse runs."),
)

METRICS_BY_NAME: Final = {spec.name: spec for spec in METRICS}

EXPORTED_SERIES: Final[frozenset[str]] = frozenset(name for spec in METRICS for name in spec.series)
"""Every sample name a scrape of ``/metrics`` can contain."""
