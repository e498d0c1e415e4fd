"""Normalisation of spans from every producer into one record."""

from __future__ import annotations

import math

import pytest

from llmpulse.contract import attributes as A
from llmpulse.processor.metrics import names as M
from llmpulse.processor.pipeline.normalize import normalize_finish_reason, normalize_span
from llmpulse.processor.pipeline.records import AgentSpan, Feedback, LLMCall, StepRun
from llmpulse.testing.otlp import llm_attributes, make_span


def _call(attrs: dict[str, object], **kwargs: object) -> LLMCall:
    record = normalize_span(make_span(attrs, **kwargs))  # type: ignore[arg-type]
    assert isinstance(record, LLMCall), record
    return record


def test_llmpulse_span_becomes_a_full_record() -> None:
    call = _call(llm_attributes(**{A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 0.25}), duration_s=1.5)
    assert (call.feature, call.provider, call.model, call.operation) == (
        "support",
        "openai",
        "gpt-4o",
        "chat",
    )
    assert call.response_model == "gpt-4o-2024-08-06"
    assert (call.input_tokens, call.output_tokens, call.cost_usd) == (100, 20, 0.0025)
    assert (call.finish_reason, call.outcome, call.error_type) == ("stop", "ok", "")
    assert call.duration_s == 1.5
    assert call.ttfc_s == 0.25
    assert call.trace_id == b"\x01" * 16
    assert not call.secondary


def test_official_genai_current_names() -> None:
    call = _call(
        {
            A.GEN_AI_OPERATION_NAME: "chat",
            A.GEN_AI_PROVIDER_NAME: "openai",
            A.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            A.GEN_AI_USAGE_INPUT_TOKENS: 7,
            A.GEN_AI_USAGE_OUTPUT_TOKENS: 3,
            A.GEN_AI_RESPONSE_FINISH_REASONS: ["length"],
            A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 2,
            A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 1,
        }
    )
    assert (call.feature, call.provider, call.model) == (M.UNKNOWN_VALUE, "openai", "gpt-4o-mini")
    assert (call.input_tokens, call.output_tokens, call.cache_read_tokens, call.reasoning_tokens) == (
        7,
        3,
        2,
        1,
    )
    assert call.finish_reason == A.FINISH_LENGTH
    assert call.cost_usd is None  # foreign spans are unpriced


def test_pre_137_names() -> None:
    call = _call(
        {
            A.GEN_AI_OPERATION_NAME: "text_completion",
            A.LEGACY_GEN_AI_SYSTEM: "anthropic",
            A.GEN_AI_REQUEST_MODEL: "claude-3",
            A.LEGACY_GEN_AI_USAGE_PROMPT_TOKENS: 11,
            A.LEGACY_GEN_AI_USAGE_COMPLETION_TOKENS: 5,
        }
    )
    assert (call.provider, call.operation, call.input_tokens, call.output_tokens) == (
        "anthropic",
        "text_completion",
        11,
        5,
    )


def test_openinference_span() -> None:
    call = _call(
        {
            A.OPENINFERENCE_SPAN_KIND: "LLM",
            A.OPENINFERENCE_PROVIDER: "openai",
            A.OPENINFERENCE_MODEL_NAME: "gpt-4o",
            A.OPENINFERENCE_TOKEN_COUNT_PROMPT: 40,
            A.OPENINFERENCE_TOKEN_COUNT_COMPLETION: 9,
            A.OPENINFERENCE_TOKEN_COUNT_TOTAL: 49,
            A.OPENINFERENCE_FINISH_REASON: "STOP",
            "input.value": "a prompt that must never become a label",
        }
    )
    assert (call.provider, call.model, call.operation) == ("openai", "gpt-4o", "chat")
    assert (call.input_tokens, call.output_tokens, call.finish_reason) == (40, 9, "stop")


def test_openllmetry_span() -> None:
    call = _call(
        {
            A.LEGACY_GEN_AI_SYSTEM: "openai",
            A.OPENLLMETRY_REQUEST_TYPE: "embedding",
            A.GEN_AI_REQUEST_MODEL: "text-embedding-3-small",
            A.LEGACY_GEN_AI_USAGE_PROMPT_TOKENS: 8,
            A.OPENLLMETRY_GEN_AI_TOTAL_TOKENS: 8,
        }
    )
    assert (call.operation, call.input_tokens, call.output_tokens) == ("embeddings", 8, None)


def test_anthropic_sdk_span_is_secondary() -> None:
    span = make_span(
        {
            A.GEN_AI_OPERATION_NAME: "chat",
            A.LEGACY_GEN_AI_SYSTEM: "anthropic",
            A.GEN_AI_REQUEST_MODEL: "claude-sonnet-4",
            A.ANTHROPIC_SDK_STOP_REASON: "end_turn",
        },
        name="anthropic.messages.create",
    )
    record = normalize_span(span, secondary=True)
    assert isinstance(record, LLMCall)
    assert record.secondary
    assert record.finish_reason == "stop"


def test_errors_and_refusals() -> None:
    failed = _call(llm_attributes(**{A.ERROR_TYPE: "RateLimitError", A.FINISH_REASON: None}), status_code=2)
    assert (failed.outcome, failed.error_type) == ("error", "RateLimitError")
    untyped = _call(llm_attributes(), status_code=2)
    assert (untyped.outcome, untyped.error_type) == ("error", "_OTHER")
    refused = _call(llm_attributes(**{A.REFUSAL: True}))
    assert refused.outcome == "refusal"
    refused_by_reason = _call(llm_attributes(**{A.FINISH_REASON: "refusal"}))
    assert refused_by_reason.outcome == "refusal"


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("end_turn", "stop"),
        ("STOP", "stop"),
        ("max_tokens", "length"),
        ("SAFETY", "content_filter"),
        ("tool_use", "tool_calls"),
        ("refusal", "refusal"),
        ("pause_turn", "other"),
    ],
)
def test_finish_reason_mapping(raw: str, normal: str) -> None:
    assert normalize_finish_reason(raw) == normal


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({A.GEN_AI_USAGE_INPUT_TOKENS: -1}, M.REJECT_INVALID_TOKENS),
        ({A.GEN_AI_USAGE_OUTPUT_TOKENS: "many"}, M.REJECT_INVALID_TOKENS),
        ({A.GEN_AI_USAGE_INPUT_TOKENS: 2.5}, M.REJECT_INVALID_TOKENS),
        ({A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: math.inf}, M.REJECT_INVALID_TOKENS),
        ({A.COST_USD: math.nan}, M.REJECT_INVALID_COST),
        ({A.COST_USD: -0.01}, M.REJECT_INVALID_COST),
        ({A.COST_USD: "cheap"}, M.REJECT_INVALID_COST),
        ({A.FINISH_REASON: 3}, M.REJECT_INVALID_FINISH_REASON),
        ({A.FINISH_REASON: None, A.GEN_AI_RESPONSE_FINISH_REASONS: [1, 2]}, M.REJECT_INVALID_FINISH_REASON),
        ({A.FINISH_REASON: None, A.GEN_AI_RESPONSE_FINISH_REASONS: 7}, M.REJECT_INVALID_FINISH_REASON),
        ({A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: -0.5}, M.REJECT_INVALID_TIME_TO_FIRST_CHUNK),
        ({A.GEN_AI_REQUEST_MODEL: 42}, M.REJECT_INVALID_ATTRIBUTE),
    ],
)
def test_bad_values_are_rejected_with_a_reason(override: dict[str, object], reason: str) -> None:
    attrs = llm_attributes()
    for key, value in override.items():
        if value is None:
            attrs.pop(key)
        else:
            attrs[key] = value
    assert normalize_span(make_span(attrs)) == reason


def test_negative_duration_is_rejected() -> None:
    span = make_span(llm_attributes())
    span.end_time_unix_nano = span.start_time_unix_nano - 1
    assert normalize_span(span) == M.REJECT_INVALID_DURATION


def test_integral_double_tokens_and_integer_cost_are_accepted() -> None:
    call = _call(llm_attributes(**{A.GEN_AI_USAGE_INPUT_TOKENS: 12.0, A.COST_USD: 0}))
    assert (call.input_tokens, call.cost_usd) == (12, 0.0)


def test_unpriced_flag_wins_over_cost() -> None:
    assert _call(llm_attributes(**{A.UNPRICED: True, A.COST_USD: None})).cost_usd is None


def test_non_llm_spans_are_ignored() -> None:
    assert normalize_span(make_span({"http.method": "GET", "url.path": "/"})) is None
    assert normalize_span(make_span({})) is None
    assert normalize_span(make_span({A.GEN_AI_OPERATION_NAME: "create_agent"})) is None


@pytest.mark.parametrize(
    ("attrs", "name", "kind", "expected"),
    [
        ({A.GEN_AI_OPERATION_NAME: "invoke_agent", A.GEN_AI_AGENT_NAME: "planner"}, "x", "agent", "planner"),
        ({A.GEN_AI_OPERATION_NAME: "invoke_agent"}, "invoke_agent planner", "agent", "planner"),
        ({A.GEN_AI_OPERATION_NAME: "invoke_workflow"}, "invoke_workflow trip", "workflow", "trip"),
        ({A.OPENINFERENCE_SPAN_KIND: "AGENT"}, "Assistant", "agent", "Assistant"),
        ({A.OPENINFERENCE_SPAN_KIND: "AGENT", A.OPENINFERENCE_AGENT_NAME: "a"}, "x", "agent", "a"),
        ({A.OPENINFERENCE_SPAN_KIND: "CHAIN"}, "LangGraph", "chain", "LangGraph"),
        (
            {A.OPENLLMETRY_SPAN_KIND: "workflow", A.OPENLLMETRY_ENTITY_NAME: "w"},
            "w.workflow",
            "workflow",
            "w",
        ),
        ({A.OPENLLMETRY_SPAN_KIND: "task", A.OPENLLMETRY_ENTITY_NAME: "t"}, "t.task", "chain", "t"),
        ({A.OPENLLMETRY_SPAN_KIND: "agent", A.OPENLLMETRY_ENTITY_NAME: "a"}, "a.agent", "agent", "a"),
    ],
)
def test_agent_spans(attrs: dict[str, object], name: str, kind: str, expected: str) -> None:
    record = normalize_span(make_span({**attrs, A.SESSION_ID: "s-1"}, name=name, status_code=2))
    assert isinstance(record, AgentSpan)
    assert (record.kind, record.name, record.conversation_id, record.error) == (kind, expected, "s-1", True)


def test_openllmetry_tool_spans_are_tool_steps_and_calls_carry_the_conversation_id() -> None:
    record = normalize_span(make_span({A.OPENLLMETRY_SPAN_KIND: "tool", A.OPENLLMETRY_ENTITY_NAME: "t"}))
    assert isinstance(record, StepRun) and record.step == "execute_tool"
    for key in (A.GEN_AI_CONVERSATION_ID, A.SESSION_ID, A.OPENLLMETRY_SESSION_ID, A.OPENLLMETRY_CHAT_ID):
        assert _call(llm_attributes(**{key: "c" * 300})).conversation_id == "c" * 256
    assert _call(llm_attributes()).conversation_id == ""


@pytest.mark.parametrize(
    ("attrs", "step"),
    [
        ({A.SPAN_KIND: A.SPAN_KIND_STEP, A.STEP_NAME: "rerank"}, "rerank"),
        ({A.GEN_AI_OPERATION_NAME: A.OP_RETRIEVAL, A.GEN_AI_DATA_SOURCE_ID: "kb"}, "retrieval"),
        ({A.GEN_AI_OPERATION_NAME: A.OP_EXECUTE_TOOL, A.GEN_AI_TOOL_NAME: "search"}, "execute_tool"),
        ({A.OPENINFERENCE_SPAN_KIND: "RETRIEVER"}, "retrieval"),
        ({A.OPENINFERENCE_SPAN_KIND: "RERANKER"}, "rerank"),
    ],
)
def test_step_spans(attrs: dict[str, object], step: str) -> None:
    record = normalize_span(make_span({**attrs, A.FEATURE: "qa"}, duration_s=0.125))
    assert isinstance(record, StepRun)
    assert (record.feature, record.step, record.duration_s, record.error) == ("qa", step, 0.125, False)


@pytest.mark.parametrize(
    ("kind", "value", "sentiment"),
    [
        ("thumbs", 1, "positive"),
        ("thumbs", 0.0, "negative"),
        ("thumbs", False, "negative"),
        ("rating", 5.0, "positive"),
        ("rating", 3, "neutral"),
        ("rating", 1, "negative"),
        ("correction", None, "negative"),
        ("follow_up", None, "neutral"),
    ],
)
def test_feedback_sentiment(kind: str, value: object, sentiment: str) -> None:
    attrs: dict[str, object] = {A.SPAN_KIND: A.SPAN_KIND_FEEDBACK, A.FEEDBACK_KIND: kind, A.FEATURE: "qa"}
    if value is not None:
        attrs[A.FEEDBACK_VALUE] = value
    record = normalize_span(make_span(attrs))
    assert isinstance(record, Feedback)
    assert (record.feature, record.kind, record.sentiment) == ("qa", kind, sentiment)


def test_bad_feedback_is_rejected() -> None:
    no_kind = make_span({A.SPAN_KIND: A.SPAN_KIND_FEEDBACK, A.FEEDBACK_VALUE: 1})
    assert normalize_span(no_kind) == M.REJECT_INVALID_FEEDBACK
    text_value = make_span(
        {A.SPAN_KIND: A.SPAN_KIND_FEEDBACK, A.FEEDBACK_KIND: "thumbs", A.FEEDBACK_VALUE: "up"}
    )
    assert normalize_span(text_value) == M.REJECT_INVALID_FEEDBACK


def test_anthropic_sdk_spans_other_than_messages_are_not_calls() -> None:
    count_tokens = make_span(
        {A.GEN_AI_PROVIDER_NAME: "anthropic", A.GEN_AI_REQUEST_MODEL: "claude"},
        name="anthropic.messages.count_tokens",
    )
    assert normalize_span(count_tokens, secondary=True) is None


def test_anthropic_sdk_cache_write_tokens() -> None:
    span = make_span(
        {
            A.GEN_AI_OPERATION_NAME: "chat",
            A.GEN_AI_PROVIDER_NAME: "anthropic",
            A.ANTHROPIC_SDK_CACHE_WRITE_INPUT_TOKENS: 64,
            A.GEN_AI_USAGE_OUTPUT_TOKENS: 9,
        }
    )
    record = normalize_span(span, secondary=True)
    assert isinstance(record, LLMCall)
    assert (record.cache_creation_tokens, record.output_tokens, record.input_tokens) == (64, 9, None)


def test_provider_names_are_lower_cased() -> None:
    call = _call({A.LEGACY_GEN_AI_SYSTEM: "Anthropic", A.OPENLLMETRY_REQUEST_TYPE: "chat"})
    assert call.provider == "anthropic"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, ""),
        ({A.RUN_AGENT_NAME: "planner"}, "planner"),
        ({A.RUN_AGENT_NAME: "planner", A.GEN_AI_AGENT_NAME: "other"}, "planner"),  # llmpulse's first
        ({A.GEN_AI_AGENT_NAME: "weather"}, "weather"),  # a peer that names the run's agent on its calls
        ({A.GEN_AI_AGENT_NAME: A.OFFICIAL_OPENAI_AGENTS_PLACEHOLDER}, ""),  # a placeholder, not a name
        ({A.RUN_AGENT_NAME: 7}, ""),
        ({A.RUN_AGENT_NAME: "a" * 300}, "a" * 128),
        ({A.GEN_AI_CONVERSATION_ID: "c-1"}, ""),
    ],
)
def test_calls_and_tools_carry_the_agent_of_their_run(extra: dict[str, object], expected: str) -> None:
    assert _call(llm_attributes(**extra)).run_agent == expected
    tool = normalize_span(
        make_span({A.GEN_AI_OPERATION_NAME: A.OP_EXECUTE_TOOL, A.GEN_AI_TOOL_NAME: "search", **extra})
    )
    assert isinstance(tool, StepRun) and tool.tool == "search" and tool.run_agent == expected


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, (0, (), None)),
        (
            {A.TOOL_CALLS_COUNT: 2, A.TOOL_CALLS_HASHES: ["a", "b"], A.TOOL_RESULTS_COUNT: 3},
            (2, ("a", "b"), 3),
        ),
        ({A.TOOL_CALLS_HASHES: ["a", 7, "b"]}, (2, ("a", "b"), None)),  # the count from the digests
        ({A.TOOL_CALLS_COUNT: -1, A.TOOL_RESULTS_COUNT: "x"}, (0, (), None)),  # bad values read as absent
        ({A.TOOL_CALLS_HASHES: "not-an-array"}, (0, (), None)),
        # one finish reason per output item (OpenLLMetry's Responses spans): the tool calls asked for
        ({A.FINISH_REASON: None, A.GEN_AI_RESPONSE_FINISH_REASONS: ["stop", "tool_call"]}, (1, (), None)),
        ({A.FINISH_REASON: None, A.GEN_AI_RESPONSE_FINISH_REASONS: ["tool_calls"]}, (0, (), None)),
    ],
)
def test_the_tool_loop_keys_of_a_call(extra: dict[str, object], expected: tuple[object, ...]) -> None:
    call = _call(llm_attributes(**extra))
    assert (call.tool_request_count, call.tool_request_hashes, call.tool_results) == expected
    assert call.outcome == "ok"  # never a reason to reject the call
