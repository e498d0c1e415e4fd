"""Redaction of captured message content before it leaves the process.

Built-in patterns replace e-mail addresses, phone numbers, payment card numbers, API keys
and bearer tokens with a ``[REDACTED:<kind>]`` marker; an optional user hook runs after
them. A hook that raises drops the text entirely (fail closed) rather than leak it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

_log = logging.getLogger(__name__)

REDACTED_BY_HOOK_FAILURE = "[REDACTED:hook-failed]"

# Order matters: tokens and keys before the looser number patterns.
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("bearer", re.compile(r"(?i)\bbearer\s+[a-z0-9._~+/=-]{8,}")),
    ("api-key", re.compile(r"\b(?:sk|pk|rk)-(?:[a-zA-Z0-9_-]*-)?[a-zA-Z0-9_-]{16,}")),
    ("api-key", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),
    ("api-key", re.compile(r"\b(?:ghp|gho|ghs|github_pat|xox[abpr])_[A-Za-z0-9_]{16,}")),
    ("email", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")),
    ("card", re.compile(r"\b(?:\d[ -]?){12,18}\d\b")),
    ("phone", re.compile(r"(?<![\w(])(?:\+?\d{1,3}[\s.-]?)?\(?\d{2,4}\)?[\s.-]?\d{3,4}[\s.-]?\d{3,4}(?!\w)")),
)


class Redactor:
    """Applies the built-in patterns, then ``hook``, to a text."""

    def __init__(self, hook: Callable[[str], str] | None = None) -> None:
        self._hook = hook

    def __call__(self, text: str) -> str:
        """Return ``text`` with sensitive substrings replaced."""
        for kind, pattern in _PATTERNS:
            text = pattern.sub(f"[REDACTED:{kind}]", text)
        if self._hook is not None:
            try:
                text = self._hook(text)
            except Exception:
                _log.debug("event=redaction_hook_failed effect=content_dropped", exc_info=True)
                return REDACTED_BY_HOOK_FAILURE
        return text
