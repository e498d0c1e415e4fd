"""Each cheap check, on samples that fail it and samples that pass."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from llmpulse.processor.quality import checks as C
from llmpulse.processor.quality.settings import FeatureRules, RegexRule
from llmpulse.processor.quality.types import QualitySample

Failed = Callable[..., list[str]]


@pytest.fixture
def failed(sample_factory: Callable[..., QualitySample]) -> Failed:
    """Run the checks on a sample built from keyword overrides, with optional rules first."""

    def run(rules: FeatureRules | None = None, **fields: Any) -> list[str]:
        return C.run_checks(sample_factory(**fields), rules or FeatureRules())

    return run


def test_a_good_answer_passes_every_check(failed: Failed) -> None:
    assert failed(FeatureRules(min_chars=10, max_chars=500)) == []


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_or_whitespace_output(text: str, failed: Failed) -> None:
    assert failed(output_text=text) == [C.EMPTY_OUTPUT]


def test_length_band(failed: Failed) -> None:
    rules = FeatureRules(min_chars=20, max_chars=40)
    assert failed(rules, output_text="Too short.") == [C.TOO_SHORT]
    assert failed(rules, output_text="x" * 41) == [C.TOO_LONG]
    assert failed(rules, output_text="x" * 30) == []


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that request.",
        "I\u2019m sorry, I cannot assist with that.",
        "As an AI language model, I cannot provide medical advice.",
        "As an AI, I don't have personal opinions on that.",
        "I must decline to answer this.",
        "Unfortunately, I can't help with that.",
    ],
)
def test_refusal_phrasing(text: str, failed: Failed) -> None:
    assert failed(output_text=text) == [C.REFUSAL_PHRASE]


def test_refusal_phrase_quoted_late_in_a_long_answer_is_not_a_refusal(failed: Failed) -> None:
    text = "Here is how to reset it. " * 12 + "If the bot says 'I cannot help with that', contact support."
    assert failed(output_text=text) == []


def test_api_refusal_signal_is_counted_beside_the_phrasing(failed: Failed) -> None:
    assert failed(refusal=True, finish_reason="refusal", output_text="I can't help with that.") == [
        C.API_REFUSAL,
        C.REFUSAL_PHRASE,
    ]
    assert failed(finish_reason="content_filter", output_text="partial") == [C.API_REFUSAL]


def test_json_validity_only_when_json_was_requested(failed: Failed) -> None:
    assert failed(output_type="json", output_text='{"answer": "ok"') == [C.INVALID_JSON]
    assert failed(output_type="json", output_text='{"answer": "ok"}') == []
    assert failed(output_type="json", output_text='```json\n{"answer": "ok"}\n```') == []
    assert failed(output_type="text", output_text='{"answer": "ok"') == []


def test_truncation(failed: Failed) -> None:
    assert failed(finish_reason="length") == [C.TRUNCATED]


def test_regex_rules_from_config(failed: Failed) -> None:
    rules = FeatureRules(
        rules=(
            RegexRule("no_competitor", r"(?i)acme corp"),
            RegexRule("cites_docs", r"docs\.example\.com", must_match=True),
        )
    )
    assert failed(rules, output_text="Try Acme Corp instead.") == ["rule:no_competitor", "rule:cites_docs"]
    assert failed(rules, output_text="See docs.example.com/reset") == []


def test_empty_user_message(failed: Failed) -> None:
    empty = [
        {"role": "system", "parts": [{"type": "text", "content": "Be nice"}]},
        {"role": "user", "parts": []},
    ]
    assert failed(input_messages=empty) == [C.EMPTY_INPUT]
    assert failed(input_messages=[]) == [C.EMPTY_INPUT]
    assert failed(input_messages=None) == []  # no content captured: nothing to say


def test_input_tokens_near_the_context_limit(
    failed: Failed, sample_factory: Callable[..., QualitySample]
) -> None:
    assert failed(model="gpt-4o-2024-08-06", input_tokens=120_000) == [C.NEAR_CONTEXT_LIMIT]
    assert failed(model="gpt-4o", input_tokens=100_000) == []
    assert failed(model="my-local-model", input_tokens=10**7) == []
    assert C.run_checks(
        sample_factory(model="my-local-model", input_tokens=3700),
        FeatureRules(),
        context_limits={"my-local": 4096},
    ) == [C.NEAR_CONTEXT_LIMIT]


def test_failed_calls_and_tool_calls_skip_the_output_checks(failed: Failed) -> None:
    assert failed(output_text="", error_type="RateLimitError") == []
    assert failed(output_text="", finish_reason="tool_calls") == []
