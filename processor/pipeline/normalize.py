"""Turn one OTLP span, whoever produced it, into one internal record.

Understood producers: llmpulse's own instrumentation (``llmpulse.span.kind``), the official
OpenTelemetry GenAI instrumentations (current and pre-1.37 names), OpenLLMetry, OpenInference
and the ``anthropic`` SDK's own spans (scope ``com.anthropic.sdk.python``, flagged
``secondary`` so :mod:`llmpulse.processor.pipeline.dedup` can drop them when another span describes
the same call).

This is the hot path. A span's attributes are scanned once; only the keys in :data:`_KEYS`
are kept, as plain Python values (:func:`span_values`; the C reader of
:mod:`~llmpulse.processor.pipeline.wire` produces the same straight from the request bytes),
and a span that has none of them is classified as "other" without further work. A span with a
bad value yields the rejection reason (a ``str`` from :mod:`llmpulse.processor.metrics.names`)
instead of a record.
"""

from __future__ import annotations

import math
from typing import Any

from llmpulse.contract import attributes as A
from llmpulse.contract.finish_reasons import normalize_finish_reason
from llmpulse.processor.metrics import names as M
from llmpulse.processor.pipeline.records import AgentSpan, Feedback, LLMCall, Record, StepRun
from llmpulse.processor.pipeline.sentiment import sentiment_of

# Attribute key -> slot in the per-span value list. The order groups the keys so that the hot
# path can test a whole group for absence with one slice comparison: first the keys nearly every
# LLM span carries, then the LLM keys most spans lack (other producers' names, cache tokens,
# flags, content, conversation, scope), then the keys of other kinds of span.
_KEYS = (
    A.SPAN_KIND,
    A.GEN_AI_OPERATION_NAME,
    A.GEN_AI_PROVIDER_NAME,
    A.GEN_AI_REQUEST_MODEL,
    A.GEN_AI_RESPONSE_MODEL,
    A.FEATURE,
    A.FINISH_REASON,
    A.GEN_AI_RESPONSE_FINISH_REASONS,
    A.GEN_AI_USAGE_INPUT_TOKENS,
    A.GEN_AI_USAGE_OUTPUT_TOKENS,
    A.COST_USD,
    A.GEN_AI_RESPONSE_ID,
    # other producers' names of the keys above
    A.LEGACY_GEN_AI_SYSTEM,
    A.OPENINFERENCE_PROVIDER,
    A.OPENINFERENCE_SYSTEM,
    A.OPENINFERENCE_MODEL_NAME,
    A.OPENINFERENCE_FINISH_REASON,
    A.ANTHROPIC_SDK_STOP_REASON,
    A.LEGACY_GEN_AI_USAGE_PROMPT_TOKENS,
    A.OPENINFERENCE_TOKEN_COUNT_PROMPT,
    A.LEGACY_GEN_AI_USAGE_COMPLETION_TOKENS,
    A.OPENINFERENCE_TOKEN_COUNT_COMPLETION,
    # cache and reasoning tokens
    A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    A.OPENLLMETRY_CACHE_READ_INPUT_TOKENS,
    A.OPENINFERENCE_TOKEN_COUNT_CACHE_READ,
    A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    A.ANTHROPIC_SDK_CACHE_WRITE_INPUT_TOKENS,
    A.OPENLLMETRY_CACHE_CREATION_INPUT_TOKENS,
    A.OPENINFERENCE_TOKEN_COUNT_CACHE_WRITE,
    A.CACHE_CREATION_1H_INPUT_TOKENS,
    A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    # per-call flags and values
    A.UNPRICED,
    A.REFUSAL,
    A.ERROR_TYPE,
    A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    A.PRICING_VERSION,
    A.GEN_AI_OUTPUT_TYPE,
    A.GEN_AI_INPUT_MESSAGES,  # kept as text, parsed only when an engine asks (LLMCall.content)
    A.GEN_AI_OUTPUT_MESSAGES,
    A.GEN_AI_SYSTEM_INSTRUCTIONS,
    # conversation
    A.GEN_AI_CONVERSATION_ID,
    A.SESSION_ID,
    A.OPENLLMETRY_SESSION_ID,
    A.OPENLLMETRY_CONVERSATION_ID,
    A.OPENLLMETRY_CHAT_ID,
    # the agent of the run a span is part of (llmpulse's key; the official openai-agents
    # instrumentation writes gen_ai.agent.name on a run's children as well)
    A.RUN_AGENT_NAME,
    A.GEN_AI_AGENT_NAME,
    # what the model asked of tools and whether the request answered one (a tool-call loop)
    A.TOOL_CALLS_COUNT,
    A.TOOL_CALLS_HASHES,
    A.TOOL_RESULTS_COUNT,
    A.TOOL_LOOP_ID,
    # scope (what the incident page scopes a regression by)
    A.PROMPT_VERSION,
    A.OPENINFERENCE_PROMPT_TEMPLATE_VERSION,
    A.OPENLLMETRY_PROMPT_VERSION,
    A.APP_VERSION,
    A.QUERY_CATEGORY,
    A.OPENLLMETRY_QUERY_CATEGORY,
    A.RAG_INDEX_VERSION,
    # other kinds of span: steps, tools, agents, feedback
    A.OPENINFERENCE_SPAN_KIND,
    A.OPENLLMETRY_REQUEST_TYPE,
    A.OPENLLMETRY_SPAN_KIND,
    A.STEP_NAME,
    A.GEN_AI_TOOL_NAME,
    A.OPENINFERENCE_TOOL_NAME,
    A.OPENLLMETRY_ENTITY_NAME,
    A.TOOL_ARGUMENTS_HASH,
    A.GEN_AI_TOOL_CALL_ARGUMENTS,
    A.OPENINFERENCE_INPUT_VALUE,
    A.OPENLLMETRY_ENTITY_INPUT,
    A.OPENINFERENCE_AGENT_NAME,
    A.FEEDBACK_KIND,
    A.FEEDBACK_VALUE,
)
(
    _KIND, _OP, _PROVIDER, _REQ_MODEL, _RESP_MODEL, _FEATURE, _FINISH, _FINISH_REASONS, _IN, _OUT,
    _COST, _RESPONSE_ID,
    _SYSTEM, _OI_PROVIDER, _OI_SYSTEM, _OI_MODEL, _OI_FINISH, _SDK_STOP, _IN_LEGACY, _IN_OI,
    _OUT_LEGACY, _OUT_OI,
    _CACHE_READ, _CACHE_READ_OLLM, _CACHE_READ_OI, _CACHE_CREATION, _SDK_CACHE_WRITE,
    _CACHE_CREATION_OLLM, _CACHE_WRITE_OI, _CACHE_CREATION_1H, _REASONING,
    _UNPRICED, _REFUSAL, _ERROR_TYPE, _TTFC, _PRICING_VERSION, _OUTPUT_TYPE, _INPUT_MESSAGES,
    _OUTPUT_MESSAGES, _SYSTEM_INSTRUCTIONS,
    _CONVERSATION, _SESSION, _OLLM_SESSION, _OLLM_CONVERSATION, _OLLM_CHAT, _RUN_AGENT, _AGENT_NAME,
    _TOOL_CALLS_COUNT, _TOOL_CALLS_HASHES, _TOOL_RESULTS, _TOOL_LOOP_ID,
    _PROMPT_VERSION, _OI_PROMPT_VERSION, _OLLM_PROMPT_VERSION, _APP_VERSION, _QUERY_CATEGORY,
    _OLLM_QUERY_CATEGORY, _RAG_INDEX_VERSION,
    _OI_KIND, _REQUEST_TYPE, _OLLM_KIND, _STEP_NAME, _TOOL_NAME, _OI_TOOL_NAME, _OLLM_ENTITY,
    _TOOL_ARGS_HASH, _TOOL_ARGS, _OI_INPUT, _OLLM_INPUT, _OI_AGENT_NAME, _FB_KIND,
    _FB_VALUE,
) = range(len(_KEYS))  # fmt: skip
# Groups of slots tested for absence at once: vals[a:b] == [None] * (b - a)
_ALIASES = (_SYSTEM, _OUT_OI + 1)  # other producers' provider, model, finish and token keys
_CACHE = (_CACHE_READ, _REASONING + 1)
# conversation, run agent and tool-loop keys: one test for the spans (most) that carry none
_RUN_CONTEXT = (_CONVERSATION, _TOOL_LOOP_ID + 1)
_SCOPES = (_PROMPT_VERSION, _RAG_INDEX_VERSION + 1)
_NO_ALIASES = [None] * (_ALIASES[1] - _ALIASES[0])
_NO_CACHE = [None] * (_CACHE[1] - _CACHE[0])
_NO_RUN_CONTEXT = [None] * (_RUN_CONTEXT[1] - _RUN_CONTEXT[0])
_NO_SCOPE = [None] * (_SCOPES[1] - _SCOPES[0])
_TOOL_ARGUMENT_SLOTS = (_TOOL_ARGS_HASH, _TOOL_ARGS, _OI_INPUT, _OLLM_INPUT)
_TOOL_SPAN_PREFIX = f"{A.OP_EXECUTE_TOOL} "
_CONVERSATION_SLOTS = (_CONVERSATION, _SESSION, _OLLM_SESSION, _OLLM_CONVERSATION, _OLLM_CHAT)
MAX_CONVERSATION_ID_LENGTH = 256  # longer ids are cut: they key session state, never a label
MAX_SCOPE_VALUE_LENGTH = 128  # prompt/app/RAG index versions and query categories: label values
KEYS = _KEYS
"""The attribute keys the normaliser reads, in slot order (the C reader is configured with them)."""
_SLOTS: dict[str, int] = {key: i for i, key in enumerate(_KEYS)}
_N_SLOTS = len(_KEYS)

_STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR
_BAD = -1  # sentinel from the numeric readers: the value is present but invalid
_OTHER_ERROR = "_OTHER"  # semconv's error.type fallback

_STEP_OPERATIONS = frozenset({A.OP_RETRIEVAL, A.OP_EXECUTE_TOOL})
_KIND_AGENT = "agent"  # internal: an AgentSpan record (run or chain)
# agent kinds (AgentSpan.kind): "agent" and "workflow" spans are runs, a "chain" is one at a trace's root
RUN_AGENT = "agent"
RUN_WORKFLOW = "workflow"
RUN_CHAIN = "chain"
_RUN_OPERATIONS = {A.OP_INVOKE_AGENT: RUN_AGENT, A.OP_INVOKE_WORKFLOW: RUN_WORKFLOW}
# openinference.span.kind -> (record type, operation or step name)
_OI_LLM_KINDS = {"LLM": A.OP_CHAT, "EMBEDDING": A.OP_EMBEDDINGS}
_OI_STEP_KINDS = {
    "RETRIEVER": A.OP_RETRIEVAL,
    "RERANKER": "rerank",
    A.OPENINFERENCE_KIND_TOOL: A.OP_EXECUTE_TOOL,
}
_OI_RUN_KINDS = {A.OPENINFERENCE_KIND_AGENT: RUN_AGENT, A.OPENINFERENCE_KIND_CHAIN: RUN_CHAIN}
# traceloop.span.kind -> agent kind (its "tool" spans are tool steps)
_OLLM_RUN_KINDS = {"agent": RUN_AGENT, "workflow": RUN_WORKFLOW, "task": RUN_CHAIN}
_OLLM_TOOL = "tool"
# OpenLLMetry llm.request.type -> operation
_REQUEST_TYPES = {
    "chat": A.OP_CHAT,
    "completion": A.OP_TEXT_COMPLETION,
    "embedding": A.OP_EMBEDDINGS,
    "rerank": "rerank",
}


class _Marker:
    """A plain attribute value that is no str, bool, int, float or array (see :data:`EMPTY`)."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


EMPTY = _Marker("EMPTY")
"""The plain value of an ``AnyValue`` with nothing set."""
OTHER = _Marker("OTHER")
"""The plain value of a key-value list, bytes, or an array nested in an array."""

# Attribute values are read as plain Python values: str, bool, int, float, a tuple of plain
# values for an array, or EMPTY / OTHER. The C reader (_otlp) produces them straight from the
# request bytes; _plain converts upb's AnyValue for requests that arrive as messages.
_SCALARS = {
    "string_value": lambda v: v.string_value,
    "bool_value": lambda v: v.bool_value,
    "int_value": lambda v: v.int_value,
    "double_value": lambda v: v.double_value,
}


def _plain(value: Any, shallow: bool = False) -> Any:
    """The plain value of an OTLP ``AnyValue`` message."""
    which = value.WhichOneof("value")
    if which is None:
        return EMPTY
    read = _SCALARS.get(which)
    if read is not None:
        return read(value)
    if which == "array_value" and not shallow:
        return tuple(_plain(item, True) for item in value.array_value.values)
    return OTHER


def _text(value: Any) -> str | None:
    """A string attribute (``""`` when nothing is set); ``None`` when it holds another type."""
    if type(value) is str:
        return value
    return "" if value is EMPTY else None


def _string(value: Any) -> str | None:
    """A string attribute's text (``""`` kept); ``None`` when absent or of another type."""
    return value if type(value) is str else None


# Plausible maxima per call: beyond them a value is a bug or an attack (1.7e308 tokens overflow
# a sum and break the exposition; 1e308 USD poisons an SPC baseline), so the span is rejected.
MAX_TOKENS_PER_CALL = 100_000_000
MAX_COST_USD_PER_CALL = 10_000.0
MAX_DURATION_S = 86_400.0


def _count(value: Any) -> int:
    """A token count in [0, MAX_TOKENS_PER_CALL], or ``_BAD``."""
    kind = type(value)
    if kind is int:
        return value if 0 <= value <= MAX_TOKENS_PER_CALL else _BAD
    if value is EMPTY:
        return 0
    if kind is float and 0 <= value <= MAX_TOKENS_PER_CALL and value.is_integer():
        return int(value)
    return _BAD


def _amount(value: Any) -> float:
    """A finite number >= 0 (cost, seconds), or ``_BAD``."""
    kind = type(value)
    if kind is float:
        if 0 < value < math.inf:
            return value
        return 0.0 if value == 0 else _BAD
    if kind is int:
        return float(value) if value >= 0 else _BAD
    return 0.0 if value is EMPTY else _BAD


def _first_count(vals: list[Any], *slots: int) -> int | None:
    for slot in slots:
        value = vals[slot]
        if value is not None:
            return _count(value)
    return None


def _first_text(vals: list[Any], *slots: int) -> str:
    """First non-empty string among ``slots``; ``""`` if none. Non-string values are skipped."""
    for slot in slots:
        value = vals[slot]
        if value and type(value) is str:
            return value
    return ""


def _pick(vals: list[Any], *slots: int) -> str | None:
    """First non-empty string among ``slots``, ``""`` if none, None if one holds another type."""
    for slot in slots:
        value = vals[slot]
        if value is not None:
            if type(value) is str:
                if value:
                    return value
            elif value is not EMPTY:
                return None
    return ""


def _scope_text(vals: list[Any], *slots: int) -> str:
    """First non-empty string (or integer, as Traceloop writes prompt versions) among ``slots``,
    cut to :data:`MAX_SCOPE_VALUE_LENGTH`; ``""`` if none."""
    for slot in slots:
        value = vals[slot]
        if value is not None:
            kind = type(value)
            if kind is str:
                if value:
                    return value[:MAX_SCOPE_VALUE_LENGTH]
            elif kind is int:
                return str(value)
    return ""


def _str(value: Any) -> str:
    """The text of a string value, ``""`` for any other (or no) value."""
    return value if type(value) is str else ""


def _finish_reason(vals: list[Any]) -> str | None:
    """The normalised finish reason, ``FINISH_REASON_NONE`` if absent, None if of the wrong type."""
    value = vals[_FINISH]
    if value is not None:
        text = _text(value)
        return None if text is None else (text or M.FINISH_REASON_NONE)
    value = vals[_FINISH_REASONS]
    if value is not None:
        if type(value) is tuple:
            if not value:
                return M.FINISH_REASON_NONE
            first = value[0]
            return normalize_finish_reason(first) if type(first) is str else None
        if type(value) is str:  # a producer that flattened the array
            return normalize_finish_reason(value)
        return None
    for slot in (_OI_FINISH, _SDK_STOP):
        value = vals[slot]
        if value is not None:
            text = _text(value)
            if text is None:
                return None
            return normalize_finish_reason(text) if text else M.FINISH_REASON_NONE
    return M.FINISH_REASON_NONE


# A span as the normaliser reads it: (vals, trace_id, span_id, parent_span_id, name,
# start_time_unix_nano, end_time_unix_nano, status code, ...), the layout of the C reader's tuples.
H_VALS, H_TRACE_ID, H_SPAN_ID, H_PARENT_ID, H_NAME, H_START, H_END, H_STATUS = range(8)


def span_values(span: Any) -> list[Any] | None:
    """The plain values of the normaliser's keys among an OTLP span's attributes (None: none)."""
    vals: list[Any] | None = None
    slots_get = _SLOTS.get
    for kv in span.attributes:
        slot = slots_get(kv.key)
        if slot is not None:
            if vals is None:
                vals = [None] * _N_SLOTS
            vals[slot] = _plain(kv.value)
    return vals


def normalize_span(
    span: Any,
    secondary: bool = False,
    service: str = M.UNKNOWN_SERVICE,
    environment: str = "",
    app_version: str = "",
) -> Record:
    """Normalise one ``opentelemetry.proto.trace.v1.Span``.

    ``secondary`` marks spans from a producer that duplicates another's (the anthropic SDK);
    ``service``, ``environment`` and ``app_version`` (its ``service.version``, the app version of
    a call whose span names none) come from the span's resource
    (:func:`~llmpulse.processor.pipeline.resource.resource_context`).
    Returns an :class:`LLMCall`, :class:`StepRun` or :class:`Feedback`; a rejection reason
    (``str``) for a span with bad values; or None for a span llmpulse does not care about.
    """
    vals = span_values(span)
    if vals is None:
        return None
    head = (
        vals,
        span.trace_id,
        span.span_id,
        span.parent_span_id,
        span.name,
        span.start_time_unix_nano,
        span.end_time_unix_nano,
        span.status.code,
    )
    return normalize_values(head, secondary, service, environment, app_version)


def normalize_values(
    head: tuple[Any, ...], secondary: bool, service: str, environment: str, app_version: str = ""
) -> Record:
    """:func:`normalize_span` on a span read into ``head`` (see :data:`H_VALS`); its vals not None."""
    vals: list[Any] = head[H_VALS]
    if len(head[H_TRACE_ID]) != 16 or len(head[H_SPAN_ID]) != 8:
        return M.REJECT_INVALID_ID

    value = vals[_KIND]
    kind = value if type(value) is str else ""
    value = vals[_OP]
    operation = value if type(value) is str else ""
    if not kind:
        if operation in A.LLM_OPERATIONS:
            kind = A.SPAN_KIND_LLM
        elif operation in _STEP_OPERATIONS:
            kind = A.SPAN_KIND_STEP
        elif operation in _RUN_OPERATIONS:
            kind, operation = _KIND_AGENT, _RUN_OPERATIONS[operation]
        elif vals[_OI_KIND] is not None:
            oi_kind = _str(vals[_OI_KIND])
            if oi_kind in _OI_LLM_KINDS:
                kind, operation = A.SPAN_KIND_LLM, _OI_LLM_KINDS[oi_kind]
            elif oi_kind in _OI_STEP_KINDS:
                kind, operation = A.SPAN_KIND_STEP, _OI_STEP_KINDS[oi_kind]
            elif oi_kind in _OI_RUN_KINDS:
                kind, operation = _KIND_AGENT, _OI_RUN_KINDS[oi_kind]
        elif vals[_REQUEST_TYPE] is not None:
            mapped = _REQUEST_TYPES.get(_str(vals[_REQUEST_TYPE]))
            if mapped == "rerank":
                kind, operation = A.SPAN_KIND_STEP, mapped
            elif mapped is not None:
                kind, operation = A.SPAN_KIND_LLM, mapped
        if not kind and vals[_OLLM_KIND] is not None:
            ollm_kind = _str(vals[_OLLM_KIND])
            if ollm_kind in _OLLM_RUN_KINDS:
                kind, operation = _KIND_AGENT, _OLLM_RUN_KINDS[ollm_kind]
            elif ollm_kind == _OLLM_TOOL:
                kind, operation = A.SPAN_KIND_STEP, A.OP_EXECUTE_TOOL

    if kind == A.SPAN_KIND_LLM:
        call = _llm_call(head, vals, operation or A.OP_CHAT, secondary)
        if type(call) is LLMCall:
            call.service = service
            call.environment = environment
            if not call.app_version:
                call.app_version = app_version[:MAX_SCOPE_VALUE_LENGTH]
        return call
    if kind == A.SPAN_KIND_STEP:
        return _step_run(head, vals, operation, service, environment)
    if kind == _KIND_AGENT:
        return _agent_span(head, vals, operation, service, environment)
    if kind == A.SPAN_KIND_FEEDBACK:
        return _feedback(vals, service, environment)
    return None


def _duration(head: tuple[Any, ...]) -> float:
    start: int = head[H_START]
    end: int = head[H_END]
    if end < start:
        return _BAD
    seconds = (end - start) / 1e9
    return seconds if seconds <= MAX_DURATION_S else _BAD


def _llm_call(head: tuple[Any, ...], vals: list[Any], operation: str, secondary: bool) -> LLMCall | str:
    # The hot path: the common case (the keys every LLM span carries, as plain strings and
    # integers) is read inline, and each group of keys most spans lack is skipped when all of
    # its slots are empty; anything else goes through the general readers above.
    start: int = head[H_START]
    end: int = head[H_END]
    if end < start:
        return M.REJECT_INVALID_DURATION
    duration = (end - start) / 1e9
    if duration > MAX_DURATION_S:
        return M.REJECT_INVALID_DURATION
    aliases = vals[_ALIASES[0] : _ALIASES[1]] != _NO_ALIASES
    value = vals[_FINISH]
    finish = (value or M.FINISH_REASON_NONE) if type(value) is str else _finish_reason(vals)
    if finish is None:
        return M.REJECT_INVALID_FINISH_REASON

    value = vals[_IN]
    if type(value) is int and 0 <= value <= MAX_TOKENS_PER_CALL:
        tokens_in: int | None = value
    elif value is not None:
        tokens_in = _count(value)
    else:
        tokens_in = _first_count(vals, _IN_LEGACY, _IN_OI) if aliases else None
    value = vals[_OUT]
    if type(value) is int and 0 <= value <= MAX_TOKENS_PER_CALL:
        tokens_out: int | None = value
    elif value is not None:
        tokens_out = _count(value)
    else:
        tokens_out = _first_count(vals, _OUT_LEGACY, _OUT_OI) if aliases else None
    if vals[_CACHE[0] : _CACHE[1]] == _NO_CACHE:
        cache_read = cache_creation = cache_long = reasoning = None
    else:
        value = vals[_CACHE_READ]
        cache_read = (
            _count(value) if value is not None else _first_count(vals, _CACHE_READ_OLLM, _CACHE_READ_OI)
        )
        cache_creation = _first_count(
            vals, _CACHE_CREATION, _SDK_CACHE_WRITE, _CACHE_CREATION_OLLM, _CACHE_WRITE_OI
        )
        value = vals[_CACHE_CREATION_1H]
        cache_long = None if value is None else _count(value)
        value = vals[_REASONING]
        reasoning = None if value is None else _count(value)
    if _BAD in (tokens_in, tokens_out, cache_read, cache_creation, reasoning, cache_long):
        return M.REJECT_INVALID_TOKENS

    cost: float | None = None
    pricing_version = ""
    if vals[_COST] is not None:
        cost = _amount(vals[_COST])
        if cost < 0 or cost > MAX_COST_USD_PER_CALL:
            return M.REJECT_INVALID_COST
        value = vals[_PRICING_VERSION]
        pricing_version = value if value and type(value) is str else M.PRICING_REPORTED
    if vals[_UNPRICED] is True:
        cost = None
        pricing_version = ""
    ttfc: float | None = None
    if vals[_TTFC] is not None:
        ttfc = _amount(vals[_TTFC])
        if ttfc < 0 or ttfc > MAX_DURATION_S:
            return M.REJECT_INVALID_TIME_TO_FIRST_CHUNK

    error_type = ""
    if vals[_ERROR_TYPE] is not None:
        text = _text(vals[_ERROR_TYPE])
        if text is None:
            return M.REJECT_INVALID_ATTRIBUTE
        error_type = text
    if not error_type and head[H_STATUS] == _STATUS_ERROR:
        error_type = _OTHER_ERROR
    refusal_value = vals[_REFUSAL]
    refused = finish == A.FINISH_REFUSAL or refusal_value is True

    # _pick's answer, without the call when the first key holds a non-empty string
    value = vals[_FEATURE]
    feature = value if type(value) is str else _pick(vals, _FEATURE)
    value = vals[_PROVIDER]
    provider = (
        value if value and type(value) is str else _pick(vals, _PROVIDER, _SYSTEM, _OI_PROVIDER, _OI_SYSTEM)
    )
    value = vals[_REQ_MODEL]
    model = value if value and type(value) is str else _pick(vals, _REQ_MODEL, _OI_MODEL)
    value = vals[_RESP_MODEL]
    response_model = value if type(value) is str else _pick(vals, _RESP_MODEL)
    if feature is None or provider is None or model is None or response_model is None:
        return M.REJECT_INVALID_ATTRIBUTE

    call = LLMCall()
    call.feature = feature or M.UNKNOWN_VALUE
    # lower case: OpenLLMetry writes "OpenAI" and "Anthropic" where semconv says openai, anthropic
    call.provider = provider.lower() or M.UNKNOWN_VALUE
    call.model = model or response_model or M.UNKNOWN_VALUE
    call.response_model = response_model
    call.operation = operation
    call.finish_reason = finish
    call.error_type = error_type
    call.outcome = M.OUTCOME_ERROR if error_type else (M.OUTCOME_REFUSAL if refused else M.OUTCOME_OK)
    call.duration_s = duration
    call.ttfc_s = ttfc
    call.input_tokens = tokens_in
    call.output_tokens = tokens_out
    call.cache_read_tokens = cache_read
    call.cache_creation_tokens = cache_creation
    call.cache_creation_1h_tokens = cache_long
    call.reasoning_tokens = reasoning
    call.cost_usd = cost
    call.pricing_version = pricing_version
    value = vals[_RESPONSE_ID]
    call.response_id = value if type(value) is str else ""
    if vals[_RUN_CONTEXT[0] : _RUN_CONTEXT[1]] == _NO_RUN_CONTEXT:
        call.conversation_id = call.run_agent = ""
        call.tool_request_count = 0
        call.tool_request_hashes = ()
        call.tool_results = None
        call.tool_loop_id = ""
    else:
        call.conversation_id = _first_text(vals, *_CONVERSATION_SLOTS)[:MAX_CONVERSATION_ID_LENGTH]
        call.run_agent = _run_agent(vals)
        _tool_loop(call, vals)
    value = vals[_FINISH_REASONS]
    if type(value) is tuple and len(value) > 1 and not call.tool_request_count:
        # one reason per output item (OpenLLMetry's Responses spans: ["stop", "tool_call"]): the
        # tool calls asked for, though the first reason (the call's finish reason) says stop
        call.tool_request_count = sum(
            1 for r in value if type(r) is str and normalize_finish_reason(r) == A.FINISH_TOOL_CALLS
        )
    if vals[_SCOPES[0] : _SCOPES[1]] == _NO_SCOPE:
        call.prompt_version = call.app_version = call.query_category = call.rag_index_version = ""
    else:
        call.prompt_version = _scope_text(vals, _PROMPT_VERSION, _OI_PROMPT_VERSION, _OLLM_PROMPT_VERSION)
        call.app_version = _scope_text(vals, _APP_VERSION)
        call.query_category = _scope_text(vals, _QUERY_CATEGORY, _OLLM_QUERY_CATEGORY)
        call.rag_index_version = _scope_text(vals, _RAG_INDEX_VERSION)
    call.trace_id = head[H_TRACE_ID]
    call.span_id = head[H_SPAN_ID]
    call.parent_span_id = head[H_PARENT_ID]
    call.end_ns = end
    call.secondary = secondary
    input_value = vals[_INPUT_MESSAGES]
    output_value = vals[_OUTPUT_MESSAGES]
    system_value = vals[_SYSTEM_INSTRUCTIONS]
    call.has_content = input_value is not None or output_value is not None
    if call.has_content or system_value is not None:  # the strings only; parsed on first use
        call.content_source = (_string(input_value), _string(output_value), _string(system_value))
    else:
        call.content_source = None
    value = vals[_OUTPUT_TYPE]
    call.output_type = None if value is None else _string(value)
    # the flag as the span carries it: an errored call can carry it without counting as refused
    call.refusal_flag = refusal_value is True or (type(refusal_value) is str and refusal_value != "")
    return call


MAX_TOOL_REQUESTS_PER_CALL = 1000  # digests read from one call (a bigger count is still counted)
MAX_TOOL_LOOP_ID = 64  # characters of a loop id kept (llmpulse's are 16)


def _tool_loop(call: LLMCall, vals: list[Any]) -> None:
    """The tool-loop keys of llmpulse's adapters on ``call``; a bad value reads as absent (the
    keys only group calls into an implicit run: never worth rejecting the call for)."""
    value = vals[_TOOL_CALLS_HASHES]
    hashes = (
        tuple(h for h in value[:MAX_TOOL_REQUESTS_PER_CALL] if type(h) is str) if type(value) is tuple else ()
    )
    value = vals[_TOOL_CALLS_COUNT]
    count = value if type(value) is int and 0 <= value <= MAX_TOKENS_PER_CALL else len(hashes)
    call.tool_request_count = count
    call.tool_request_hashes = hashes
    value = vals[_TOOL_RESULTS]
    call.tool_results = value if type(value) is int and 0 <= value <= MAX_TOKENS_PER_CALL else None
    value = vals[_TOOL_LOOP_ID]
    call.tool_loop_id = value[:MAX_TOOL_LOOP_ID] if type(value) is str else ""


def _run_agent(vals: list[Any]) -> str:
    """The agent of the run an LLM or tool span is part of, as the span names it: llmpulse's
    ``llmpulse.agent.name``, else a ``gen_ai.agent.name`` that is a name (not the official
    openai-agents instrumentation's placeholder); ``""`` when neither says."""
    value = vals[_RUN_AGENT]
    if value and type(value) is str:
        return value[:MAX_SCOPE_VALUE_LENGTH]
    value = vals[_AGENT_NAME]
    if value and type(value) is str and value != A.OFFICIAL_OPENAI_AGENTS_PLACEHOLDER:
        return value[:MAX_SCOPE_VALUE_LENGTH]
    return ""


def _step_run(
    head: tuple[Any, ...], vals: list[Any], operation: str, service: str, environment: str
) -> StepRun | str:
    duration = _duration(head)
    if duration < 0:
        return M.REJECT_INVALID_DURATION
    step = _first_text(vals, _STEP_NAME) or operation or M.UNKNOWN_VALUE
    feature = _first_text(vals, _FEATURE) or M.UNKNOWN_VALUE
    error = vals[_ERROR_TYPE] is not None or head[H_STATUS] == _STATUS_ERROR
    record = StepRun(
        feature,
        step,
        duration,
        error,
        trace_id=head[H_TRACE_ID],
        end_ns=head[H_END],
        service=service,
        environment=environment,
    )
    if vals[_RUN_AGENT] is not None or vals[_AGENT_NAME] is not None:
        record.run_agent = _run_agent(vals)
    if operation == A.OP_EXECUTE_TOOL:
        tool = _first_text(vals, _TOOL_NAME, _OI_TOOL_NAME, _OLLM_ENTITY)
        if not tool and head[H_NAME].startswith(_TOOL_SPAN_PREFIX):
            tool = head[H_NAME][len(_TOOL_SPAN_PREFIX) :]
        record.tool = tool or M.UNKNOWN_VALUE
        for slot in _TOOL_ARGUMENT_SLOTS:
            value = vals[slot]
            if value is not None:
                record.tool_arguments = _string(value)
                break
    return record


def _agent_span(
    head: tuple[Any, ...], vals: list[Any], kind: str, service: str, environment: str
) -> AgentSpan | str:
    if _duration(head) < 0:
        return M.REJECT_INVALID_DURATION
    name = _first_text(vals, _AGENT_NAME, _OI_AGENT_NAME, _OLLM_ENTITY)
    if not name:
        # semconv names the span "invoke_agent {gen_ai.agent.name}"; OpenInference after the agent
        name = head[H_NAME]
        for prefix in (A.OP_INVOKE_AGENT, A.OP_INVOKE_WORKFLOW):
            if name.startswith(prefix):
                name = name[len(prefix) :].strip()
                break
    return AgentSpan(
        kind,
        name or M.UNKNOWN_VALUE,
        trace_id=head[H_TRACE_ID],
        span_id=head[H_SPAN_ID],
        parent_span_id=head[H_PARENT_ID],
        start_ns=head[H_START],
        end_ns=head[H_END],
        error=vals[_ERROR_TYPE] is not None or head[H_STATUS] == _STATUS_ERROR,
        feature=_first_text(vals, _FEATURE),
        conversation_id=_first_text(vals, *_CONVERSATION_SLOTS)[:MAX_CONVERSATION_ID_LENGTH],
        service=service,
        environment=environment,
    )


def _feedback(vals: list[Any], service: str, environment: str) -> Feedback | str:
    kind = _first_text(vals, _FB_KIND)
    if not kind:
        return M.REJECT_INVALID_FEEDBACK
    sentiment = sentiment_of(kind, vals[_FB_VALUE])
    if sentiment is None:
        return M.REJECT_INVALID_FEEDBACK
    feature = _first_text(vals, _FEATURE) or M.UNKNOWN_VALUE
    conversation = _first_text(vals, *_CONVERSATION_SLOTS)[:MAX_CONVERSATION_ID_LENGTH]
    return Feedback(
        feature, kind, sentiment, service=service, environment=environment, conversation_id=conversation
    )
