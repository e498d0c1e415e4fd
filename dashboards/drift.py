"""Drift: do users still ask (and the model still answer) what they did when the reference was frozen?

Reads what the drift engine exports (``processor/drift/metric_names.py``). The engine works on
sampled calls whose content the app captured; a feature's series exist from its first sample
(docs/drift.md).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, heatmap, statetimeline, timeseries
from grafana_foundation_sdk.models import dashboard as models

from dashboards.common import (
    SERVICE_FILTER,
    SIGNAL_KEY,
    datasource_variable,
    finish,
    flag_timeline_panel,
    heatmap_panel,
    label_variable,
    new_dashboard,
    per_key,
    query,
    service_variable,
    sum_rate,
    timeseries_panel,
)
from llmpulse.processor.drift import metric_names as D

UID = "llmpulse-drift"
FEATURE = 'service=~"$service", feature=~"$feature"'
INPUT = f'{FEATURE}, signal="{D.SIGNAL_INPUT}"'
OUTPUT = f'{FEATURE}, signal=~"{D.SIGNAL_RESPONSE_LENGTH}|{D.SIGNAL_FINISH_REASON}"'
FROZEN = per_key(D.DRIFT_REFERENCE_FROZEN_TIMESTAMP, FEATURE)
BY_SIGNAL = "{{service}} · {{feature}} · {{signal}}"
ALPHA = 0.01
"""Significance of every drifted flag (DriftSettings.alpha)."""


# --- input similarity -------------------------------------------------------------------------
def similarity_chart() -> timeseries.Panel:
    series = (
        (D.DRIFT_SIMILARITY_MEAN, "window mean"),
        (D.DRIFT_SIMILARITY_EWMA, "EWMA"),
        (D.DRIFT_SIMILARITY_CENTRE, "centre"),
        (D.DRIFT_SIMILARITY_LOWER_LIMIT, "lower limit"),
    )
    return timeseries_panel(
        "Input similarity to the centroid",
        "Cosine similarity of sampled prompts to the feature's slowly moving centroid: the current "
        "window's mean, and the EWMA chart of 20-prompt block means with its centre and lower "
        "control limit. LLMPulseInputSimilarityDrop fires when the EWMA stays under the limit.",
        "none",
        [
            query(per_key(metric, FEATURE), f"{name} {{{{service}}}} · {{{{feature}}}}", ref_id="ABCD"[i])
            for i, (metric, name) in enumerate(series)
        ],
    )


def similarity_distribution() -> heatmap.Panel:
    return heatmap_panel(
        "Similarity distribution",
        "Prompts by similarity to the centroid (all selected features). A new low band is a new "
        "topic; the whole mass sliding down is new phrasing or a changed prompt template.",
        f"sum by (le) (increase({D.DRIFT_SIMILARITY}_bucket{{{FEATURE}}}[$__rate_interval]))",
        "none",
    )


def similarity_alarm() -> statetimeline.Panel:
    return flag_timeline_panel(
        "Similarity chart alarm",
        "1 while the similarity EWMA is below its lower control limit.",
        per_key(D.DRIFT_SIMILARITY_ALARM, FEATURE),
        "{{service}} · {{feature}}",
        ok="in control",
        bad="alarm",
    )


# --- two-sample tests -------------------------------------------------------------------------
def mmd_score() -> timeseries.Panel:
    return timeseries_panel(
        "MMD score (input)",
        "Unbiased MMD² between the frozen reference window and the current window of prompt "
        "embeddings, from the last test: an effect size, comparable across tests of one embedder.",
        "none",
        [query(per_key(D.DRIFT_SCORE, INPUT, SIGNAL_KEY), "{{service}} · {{feature}}")],
    )


def p_values() -> timeseries.Panel:
    return timeseries_panel(
        "p-value of the last test",
        "Permutation p-value (input, MMD), KS (response_length) and chi-square (finish_reason); "
        "dashed: alpha 0.01. One test under alpha happens by chance about once in a hundred.",
        "none",
        [query(per_key(D.DRIFT_P_VALUE, FEATURE, SIGNAL_KEY), BY_SIGNAL)],
        threshold=ALPHA,
    )


def drifted_flags() -> statetimeline.Panel:
    return flag_timeline_panel(
        "Drifted flags",
        "Per feature and signal: the last test rejected 'same distribution as the reference'. "
        "The drift alerts need the flag held for an hour over at least 4 tests.",
        per_key(D.DRIFT_DRIFTED, FEATURE, SIGNAL_KEY),
        BY_SIGNAL,
        ok="same",
        bad="drifted",
    )


def output_drift() -> timeseries.Panel:
    return timeseries_panel(
        "Output drift",
        "Effect sizes of the output tests: KS distance D of response lengths, Cramér's V of the "
        "finish-reason mix (0 = same as the reference).",
        "none",
        [query(per_key(D.DRIFT_SCORE, OUTPUT, SIGNAL_KEY), BY_SIGNAL)],
    )


def tests_run() -> timeseries.Panel:
    return timeseries_panel(
        "Tests per hour",
        "Two-sample tests run per hour, per feature and signal (one every 50 samples once the "
        "current window holds 100). Under 4 an hour, the drift alerts cannot fire: watch the "
        "similarity chart instead.",
        "short",
        [query(sum_rate("service, feature, signal", D.DRIFT_TESTS_TOTAL, FEATURE) + " * 3600", BY_SIGNAL)],
    )


# --- engine -----------------------------------------------------------------------------------
def samples() -> timeseries.Panel:
    return timeseries_panel(
        "Samples embedded and dropped",
        "Sampled prompts embedded per second, per feature; samples dropped per second by reason "
        "(queue_full, feature_cap, embed_error, budget, empty; all features).",
        "reqps",
        [
            query(sum_rate("service, feature", D.DRIFT_SAMPLES_TOTAL, FEATURE), "{{service}} · {{feature}}"),
            query(
                f"sum by (reason) (rate({D.DRIFT_SAMPLES_DROPPED_TOTAL}[$__rate_interval]))",
                "dropped: {{reason}}",
                ref_id="B",
            ),
        ],
    )


def windows() -> timeseries.Panel:
    return timeseries_panel(
        "Reference and current windows",
        "Samples in the frozen reference (0 while it is being collected, e.g. after a re-freeze) "
        "and in the current window, per feature.",
        "short",
        [
            query(per_key(D.DRIFT_REFERENCE_SAMPLES, FEATURE), "reference {{service}} · {{feature}}"),
            query(per_key(D.DRIFT_WINDOW_SAMPLES, FEATURE), "current {{service}} · {{feature}}", ref_id="B"),
        ],
    )


def reference_age() -> timeseries.Panel:
    return timeseries_panel(
        "Reference age",
        "Time since each feature's reference window was frozen (`llmpulse drift refreeze` restarts it).",
        "s",
        [
            query(
                f"time() - {FROZEN} and {FROZEN} > 0",
                "{{service}} · {{feature}}",
            )
        ],
    )


def embedding_time() -> timeseries.Panel:
    return timeseries_panel(
        "Embedding time per batch",
        "p50 and p95 time to embed one batch of samples (the embedder runs off the ingest path).",
        "s",
        [
            query(
                f"histogram_quantile({q}, sum by (instance, le) "
                f"(rate({D.DRIFT_EMBED_SECONDS}_bucket[$__rate_interval])))",
                f"p{round(float(q) * 100)} {{{{instance}}}}",
                ref_id="AB"[i],
            )
            for i, q in enumerate(("0.5", "0.95"))
        ],
    )


def embedding_queue() -> timeseries.Panel:
    return timeseries_panel(
        "Embedding queue",
        "Samples waiting to be embedded; when the queue (10,000 by default) is full, samples are "
        "dropped with reason queue_full.",
        "short",
        [query(f"max by (instance) ({D.DRIFT_QUEUE_SAMPLES})", "{{instance}}")],
    )


def build() -> models.Dashboard:
    """The drift dashboard."""
    board = (
        new_dashboard(
            UID,
            "llmpulse / Drift",
            "Input drift (prompt embeddings against a frozen reference) and output drift "
            "(response length, finish-reason mix) per feature.",
            ["drift"],
        )
        .with_variable(datasource_variable())
        .with_variable(service_variable(D.DRIFT_SAMPLES_TOTAL))
        .with_variable(label_variable("feature", "Feature", f"{D.DRIFT_SAMPLES_TOTAL}{{{SERVICE_FILTER}}}"))
        .with_row(dashboard.Row("Input similarity"))
        .with_panel(similarity_chart())
        .with_panel(similarity_distribution())
        .with_panel(similarity_alarm())
        .with_row(dashboard.Row("Two-sample tests"))
        .with_panel(mmd_score())
        .with_panel(p_values())
        .with_panel(drifted_flags())
        .with_panel(output_drift())
        .with_panel(tests_run())
        .with_row(dashboard.Row("Engine"))
        .with_panel(samples())
        .with_panel(windows())
        .with_panel(reference_age())
        .with_panel(embedding_time())
        .with_panel(embedding_queue())
    )
    return finish(board)
