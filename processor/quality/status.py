"""A JSON-ready summary of the quality engine, for the processor's ``/api/status``."""

from __future__ import annotations

import math
from typing import Any

from llmpulse.processor.quality.content_watch import HINTS
from llmpulse.processor.quality.engine import QualityEngine

__all__ = ["quality_status"]


def _num(value: float) -> float | None:
    return None if math.isnan(value) else value


def quality_status(engine: QualityEngine) -> dict[str, Any]:
    """Judge state, and per service and feature (``services.<service>.<feature>``) the latest
    point of every chart, the user-signal rates and whether content arrives (``content``: state,
    seconds since the last, what to do).

    NaN (no data yet) becomes ``None`` so the result serialises as strict JSON.
    """
    budget = engine.budget
    services: dict[str, dict[str, dict[str, Any]]] = {}

    def entry(key: tuple[str, str]) -> dict[str, Any]:
        return services.setdefault(key[0], {}).setdefault(key[1], {"charts": {}})

    for (service, feature, statistic), state in sorted(engine.charts.states().items()):
        charts = entry((service, feature))["charts"]
        if state is None:
            continue
        charts[statistic] = {
            "value": state.value,
            "ewma": _num(state.ewma),
            "centre": _num(state.centre),
            "upper": _num(state.upper),
            "lower": _num(state.lower),
            "alert_upper": _num(state.alert_upper),
            "alert_lower": _num(state.alert_lower),
            "alarm": state.alarm,
            "in_warmup": state.in_warmup,
        }
    for key in engine.signals.features():
        snap = engine.signals.snapshot(key)
        entry(key)["signals"] = {
            "responses": snap.responses,
            "explicit_positive_ratio": _num(snap.positive_rate),
            "explicit_coverage_ratio": _num(snap.coverage),
            "correction_ratio": _num(snap.correction_rate),
            "follow_up_ratio": _num(snap.follow_up_rate),
            "abandonment_ratio": _num(snap.abandonment_rate),
            "survivorship_risk": snap.survivorship_risk,
            "at_risk": snap.at_risk,
        }
    watch = engine.content
    for key in watch.features():
        content_state = watch.state(key)
        entry(key)["content"] = {
            "state": content_state,
            "age_s": round(watch.age(key), 1),
            "hint": HINTS[content_state],
        }
    budget.allows()  # rolls the day over before reporting
    return {
        "judge": {
            "enabled": engine.settings.judge.enabled,
            "model": engine.settings.judge.model,
            "base_url": engine.settings.judge.base_url,
            "note": engine.settings.judge.note,
            "queue": engine.queue_size,
            "queue_size": engine.settings.judge.queue_size,
            "workers": engine.settings.judge.workers,
            "requests_per_second": engine.settings.judge.requests_per_second,
            "circuit_open": engine.breaker.is_open,
            "spent_today": {"tokens": budget.tokens, "usd": budget.usd},
            "budget_per_day": {"tokens": budget.max_tokens, "usd": budget.max_usd},
        },
        "services": {
            service: dict(sorted(features.items())) for service, features in sorted(services.items())
        },
    }
