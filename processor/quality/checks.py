"""Cheap checks run on every call: pure functions of one sample, microseconds each.

Output checks need the answer's text and are skipped when the span carried none; input checks
use the input messages and the token count. Each failed check is one name from :data:`CHECKS`
(or ``rule:<name>`` for a configured regex rule), counted per feature by the engine.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Final

from llmpulse.contract import attributes as A
from llmpulse.processor.quality.settings import FeatureRules
from llmpulse.processor.quality.types import QualitySample, user_text

__all__ = [
    "CHECKS",
    "CONTEXT_LIMITS",
    "REFUSAL_PATTERNS",
    "context_limit",
    "is_refusal_text",
    "run_checks",
]

EMPTY_OUTPUT: Final = "empty_output"
TOO_SHORT: Final = "too_short"
TOO_LONG: Final = "too_long"
REFUSAL_PHRASE: Final = "refusal_phrase"
API_REFUSAL: Final = "api_refusal"
INVALID_JSON: Final = "invalid_json"
TRUNCATED: Final = "truncated"
EMPTY_INPUT: Final = "empty_input"
NEAR_CONTEXT_LIMIT: Final = "near_context_limit"
CHECKS: Final = (
    EMPTY_OUTPUT,
    TOO_SHORT,
    TOO_LONG,
    REFUSAL_PHRASE,
    API_REFUSAL,
    INVALID_JSON,
    TRUNCATED,
    EMPTY_INPUT,
    NEAR_CONTEXT_LIMIT,
)
"""The built-in check names (label values of the check-failure counter)."""
RULE_PREFIX: Final = "rule:"

# Phrasings models use when they decline. Matched near the start of the answer only, so an
# answer that quotes such a sentence later on is not counted. Keep the list maintained.
REFUSAL_PATTERNS: Final = (
    r"i(?:'m| am) (?:sorry|afraid),? (?:but )?(?:i )?"
    r"(?:can(?:'t|not)|won't|am unable|'m unable|must decline)",
    r"i (?:can(?:'t|not)|won't|am unable to|'m unable to) "
    r"(?:help|assist|comply|provide|do that|fulfil|fulfill|answer)",
    r"i(?:'m| am) not able to (?:help|assist|provide|comply)",
    r"as an ai(?: language model)?,? i (?:can(?:'t|not)|don't|do not|am unable)",
    r"i must (?:respectfully )?decline",
    r"(?:sorry|unfortunately),? (?:but )?i can(?:'t|not) (?:help|assist) with (?:that|this)",
    r"this (?:request|content) (?:violates|goes against) (?:my|our|the) (?:guidelines|policies|usage polic)",
)
_REFUSAL_RE = re.compile("|".join(f"(?:{p})" for p in REFUSAL_PATTERNS), re.IGNORECASE)
_REFUSAL_SCAN_CHARS = 240
# Every pattern contains one of these; a cheap substring test rules most answers out.
_REFUSAL_WORDS = (
    "can't",
    "cannot",
    "unable",
    "as an ai",
    "won't",
    "decline",
    "not able",
    "violates",
    "goes against",
)

# Context windows in tokens of common models; prefixes match dated snapshots.
CONTEXT_LIMITS: Final = {
    "gpt-4.1": 1_047_576,
    "gpt-5": 400_000,
    "gpt-4o": 128_000,
    "gpt-4-turbo": 128_000,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "o1": 200_000,
    "o3": 200_000,
    "o4-mini": 200_000,
    "claude": 200_000,
    "gemini-1.5": 1_048_576,
    "gemini-2": 1_048_576,
}


def context_limit(model: str, overrides: dict[str, int] | None = None) -> int | None:
    """The context window of ``model`` (longest matching prefix wins), or ``None`` when unknown."""
    return _context_limit(model, tuple(sorted(overrides.items())) if overrides else ())


@functools.lru_cache(maxsize=1024)
def _context_limit(model: str, overrides: tuple[tuple[str, int], ...]) -> int | None:
    name = model.strip().lower().rsplit("/", 1)[-1]
    table = {**CONTEXT_LIMITS, **dict(overrides)}
    best = max((p for p in table if name.startswith(p)), key=len, default=None)
    return None if best is None else table[best]


def is_refusal_text(text: str) -> bool:
    """Whether ``text`` opens with a refusal phrasing from :data:`REFUSAL_PATTERNS`."""
    head = text[:_REFUSAL_SCAN_CHARS].lower().replace("\u2019", "'")
    if not any(word in head for word in _REFUSAL_WORDS):  # most answers: skip the regex
        return False
    return _REFUSAL_RE.search(head) is not None


def _is_json(text: str) -> bool:
    stripped = text.strip()
    if stripped.startswith("```"):  # a fenced block is still JSON the app can unwrap
        stripped = stripped.strip("`").removeprefix("json").strip()
    try:
        json.loads(stripped)
    except ValueError:
        return False
    return True


def number_checks(
    refusal: bool,
    finish_reason: str | None,
    model: str,
    input_tokens: int | None,
    *,
    context_fraction: float = 0.9,
    context_limits: dict[str, int] | None = None,
) -> list[str]:
    """The checks a call fails on its numbers alone (all a call without content can fail)."""
    limit = None if input_tokens is None else context_limit(model, context_limits)
    return limit_checks(refusal, finish_reason, input_tokens, limit, context_fraction)


def limit_checks(
    refusal: bool,
    finish_reason: str | None,
    input_tokens: int | None,
    limit: int | None,
    context_fraction: float,
) -> list[str]:
    """:func:`number_checks` with the model's context window ``limit`` already looked up."""
    failed: list[str] = []
    if refusal or finish_reason in _REFUSAL_FINISHES:
        failed.append(API_REFUSAL)
    if finish_reason == A.FINISH_LENGTH:
        failed.append(TRUNCATED)
    if input_tokens is not None and limit is not None and input_tokens >= context_fraction * limit:
        failed.append(NEAR_CONTEXT_LIMIT)
    return failed


_REFUSAL_FINISHES = (A.FINISH_REFUSAL, A.FINISH_CONTENT_FILTER)


def run_checks(
    sample: QualitySample,
    rules: FeatureRules,
    *,
    context_fraction: float = 0.9,
    context_limits: dict[str, int] | None = None,
) -> list[str]:
    """The names of the checks ``sample`` fails (empty when it passes them all)."""
    failed = number_checks(
        sample.refusal,
        sample.finish_reason,
        sample.model,
        sample.input_tokens,
        context_fraction=context_fraction,
        context_limits=context_limits,
    )
    if sample.input_messages is not None and not user_text(sample.input_messages).strip():
        failed.append(EMPTY_INPUT)
    text = sample.output_text
    if text is None or sample.is_error or sample.finish_reason == A.FINISH_TOOL_CALLS:
        return failed
    stripped = text.strip()
    if not stripped:
        failed.append(EMPTY_OUTPUT)
        return failed
    if len(stripped) < rules.min_chars:
        failed.append(TOO_SHORT)
    if rules.max_chars is not None and len(stripped) > rules.max_chars:
        failed.append(TOO_LONG)
    if is_refusal_text(stripped):
        failed.append(REFUSAL_PHRASE)
    if sample.output_type == "json" and not _is_json(stripped):
        failed.append(INVALID_JSON)
    for rule in rules.rules:
        if (rule.compiled.search(text) is not None) != rule.must_match:
            failed.append(RULE_PREFIX + rule.name)
    return failed
