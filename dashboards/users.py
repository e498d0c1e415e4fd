"""Users: explicit feedback and implicit signals per feature.

The survivorship-risk gauge comes with the quality engine (issue 5).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, timeseries
from grafana_foundation_sdk.models import dashboard as models

from dashboards.common import (
    datasource_variable,
    finish,
    label_variable,
    new_dashboard,
    query,
    sum_rate,
    timeseries_panel,
)
from llmpulse.processor import metric_names as M

UID = "llmpulse-users"
FEEDBACK_FILTER = 'feature=~"$feature", kind=~"$kind"'
IMPLICIT_KINDS = "correction|follow_up|abandoned"


def feedback_by_kind() -> timeseries.Panel:
    return timeseries_panel(
        "Feedback by kind",
        "Feedback events/s: explicit (thumbs, rating, comment) and implicit (correction, follow_up, "
        "abandoned).",
        "short",
        [
            query(
                f"sum by (feature, kind) (rate({M.FEEDBACK_TOTAL}{{{FEEDBACK_FILTER}}}[$__rate_interval]))",
                "{{feature}} · {{kind}}",
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
                sum_rate("feature", M.FEEDBACK_TOTAL, f'{FEEDBACK_FILTER}, sentiment="positive"')
                + " / "
                + sum_rate("feature", M.FEEDBACK_TOTAL, f'{FEEDBACK_FILTER}, sentiment=~"positive|negative"'),
                "{{feature}}",
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
                f"sum by (feature) (rate({M.FEEDBACK_TOTAL}{{{FEEDBACK_FILTER}}}[$__rate_interval]))"
                f' / sum by (feature) (rate({M.REQUESTS_TOTAL}{{feature=~"$feature"}}[$__rate_interval]))',
                "{{feature}}",
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
                sum_rate("feature, kind", M.FEEDBACK_TOTAL, f'feature=~"$feature", kind=~"{IMPLICIT_KINDS}"')
                + " / on (feature) group_left "
                + sum_rate("feature", M.REQUESTS_TOTAL, 'feature=~"$feature"'),
                "{{feature}} · {{kind}}",
            )
        ],
    )


def build() -> models.Dashboard:
    """The users dashboard."""
    board = (
        new_dashboard(
            UID,
            "llmpulse / Users",
            "What users say (explicit feedback) and do (corrections, follow-ups, abandonment) per feature.",
            ["users"],
        )
        .with_variable(datasource_variable())
        .with_variable(label_variable("feature", "Feature", M.FEEDBACK_TOTAL))
        .with_variable(label_variable("kind", "Kind", f'{M.FEEDBACK_TOTAL}{{feature=~"$feature"}}'))
        .with_row(dashboard.Row("Feedback"))
        .with_panel(feedback_by_kind())
        .with_panel(feedback_by_sentiment())
        .with_panel(positive_share())
        .with_panel(coverage())
        .with_row(dashboard.Row("Implicit signals"))
        .with_panel(implicit_signals())
    )
    return finish(board)
