"""Whether each feature's judge and drift engine get content, and why not when they do not.

Kept per (service, feature), the key everything in the quality engine is kept under.

Content capture is opt-in in the application, so a new stack often sees LLM calls without
any text: the judge has nothing to judge and the drift engine nothing to embed. The watch
keeps, per feature, when the last call with judgeable content arrived and a reason for the
calls without it, taken from the spans themselves:

* ``capture_off``: calls carry no content and no llmpulse sampling marker: the application's
  content capture is off (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` unset);
* ``sample_rate_zero``: llmpulse samples content at rate 0 (``LLMPULSE_SAMPLE_RATE=0``);
* ``not_sampled``: content is sampled at a rate above 0 but no recent call was picked;
* ``redacted``: content arrives but without text (empty, or only redaction placeholders);
* ``errors_only``: only failed calls arrive (failed calls are not judged).

A feature's state is ``seen`` while content came within ``missing_after_s``, else that reason,
exported as ``llmpulse_quality_content_state{service,feature,state}`` beside
``llmpulse_quality_content_age_seconds{service,feature}`` and shown by ``llmpulse status``; after
``missing_after_s`` without content it is logged, at most once per ``missing_after_s`` per
feature (``event=content_missing``). The quality listener adds calls up per batch and per
feature (:class:`ContentBatch`), so the per-call cost is a dict lookup; the span's attributes
are read at most once per ``probe_every_s`` per feature.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmpulse.contract import attributes as A
from llmpulse.contract import environment_variables as E
from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.metrics import QualityMetrics

__all__ = ["HINTS", "ContentBatch", "ContentWatch", "FeatureContent", "is_placeholder"]

_log = logging.getLogger(__name__)

Key = tuple[str, str]  # (service, feature)

HINTS: dict[str, str] = {
    Q.CONTENT_SEEN: "content arrives",
    Q.CONTENT_CAPTURE_OFF: (
        f"content capture is off in the app: set {E.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT}"
        "=sampled (or your instrumentation's content setting)"
    ),
    Q.CONTENT_SAMPLE_RATE_ZERO: f"the app samples content at rate 0: raise {E.LLMPULSE_SAMPLE_RATE}",
    Q.CONTENT_NOT_SAMPLED: (
        f"the sampler picked none of the recent calls: raise {E.LLMPULSE_SAMPLE_RATE} on low traffic"
    ),
    Q.CONTENT_REDACTED: "content arrives without text (redacted or hidden by the instrumentation)",
    Q.CONTENT_ERRORS_ONLY: "only failed calls arrive; failed calls are not judged",
}
_PLACEHOLDERS = re.compile(
    r"^\s*(?:(?:__REDACTED__|\[REDACTED(?::[\w-]+)?\]|<redacted>|\*+)\s*)*$", re.IGNORECASE
)


def is_placeholder(text: str | None) -> bool:
    """Whether ``text`` carries nothing to judge: empty, or only redaction placeholders."""
    return text is None or bool(_PLACEHOLDERS.match(text))


def _sample_rate(span: Any) -> float | None:
    for kv in span.attributes:
        if kv.key == A.SAMPLE_RATE:
            which = kv.value.WhichOneof("value")
            if which == "double_value":
                return float(kv.value.double_value)
            return float(kv.value.int_value) if which == "int_value" else None
    return None


@dataclass
class FeatureContent:
    """What the watch knows of one feature (times from the watch's clock)."""

    first_call: float
    last_content: float | None = None
    reason: str = Q.CONTENT_CAPTURE_OFF
    last_probe: float = float("-inf")
    last_log: float = float("-inf")
    calls_since_content: int = 0


class ContentWatch:
    """Per-feature content arrival for the quality extension (one instance per engine)."""

    def __init__(
        self,
        metrics: QualityMetrics,
        *,
        missing_after_s: float = 300.0,
        probe_every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self.missing_after_s = missing_after_s
        self._probe_every_s = probe_every_s
        self._clock = clock
        self._features: dict[Key, FeatureContent] = {}

    def observe(
        self, key: Key, *, judgeable: bool, has_content: bool, is_error: bool, span: Any, calls: int = 1
    ) -> None:
        """Record ``calls`` LLM calls: ``judgeable`` when they carry text a judge can read; else
        ``has_content``, ``is_error`` and ``span`` are the last one's."""
        now = self._clock()
        state = self._features.get(key)
        if state is None:
            state = self._features[key] = self._new(key, now)
        if judgeable:
            state.last_content = now
            state.calls_since_content = 0
            return
        state.calls_since_content += calls
        if now - state.last_probe >= self._probe_every_s:
            state.last_probe = now
            state.reason = self._reason(has_content=has_content, is_error=is_error, span=span)
        since = state.first_call if state.last_content is None else state.last_content
        limit = self.missing_after_s
        if now - since >= limit and now - state.last_log >= limit:
            state.last_log = now
            _log.warning(
                "event=content_missing service=%s feature=%s reason=%s seconds=%.0f calls=%d hint=%r",
                key[0],
                key[1],
                state.reason,
                self.age(key, now),
                state.calls_since_content,
                HINTS[state.reason],
            )

    def _new(self, key: Key, now: float) -> FeatureContent:
        state = FeatureContent(first_call=now)
        self._metrics.content_age.labels(*key).set_function(lambda: self.age(key))
        for name in Q.CONTENT_STATES:
            self._metrics.content_state.labels(*key, name).set_function(
                lambda name=name: 1.0 if self.state(key) == name else 0.0
            )
        return state

    @staticmethod
    def _reason(*, has_content: bool, is_error: bool, span: Any) -> str:
        if is_error:
            return Q.CONTENT_ERRORS_ONLY
        if has_content:
            return Q.CONTENT_REDACTED
        rate = None if span is None else _sample_rate(span)
        if rate is None:
            return Q.CONTENT_CAPTURE_OFF
        return Q.CONTENT_SAMPLE_RATE_ZERO if rate <= 0.0 else Q.CONTENT_NOT_SAMPLED

    def features(self) -> list[Key]:
        """The (service, feature) keys seen so far."""
        return list(self._features)

    def age(self, key: Key, now: float | None = None) -> float:
        """Seconds since the feature's last content (since its first call when none came)."""
        state = self._features[key]
        since = state.last_content if state.last_content is not None else state.first_call
        return max(0.0, (self._clock() if now is None else now) - since)

    def state(self, key: Key, now: float | None = None) -> str:
        """``seen`` while content came within ``missing_after_s``, else why none came."""
        state = self._features[key]
        now = self._clock() if now is None else now
        if state.last_content is not None and now - state.last_content < self.missing_after_s:
            return Q.CONTENT_SEEN
        return state.reason


class ContentBatch:
    """One batch of calls, added up per feature before :meth:`ContentWatch.observe` sees them."""

    __slots__ = ("_missing", "_seen", "_watch")

    def __init__(self, watch: ContentWatch) -> None:
        self._watch = watch
        self._seen: set[Key] = set()
        # key -> [calls without judgeable text, last one's has_content, is_error, span]
        self._missing: dict[Key, list[Any]] = {}

    def add(self, key: Key, output_text: str | None, is_error: bool, has_content: bool, span: Any) -> None:
        """One call of (service, feature) ``key``: its answer text (None without content),
        whether it failed, its span."""
        if output_text is not None and not is_error and not is_placeholder(output_text):
            self._seen.add(key)
            return
        missing = self._missing.get(key)
        if missing is None:
            self._missing[key] = [1, has_content, is_error, span]
        else:
            missing[0] += 1
            missing[1], missing[2], missing[3] = has_content, is_error, span

    def flush(self) -> None:
        """Hand the batch to the watch (content last: a batch with content leaves ``seen``)."""
        watch = self._watch
        for key, (calls, has_content, is_error, span) in self._missing.items():
            watch.observe(
                key, judgeable=False, has_content=has_content, is_error=is_error, span=span, calls=calls
            )
        for key in self._seen:
            watch.observe(key, judgeable=True, has_content=True, is_error=False, span=None)
        self._missing.clear()
        self._seen.clear()
