"""Users: explicit feedback and implicit signals per feature, and the survivorship-bias risk.

The first rows count feedback events (processor metrics); the last reads the quality engine's
user-signal gauges (rolling hour, per response; docs/quality.md).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, gauge, timeseries
from grafana_foundation_sdk.models import dashboard as models

from dashboards.common import (
    SERVICE_FILTER,
    datasource_variable,
    finish,
    gauge_panel,
    label_variable,
    new_dashboard,
    per_key,
    query,
    service_variable,
    sum_rate,
    timeseries_panel,
)
from llmpulse.processor.metrics import names as M
from llmpulse.processor.quality import metric_names as Q

UID = "llmpulse-users"
FEEDBACK_FILTER = f'{SERVICE_FILTER}, feature=~"$feature", kind=~"$kind"'
CALL_FILTER = f'{SERVICE_FILTER}, feature=~"$feature"'
IMPLICIT_KINDS = "correction|follow_up|abandoned"
FEATURE = 'service=~"$service", feature=~"$feature"'
SURVIVORSHIP_ALERT = 0.8
"""LLMPulseSurvivorshipBiasRisk's threshold (alerting/rules/llmpulse-quality.yml)."""


def feedback_by_kind() -> timeseries.Panel:
    return timeseries_panel(
        "Feedback by kind",
        "Feedback events/s: explicit (thumbs, rating, comment) and implicit (correction, follow_up, "
        "abandoned).",
        "short",
        [
            query(
                sum_rate("service, feature, kind", M.FEEDBACK_TOTAL, FEEDBACK_FILTER),
                "{{service}} · {{feature}} · {{kind}}",
            )
        ],
        stacked=True,
    )


def feedback_by_sentiment() -> timeseries.Panel:
    return timeseries_panel(
        "Feedback by sentiment",
        "Feedback events/s by sentiment (positive, negative, neutral).",
        "short",
        [
            query(
                f"sum by (sentiment) (rate({M.FEEDBACK_TOTAL}{{{FEEDBACK_FILTER}}}[$__rate_interval]))",
                "{{sentiment}}",
            )
        ],
        stacked=True,
    )


def positive_share() -> timeseries.Panel:
    return timeseries_panel(
        "Positive share of explicit feedback",
        "positive / (positive + negative) per feature. Read it with the coverage next to it: a happy "
        "share from few users may only mean the unhappy ones left.",
        "percentunit",
        [
            query(
                sum_rate("service, feature", M.FEEDBACK_TOTAL, f'{FEEDBACK_FILTER}, sentiment="positive"')
                + " / "
                + sum_rate(
                    "service, feature", M.FEEDBACK_TOTAL, f'{FEEDBACK_FILTER}, sentiment=~"positive|negative"'
                ),
                "{{service}} · {{feature}}",
            )
        ],
    )


def coverage() -> timeseries.Panel:
    return timeseries_panel(
        "Feedback per LLM call",
        "Feedback events per LLM call, by feature: how much of the traffic the feedback speaks for.",
        "percentunit",
        [
            query(
                f"sum by (service, feature) (rate({M.FEEDBACK_TOTAL}{{{FEEDBACK_FILTER}}}[$__rate_interval]))"
                f" / sum by (service, feature) (rate({M.REQUESTS_TOTAL}{{{CALL_FILTER}}}[$__rate_interval]))",
                "{{service}} · {{feature}}",
            )
        ],
    )


def implicit_signals() -> timeseries.Panel:
    return timeseries_panel(
        "Implicit signals per LLM call",
        "Corrections, follow-up questions and abandoned sessions per LLM call, by feature.",
        "percentunit",
        [
            query(
                sum_rate(
                    "service, feature, kind", M.FEEDBACK_TOTAL, f'{CALL_FILTER}, kind=~"{IMPLICIT_KINDS}"'
                )
                + " / on (service, feature) group_left "
                + sum_rate("service, feature", M.REQUESTS_TOTAL, CALL_FILTER),
                "{{service}} · {{feature}} · {{kind}}",
            )
        ],
    )


def signal_ratios() -> timeseries.Panel:
    series = (
        (Q.USER_ABANDONMENT_RATIO, "abandoned"),
        (Q.USER_CORRECTION_RATIO, "corrections"),
        (Q.USER_FOLLOW_UP_RATIO, "follow-ups"),
    )
    return timeseries_panel(
        "User signals per response (last hour)",
        "Abandonments, corrections and follow-ups per response over the quality engine's rolling "
        "hour, per feature.",
        "percentunit",
        [
            query(per_key(metric, FEATURE), f"{name} {{{{service}}}} · {{{{feature}}}}", ref_id="ABC"[i])
            for i, (metric, name) in enumerate(series)
        ],
    )


def explicit_feedback() -> timeseries.Panel:
    return timeseries_panel(
        "Explicit feedback: positive share and coverage (last hour)",
        "Positive share of thumbs and ratings, and explicit feedback events per response "
        "(coverage), over the rolling hour. A happy share on low coverage speaks for few users.",
        "percentunit",
        [
            query(per_key(Q.USER_POSITIVE_RATIO, FEATURE), "positive share {{service}} · {{feature}}"),
            query(per_key(Q.USER_COVERAGE_RATIO, FEATURE), "coverage {{service}} · {{feature}}", ref_id="B"),
        ],
    )


def survivorship_gauge() -> gauge.Panel:
    return gauge_panel(
        "Survivorship-bias risk",
        "0-1 per feature: 1 when at least 30% of responses are abandoned while at most 20% get "
        "explicit feedback and that is at least 80% positive. Red from 0.8, where "
        "LLMPulseSurvivorshipBiasRisk fires (after 30 minutes).",
        per_key(Q.USER_SURVIVORSHIP_RISK, FEATURE),
        red_from=SURVIVORSHIP_ALERT,
        legend="{{service}} · {{feature}}",
    )


def survivorship_history() -> timeseries.Panel:
    return timeseries_panel(
        "Survivorship-bias risk over time",
        "The risk gauge per feature; dashed: the alert threshold.",
        "none",
        [query(per_key(Q.USER_SURVIVORSHIP_RISK, FEATURE), "{{service}} · {{feature}}")],
        width=18,
        threshold=SURVIVORSHIP_ALERT,
    )


def build() -> models.Dashboard:
    """The users dashboard."""
    board = (
        new_dashboard(
            UID,
            "llmpulse / Users",
            "What users say (explicit feedback) and do (corrections, follow-ups, abandonment) per "
            "feature, and whether the happy feedback only comes from the users who stayed.",
            ["users"],
        )
        .with_variable(datasource_variable())
        .with_variable(service_variable(M.FEEDBACK_TOTAL))
        .with_variable(label_variable("feature", "Feature", f"{M.FEEDBACK_TOTAL}{{{SERVICE_FILTER}}}"))
        .with_variable(label_variable("kind", "Kind", f"{M.FEEDBACK_TOTAL}{{{CALL_FILTER}}}"))
        .with_row(dashboard.Row("Feedback"))
        .with_panel(feedback_by_kind())
        .with_panel(feedback_by_sentiment())
        .with_panel(positive_share())
        .with_panel(coverage())
        .with_row(dashboard.Row("Implicit signals"))
        .with_panel(implicit_signals())
        .with_row(dashboard.Row("User signals and survivorship risk"))
        .with_panel(signal_ratios())
        .with_panel(explicit_feedback())
        .with_panel(survivorship_gauge())
        .with_panel(survivorship_history())
    )
    return finish(board)
