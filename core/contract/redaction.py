"""Redaction of captured message content before it leaves the process.

Built-in patterns replace secrets and personal data with a ``[REDACTED:<kind>]`` marker:
private-key PEM blocks, JWTs, bearer tokens, API keys (OpenAI/Anthropic ``sk-``, Stripe
``sk_live_``, Google ``AIza``, GitHub, Slack, AWS access key ids and secret keys), the value of
``password=``-style pairs, e-mail addresses, US social security numbers, payment card numbers,
IPv4 addresses and phone numbers. An optional user hook runs after them. A hook that raises drops
the text entirely (fail closed) rather than leak it.

Every pattern runs in time linear in the text: each one starts at a literal or a word boundary
and every repetition is bounded or atomic, so no crafted input makes the regular-expression
engine backtrack over the text more than a bounded number of times per position
(``benchmarks/bench_redaction.py`` measures the cost per KB on adversarial input). Callers that
truncate redact at most :data:`REDACTION_WINDOW` characters beyond their limit, so a text's size
bounds the work too (:func:`redact_truncated`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Final

__all__ = [
    "REDACTED_BY_HOOK_FAILURE",
    "REDACTION_WINDOW",
    "Redactor",
    "redact_truncated",
]

_log = logging.getLogger(__name__)

REDACTED_BY_HOOK_FAILURE: Final = "[REDACTED:hook-failed]"

REDACTION_WINDOW: Final = 1024
"""Characters past a truncation limit that are redacted before the cut: a secret that straddles
the limit is recognised whole (no pattern matches more than this), then cut."""


def _aws_secret(match: re.Match[str]) -> str:
    # 40 characters of base64 are also git object ids and hashes: an AWS secret key mixes
    # upper case, lower case and digits, which a hex digest never does.
    text = match.group(0)
    if any(c.isupper() for c in text) and any(c.islower() for c in text) and any(c.isdigit() for c in text):
        return "[REDACTED:aws-secret]"
    return text


_Replacement = str | Callable[[re.Match[str]], str]

_DIGITS: Final = tuple("0123456789")
_PASSWORD_KEYS: Final = tuple(
    case(word)
    for word in ("pass", "pwd", "secret", "key", "token")
    for case in (str.lower, str.upper, str.title)
)

# (gate, pattern, replacement): a pattern runs only when one of its gate strings occurs in the
# text (a C-speed substring scan), so the common text pays for a few scans, not for every pattern.
# Order matters: whole blocks and tokens before the looser number patterns, so a key's digits are
# not taken for a phone number first.
_PATTERNS: Final[tuple[tuple[tuple[str, ...], re.Pattern[str], _Replacement], ...]] = (
    (
        ("-----BEGIN",),
        re.compile(
            r"-----BEGIN[A-Z ]{0,40} PRIVATE KEY-----(?:[^-]|-(?!----END)){0,16384}"
            r"(?:-----END[A-Z ]{0,40} PRIVATE KEY-----)?"
        ),
        "[REDACTED:private-key]",
    ),
    (
        ("eyJ",),
        re.compile(r"\beyJ[A-Za-z0-9_-]{4,4096}+\.[A-Za-z0-9_-]{4,4096}+\.[A-Za-z0-9_-]{0,4096}+"),
        "[REDACTED:jwt]",
    ),
    (
        ("earer", "EARER"),
        re.compile(r"(?i)\bbearer[ \t]{1,16}+[a-z0-9._~+/=-]{8,4096}+"),
        "[REDACTED:bearer]",
    ),
    (
        _PASSWORD_KEYS,
        re.compile(
            r"(?i)(?<![a-z0-9])((?:password|passwd|pwd|passphrase|secret|client_secret|secret_access_key|api_?key"
            r"|access_?token|auth_?token)[\"']?\s{0,8}[:=]\s{0,8})"
            r"(?:\"[^\"\n]{1,256}\"|'[^'\n]{1,256}'|[^\s\"',;&]{1,256}+)"
        ),
        r"\1[REDACTED:password]",
    ),
    (("k-",), re.compile(r"\b(?:sk|pk|rk)-[a-zA-Z0-9_-]{16,512}+"), "[REDACTED:api-key]"),
    (("k_live_", "k_test_"), re.compile(r"\b[spr]k_(?:live|test)_[A-Za-z0-9]{8,256}+"), "[REDACTED:api-key]"),
    (("AIza",), re.compile(r"\bAIza[0-9A-Za-z_-]{30,40}+"), "[REDACTED:api-key]"),
    (("AKIA", "ASIA"), re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), "[REDACTED:api-key]"),
    (
        ("gh", "github_pat_"),
        re.compile(r"\b(?:ghp|gho|ghs|ghu|ghr|github_pat)_[A-Za-z0-9_]{16,256}+"),
        "[REDACTED:api-key]",
    ),
    (
        ("xox", "xapp-"),
        re.compile(r"\bxox[abposre][-_][A-Za-z0-9_-]{10,256}+|\bxapp-[A-Za-z0-9-]{10,256}+"),
        "[REDACTED:api-key]",
    ),
    (_DIGITS, re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"), _aws_secret),
    # Local part and domain bounded by RFC 5321's lengths: a run of letters with no "@" is
    # scanned a bounded number of times per position instead of to its end.
    (
        ("@",),
        re.compile(
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}+@"
            r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,7}\.[A-Za-z]{2,24}(?![A-Za-z0-9-])"
        ),
        "[REDACTED:email]",
    ),
)


# Numbers (SSN, card, IPv4, phone) only occur inside a run of digits and separators: the patterns
# run on each such run (with a little context either side for their boundary checks) instead of
# over the whole text.
_NUMBER_PATTERNS: Final[tuple[tuple[re.Pattern[str], _Replacement], ...]] = (
    (re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b"), "[REDACTED:ssn]"),
    (re.compile(r"\b(?:\d[ -]?){12,18}\d\b"), "[REDACTED:card]"),
    (
        re.compile(
            r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.])"
        ),
        "[REDACTED:ip]",
    ),
    (
        re.compile(r"(?<![\w(])(?:\+?\d{1,3}[\s.-]?)?\(?\d{2,4}\)?[\s.-]?\d{3,4}[\s.-]?\d{3,4}(?!\w)"),
        "[REDACTED:phone]",
    ),
)
_NUMBER_RUN: Final = re.compile(r"\d[\d\s().+-]{5,}\d")
_CONTEXT: Final = 2


def _gated(text: str, gate: tuple[str, ...]) -> bool:
    return any(g in text for g in gate)


def _redact_numbers(text: str) -> str:
    regions: list[list[int]] = []
    for run in _NUMBER_RUN.finditer(text):
        start, end = max(run.start() - _CONTEXT, 0), run.end() + _CONTEXT
        if regions and start <= regions[-1][1]:
            regions[-1][1] = end
        else:
            regions.append([start, end])
    if not regions:
        return text
    pieces: list[str] = []
    done = 0
    for start, end in regions:
        piece = text[start:end]
        for pattern, replacement in _NUMBER_PATTERNS:
            piece = pattern.sub(replacement, piece)
        pieces += (text[done:start], piece)
        done = end
    pieces.append(text[done:])
    return "".join(pieces)


class Redactor:
    """Applies the built-in patterns, then ``hook``, to a text."""

    def __init__(self, hook: Callable[[str], str] | None = None) -> None:
        self._hook = hook

    def __call__(self, text: str) -> str:
        """Return ``text`` with sensitive substrings replaced."""
        for gate, pattern, replacement in _PATTERNS:
            if _gated(text, gate):
                text = pattern.sub(replacement, text)
        text = _redact_numbers(text)
        if self._hook is not None:
            try:
                text = self._hook(text)
            except Exception:
                _log.debug("event=redaction_hook_failed effect=content_dropped", exc_info=True)
                return REDACTED_BY_HOOK_FAILURE
        return text


def redact_truncated(redact: Callable[[str], str], text: str, max_chars: int, marker: str) -> str:
    """``text`` redacted and cut to ``max_chars`` (then ``marker``), redacting no more than needed.

    Only the first ``max_chars + REDACTION_WINDOW`` characters are redacted, so a huge text costs
    what its kept part costs; the window lets a secret that crosses the limit be recognised whole
    before the cut. A redacted text that still fits is returned without the marker.
    """
    cut = len(text) > max_chars + REDACTION_WINDOW
    redacted = redact(text[: max_chars + REDACTION_WINDOW] if cut else text)
    if cut or len(redacted) > max_chars:
        return redacted[:max_chars] + marker
    return redacted
