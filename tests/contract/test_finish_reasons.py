"""The one finish-reason table, pinned: every raw value the old tables knew maps as it did."""

from __future__ import annotations

import pytest

from llmpulse.contract import attributes as A
from llmpulse.contract.finish_reasons import FINISH_OTHER, RAW_FINISH_REASONS, normalize_finish_reason

# The union of the three tables this one replaced (processor normaliser, OpenAI adapter,
# Anthropic adapter), with the value each gave. They agreed on all but pause_turn.
PINNED = {
    # OpenAI chat/completions and responses
    "stop": A.FINISH_STOP,
    "length": A.FINISH_LENGTH,
    "content_filter": A.FINISH_CONTENT_FILTER,
    "tool_calls": A.FINISH_TOOL_CALLS,
    "function_call": A.FINISH_TOOL_CALLS,
    "refusal": A.FINISH_REFUSAL,
    "max_output_tokens": A.FINISH_LENGTH,
    # Anthropic (and Bedrock Converse, which uses the same words)
    "end_turn": A.FINISH_STOP,
    "stop_sequence": A.FINISH_STOP,
    "max_tokens": A.FINISH_LENGTH,
    "model_context_window_exceeded": A.FINISH_LENGTH,
    "tool_use": A.FINISH_TOOL_CALLS,
    # Gemini (upper case on the wire), Cohere, OpenAI-compatible servers
    "safety": A.FINISH_CONTENT_FILTER,
    "recitation": A.FINISH_CONTENT_FILTER,
    "blocklist": A.FINISH_CONTENT_FILTER,
    "prohibited_content": A.FINISH_CONTENT_FILTER,
    "spii": A.FINISH_CONTENT_FILTER,
    "malformed_function_call": A.FINISH_ERROR,
    "complete": A.FINISH_STOP,
    "eos": A.FINISH_STOP,
    "finished": A.FINISH_STOP,
    "tool_call": A.FINISH_TOOL_CALLS,
    "error": A.FINISH_ERROR,
    # the one disagreement (instrumentation: stop, processor: other), settled as other:
    # the server paused the turn and the client is to continue it; it is not a finished answer
    "pause_turn": FINISH_OTHER,
}


def test_the_table_is_exactly_the_pinned_one() -> None:
    assert dict(RAW_FINISH_REASONS) == PINNED


@pytest.mark.parametrize(("raw", "normal"), sorted(PINNED.items()))
def test_each_raw_value_in_any_case(raw: str, normal: str) -> None:
    assert normalize_finish_reason(raw) == normal
    assert normalize_finish_reason(raw.upper()) == normal


def test_every_result_is_a_normalised_reason() -> None:
    assert set(RAW_FINISH_REASONS.values()) <= set(A.FINISH_REASONS)


def test_unknown_reasons_take_the_callers_default() -> None:
    assert normalize_finish_reason("something_new") == FINISH_OTHER
    assert normalize_finish_reason("something_new", A.FINISH_STOP) == A.FINISH_STOP


def test_the_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        RAW_FINISH_REASONS["stop"] = A.FINISH_ERROR  # type: ignore[index]
