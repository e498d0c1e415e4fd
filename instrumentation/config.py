"""Instrumentation settings, parsed once into an immutable object.

Only the activation entry points (``autostart()`` and ``LLMPulseInstrumentor.instrument()``
when it is given no ``settings``) read the environment, through :meth:`Settings.from_env`.
Bad values fall back to the defaults with a logged warning: monitoring must never stop an
application from starting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from llmpulse.contract.environment_variables import (
    LLMPULSE_ANTHROPIC_SDK_SPANS,
    LLMPULSE_CONTENT_MAX_CHARS,
    LLMPULSE_HASH_USER_IDS,
    LLMPULSE_PRICING_FILE,
    LLMPULSE_REQUEST_STREAM_USAGE,
    LLMPULSE_SAMPLE_RATE,
    LLMPULSE_USER_ID_SALT,
    OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT,
)

_log = logging.getLogger(__name__)

ContentMode = Literal["off", "on", "sampled"]
AnthropicSdkSpans = Literal["suppress", "keep"]
RedactHook = Callable[[str], str]


_ON = frozenset({"1", "true", "yes", "on", "span_only", "span_and_event", "event_only"})
_OFF = frozenset({"", "0", "false", "no", "off", "no_content"})


@dataclass(frozen=True)
class Settings:
    """How the instrumentation behaves. All fields have safe defaults.

    ``content``: ``"off"`` (default) records no message text; ``"on"`` records it on every
    LLM span; ``"sampled"`` only on spans whose trace the deterministic sampler selects at
    ``sample_rate`` (see :func:`llmpulse.contract.sampling.is_sampled`).
    ``redact``: optional hook applied to every captured text after the built-in patterns.
    ``hash_user_ids``: ``context(user_id=...)`` is recorded as an HMAC-SHA256 pseudonym
    unless this is ``False``.
    ``request_stream_usage``: ask OpenAI-style chat/completions streams for the final usage
    chunk when the caller did not, and hide that chunk from the caller.
    ``anthropic_sdk_spans``: ``"suppress"`` (default) turns off the anthropic package's own
    call span for calls llmpulse records, so each call has one span; ``"keep"`` leaves it on.
    """

    content: ContentMode = "off"
    sample_rate: float = 0.0
    content_max_chars: int = 8192
    redact: RedactHook | None = None
    hash_user_ids: bool = True
    user_id_salt: str = ""
    pricing_file: str | None = None
    request_stream_usage: bool = True
    anthropic_sdk_spans: AnthropicSdkSpans = "suppress"
    propagate_to_threads: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: object) -> Settings:
        """Build settings from environment variables; ``overrides`` win over the environment."""
        values: dict[str, object] = {}
        raw_content = environ.get(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, "").strip().lower()
        if raw_content == "sampled":
            values["content"] = "sampled"
        elif raw_content in _ON:
            values["content"] = "on"
        elif raw_content not in _OFF:
            _log.warning(
                "event=setting_ignored variable=%s value=%r reason=not_understood using=off",
                OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT,
                raw_content,
            )
        rate = _float(environ, LLMPULSE_SAMPLE_RATE)
        if rate is not None:
            values["sample_rate"] = min(max(rate, 0.0), 1.0)
        max_chars = _float(environ, LLMPULSE_CONTENT_MAX_CHARS)
        if max_chars is not None and max_chars > 0:
            values["content_max_chars"] = int(max_chars)
        if environ.get(LLMPULSE_HASH_USER_IDS, "").strip().lower() in {"0", "false", "no", "off"}:
            values["hash_user_ids"] = False
        if salt := environ.get(LLMPULSE_USER_ID_SALT):
            values["user_id_salt"] = salt
        if pricing := environ.get(LLMPULSE_PRICING_FILE):
            values["pricing_file"] = pricing
        if environ.get(LLMPULSE_REQUEST_STREAM_USAGE, "").strip().lower() in {"0", "false", "no", "off"}:
            values["request_stream_usage"] = False
        if environ.get(LLMPULSE_ANTHROPIC_SDK_SPANS, "").strip().lower() == "keep":
            values["anthropic_sdk_spans"] = "keep"
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def _float(environ: Mapping[str, str], name: str) -> float | None:
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        return float(raw)
    except ValueError:
        _log.warning(
            "event=setting_ignored variable=%s value=%r reason=not_a_number using=default", name, raw
        )
        return None
