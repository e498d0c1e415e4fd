"""The sentiment of a feedback span: its ``llmpulse.feedback.kind`` and ``value`` read as
positive, negative or neutral."""

from __future__ import annotations

import math
from typing import Any

from llmpulse.contract import attributes as A
from llmpulse.processor.metrics import names as M


def sentiment_of(kind: str, value: Any) -> str | None:
    """Sentiment of a feedback event (``value``: the plain value of ``llmpulse.feedback.value``,
    see :func:`~llmpulse.processor.pipeline.normalize.span_values`); None when it is unusable."""
    if value is None:
        number = 1.0
    else:
        value_type = type(value)
        if value_type is float:
            number = value
        elif value_type is int:
            number = float(value)
        elif value_type is bool:
            number = 1.0 if value else 0.0
        else:
            return None
        if not math.isfinite(number):
            return None
    if kind == A.FEEDBACK_THUMBS:
        return M.SENTIMENT_POSITIVE if number >= 0.5 else M.SENTIMENT_NEGATIVE
    if kind == A.FEEDBACK_RATING:  # 1..5 scale
        if number >= 4:
            return M.SENTIMENT_POSITIVE
        return M.SENTIMENT_NEGATIVE if number <= 2 else M.SENTIMENT_NEUTRAL
    if kind in (A.FEEDBACK_CORRECTION, A.FEEDBACK_ABANDONED):
        return M.SENTIMENT_NEGATIVE
    return M.SENTIMENT_NEUTRAL
