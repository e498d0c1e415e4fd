"""Processor health: is the pipeline up, receiving, keeping up, and rejecting nothing?"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, stat, table, timeseries
from grafana_foundation_sdk.models import dashboard as models

from dashboards.common import (
    PROCESSOR_JOB,
    datasource_variable,
    finish,
    label_variable,
    new_dashboard,
    query,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from llmpulse.processor.drift import metric_names as D
from llmpulse.processor.metrics import names as M
from llmpulse.processor.quality import metric_names as Q

UID = "llmpulse-processor-health"
SELECT = f'job="{PROCESSOR_JOB}", instance=~"$instance"'


def _rate_by(labels: str, metric: str) -> str:
    return f"sum by ({labels}) (rate({metric}{{{SELECT}}}[$__rate_interval]))"


def _increase_by(labels: str, metric: str) -> str:
    return f"sum by ({labels}) (increase({metric}{{{SELECT}}}[$__rate_interval]))"


def up() -> stat.Panel:
    return stat_panel(
        "Processors up",
        "Scraped processor instances that answer (up == 1).",
        "short",
        f"sum(up{{{SELECT}}})",
    )


def received_total() -> stat.Panel:
    return stat_panel(
        "Spans/s received",
        "Spans in decoded export requests per second.",
        "short",
        f"sum(rate({M.SPANS_RECEIVED_TOTAL}{{{SELECT}}}[5m]))",
    )


def queue_fill() -> stat.Panel:
    return stat_panel(
        "Queue fill",
        "Spans waiting / queue capacity. Near 100% the processor refuses exports (queue_full).",
        "percentunit",
        f"max({M.QUEUE_SPANS}{{{SELECT}}} / {M.QUEUE_CAPACITY_SPANS}{{{SELECT}}})",
    )


def versions() -> table.Panel:
    return table_panel(
        "Versions",
        "llmpulse version of each processor instance.",
        f"{M.BUILD_INFO}{{{SELECT}}}",
        width=6,
    )


def received() -> timeseries.Panel:
    return timeseries_panel(
        "Spans received by receiver",
        "Spans/s arriving over OTLP gRPC and HTTP.",
        "short",
        [query(_rate_by("instance, receiver", M.SPANS_RECEIVED_TOTAL), "{{instance}} · {{receiver}}")],
    )


def accepted() -> timeseries.Panel:
    return timeseries_panel(
        "Spans processed by kind",
        "llm, step and feedback spans make metrics; duplicate (a second span for a counted call) and "
        "other spans are skipped.",
        "short",
        [query(_rate_by("kind", M.SPANS_ACCEPTED_TOTAL), "{{kind}}")],
        stacked=True,
    )


def rejected() -> timeseries.Panel:
    return timeseries_panel(
        "Spans rejected by reason",
        "Spans dropped for bad values (their batch-mates are kept). See the LLMPulseRejectingSpans runbook.",
        "short",
        [query(_rate_by("reason", M.SPANS_REJECTED_TOTAL), "{{reason}}")],
    )


def refused() -> timeseries.Panel:
    return timeseries_panel(
        "Refused exports",
        "Export requests answered with an error, and the spans in refused requests (queue_full and "
        "shutting_down are retried by the collector).",
        "short",
        [
            query(
                _rate_by("receiver, reason", M.REQUESTS_REFUSED_TOTAL), "requests · {{receiver}} · {{reason}}"
            ),
            query(
                _rate_by("receiver, reason", M.SPANS_REFUSED_TOTAL),
                "spans · {{receiver}} · {{reason}}",
                ref_id="B",
            ),
        ],
    )


def queue() -> timeseries.Panel:
    return timeseries_panel(
        "Queue",
        "Spans waiting to be processed, and the queue's capacity.",
        "short",
        [
            query(f"{M.QUEUE_SPANS}{{{SELECT}}}", "waiting · {{instance}}"),
            query(f"{M.QUEUE_CAPACITY_SPANS}{{{SELECT}}}", "capacity · {{instance}}", ref_id="B"),
        ],
    )


def batch_latency() -> timeseries.Panel:
    return timeseries_panel(
        "Time per export request",
        "p50 and p99 time to process one export request.",
        "s",
        [
            query(
                f"histogram_quantile({q}, sum by (instance, le) "
                f"(rate({M.BATCH_PROCESSING_SECONDS}_bucket{{{SELECT}}}[$__rate_interval])))",
                f"p{round(q * 100)} · {{{{instance}}}}",
                ref_id=ref,
            )
            for q, ref in ((0.5, "A"), (0.99, "B"))
        ],
    )


def label_overflow() -> timeseries.Panel:
    return timeseries_panel(
        "Label values folded into __other__, and freed",
        "Spans whose feature/model/... value was past the per-label cap. Non-zero: too many distinct "
        "values reach a label (an id used as a feature name?). Freed: values unseen for "
        "--label-idle-seconds that gave their slot back (a new value then gets it).",
        "short",
        [
            query(_rate_by("label", M.LABEL_OVERFLOW_TOTAL), "folded {{label}}"),
            query(_rate_by("label", M.LABEL_EVICTIONS_TOTAL), "freed {{label}}"),
        ],
    )


def recent_samples() -> timeseries.Panel:
    return timeseries_panel(
        "Recent samples kept for late feedback",
        "Characters of content the quality engine keeps so late negative feedback can flag its "
        "answer (bounded by recent_bytes), and samples forgotten early per second, by the budget "
        "that was full. Steady evictions by bytes: answers are large; raise recent_bytes if "
        "feedback arrives late.",
        "short",
        [
            query(f"{Q.RECENT_BYTES}{{{SELECT}}}", "content characters · {{instance}}"),
            query(_rate_by("reason", Q.RECENT_EVICTED_TOTAL), "evicted by {{reason}} /s", ref_id="B"),
        ],
    )


def saves_refused() -> timeseries.Panel:
    return timeseries_panel(
        "State saves refused (stale owner)",
        "SPC chart snapshots and drift references a replica tried to save after another replica "
        "had taken their feature over (owner epochs, docs/kafka.md). The store refused them, so the "
        "new owner's state stands; a non-zero rate names a replica that lost its partitions "
        "without knowing yet (paused past its Kafka session timeout).",
        "short",
        [
            query(
                _increase_by("instance, reason", Q.SPC_SAVES_REFUSED_TOTAL),
                "SPC charts · {{instance}} · {{reason}}",
            ),
            query(
                _increase_by("instance, reason", D.DRIFT_SAVES_REFUSED_TOTAL),
                "drift references · {{instance}} · {{reason}}",
                ref_id="B",
            ),
        ],
    )


def build() -> models.Dashboard:
    """The processor health dashboard."""
    board = (
        new_dashboard(
            UID,
            "llmpulse / Processor health",
            "The llmpulse processor itself: up, spans received and processed, rejections, refusals, queue.",
            ["processor"],
        )
        .with_variable(datasource_variable())
        .with_variable(label_variable("instance", "Instance", f'up{{job="{PROCESSOR_JOB}"}}'))
        .with_panel(up())
        .with_panel(received_total())
        .with_panel(queue_fill())
        .with_panel(versions())
        .with_row(dashboard.Row("Ingest"))
        .with_panel(received())
        .with_panel(accepted())
        .with_panel(rejected())
        .with_panel(refused())
        .with_row(dashboard.Row("Capacity"))
        .with_panel(queue())
        .with_panel(batch_latency())
        .with_panel(label_overflow())
        .with_panel(recent_samples())
        .with_panel(saves_refused())
    )
    return finish(board)
