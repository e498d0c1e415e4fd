"""Judge requests, recognised and answered: the fake provider as a stand-in LLM judge.

The processor's judge (``llmpulse.processor.quality.judge``) sends a system prompt that opens
"You are a strict evaluator" and names the JSON keys it wants ("exactly these keys: "correctness",
..., "explanation""). :func:`judge_reply` recognises that prompt from the request alone (this
package does not import the processor) and answers a verdict in exactly that shape: every
dimension scored 4 and an explanation saying the verdict is canned, so a stack whose judge is the
fake provider records verdicts instead of failing every call.
"""

from __future__ import annotations

import json
import re
from typing import Any

from llmpulse.testing.fake_reply import FakeReply

__all__ = ["FAKE_JUDGE_EXPLANATION", "JUDGE_MARKER", "judge_dimensions", "judge_reply"]

JUDGE_MARKER = "strict evaluator"
FAKE_JUDGE_EXPLANATION = "Canned verdict from the llmpulse fake provider, not a real judgement."
FAKE_JUDGE_SCORE = 4
_KEYS = re.compile(r"exactly these keys:\s*(?P<keys>.*?),\s*\"explanation\"")
_KEY = re.compile(r'"([A-Za-z_][A-Za-z0-9_]*)"')


def _system_text(body: dict[str, Any]) -> str:
    parts: list[str] = []
    system = body.get("system")
    if isinstance(system, str):
        parts.append(system)
    elif system is not None:
        parts.append(json.dumps(system))
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict) and message.get("role") in ("system", "developer"):
                content = message.get("content")
                parts.append(content if isinstance(content, str) else json.dumps(content))
    return "\n".join(parts)


def judge_dimensions(body: Any) -> tuple[str, ...] | None:
    """The dimensions a judge request asks scores for, or None when ``body`` is not a judge request."""
    if not isinstance(body, dict):
        return None
    system = _system_text(body)
    if JUDGE_MARKER not in system:
        return None
    match = _KEYS.search(system)
    if match is None:
        return None
    return tuple(_KEY.findall(match["keys"]))


def judge_reply(body: Any) -> FakeReply | None:
    """A valid verdict for a judge request (every dimension 4), or None for any other request."""
    dimensions = judge_dimensions(body)
    if dimensions is None:
        return None
    verdict: dict[str, Any] = {dimension: FAKE_JUDGE_SCORE for dimension in dimensions}
    verdict["explanation"] = FAKE_JUDGE_EXPLANATION
    return FakeReply(text=json.dumps(verdict))
