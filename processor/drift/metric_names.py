"""Metric and label names the drift engine exports, in the style of
:mod:`llmpulse.processor.metrics.names`.

Kept in the drift package, beside the engine that exports them; :data:`DRIFT_METRICS` uses the
same :class:`MetricSpec` and :data:`DRIFT_EXPORTED_SERIES` lists the sample names.

Labels: ``service`` and ``feature`` (capped like everywhere else; drift state is kept per
(service, feature)), ``signal`` (one of :data:`SIGNALS`: the
prompt embeddings, the response length, the finish-reason mix) and ``reason`` for dropped
samples (:data:`DROP_REASONS`). All label sets are bounded.
"""

from __future__ import annotations

from typing import Final

from llmpulse.processor.metrics.names import FEATURE, REASON, SERVICE, MetricSpec

# --- labels and their values ----------------------------------------------------------------
SIGNAL: Final = "signal"
SIGNAL_INPUT: Final = "input"
SIGNAL_RESPONSE_LENGTH: Final = "response_length"
SIGNAL_FINISH_REASON: Final = "finish_reason"
SIGNALS: Final = (SIGNAL_INPUT, SIGNAL_RESPONSE_LENGTH, SIGNAL_FINISH_REASON)

DROP_QUEUE_FULL: Final = "queue_full"  # the engine's bounded queue was full
DROP_FEATURE_CAP: Final = "feature_cap"  # too many distinct features already tracked
DROP_EMBED_ERROR: Final = "embed_error"  # the embedder failed (endpoint down, bad answer)
DROP_BUDGET: Final = "budget"  # the embedder's daily budget is spent
DROP_EMPTY: Final = "empty"  # a sample without text
DROP_REASONS: Final = (DROP_QUEUE_FULL, DROP_FEATURE_CAP, DROP_EMBED_ERROR, DROP_BUDGET, DROP_EMPTY)

SIMILARITY_BUCKETS: Final = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0)
EMBED_SECONDS_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# --- metric names (as exposed) --------------------------------------------------------------
DRIFT_SIMILARITY: Final = "llmpulse_drift_similarity"
DRIFT_SIMILARITY_MEAN: Final = "llmpulse_drift_similarity_mean"
DRIFT_SIMILARITY_EWMA: Final = "llmpulse_drift_similarity_ewma"
DRIFT_SIMILARITY_CENTRE: Final = "llmpulse_drift_similarity_centre"
DRIFT_SIMILARITY_LOWER_LIMIT: Final = "llmpulse_drift_similarity_lower_limit"
DRIFT_SIMILARITY_ALARM: Final = "llmpulse_drift_similarity_alarm"
DRIFT_SCORE: Final = "llmpulse_drift_score"
DRIFT_P_VALUE: Final = "llmpulse_drift_p_value"
DRIFT_DRIFTED: Final = "llmpulse_drift_drifted"
DRIFT_TESTS_TOTAL: Final = "llmpulse_drift_tests_total"
DRIFT_SAMPLES_TOTAL: Final = "llmpulse_drift_samples_total"
DRIFT_SAMPLES_DROPPED_TOTAL: Final = "llmpulse_drift_samples_dropped_total"
DRIFT_REFERENCE_SAMPLES: Final = "llmpulse_drift_reference_samples"
DRIFT_WINDOW_SAMPLES: Final = "llmpulse_drift_window_samples"
DRIFT_REFERENCE_FROZEN_TIMESTAMP: Final = "llmpulse_drift_reference_frozen_timestamp_seconds"
DRIFT_QUEUE_SAMPLES: Final = "llmpulse_drift_queue_samples"
DRIFT_EMBED_SECONDS: Final = "llmpulse_drift_embed_seconds"
DRIFT_SAVES_REFUSED_TOTAL: Final = "llmpulse_drift_reference_saves_refused_total"

DRIFT_METRICS: Final[tuple[MetricSpec, ...]] = (
    MetricSpec(
        DRIFT_SIMILARITY,
        "histogram",
        (SERVICE, FEATURE),
        "Cosine similarity of each sampled prompt to the feature's slowly updated centroid.",
        SIMILARITY_BUCKETS,
    ),
    MetricSpec(
        DRIFT_SIMILARITY_MEAN,
        "gauge",
        (SERVICE, FEATURE),
        "Mean centroid similarity over the current window.",
    ),
    MetricSpec(
        DRIFT_SIMILARITY_EWMA,
        "gauge",
        (SERVICE, FEATURE),
        "EWMA chart of the block-mean centroid similarity (NaN during warm-up).",
    ),
    MetricSpec(
        DRIFT_SIMILARITY_CENTRE,
        "gauge",
        (SERVICE, FEATURE),
        "Centre line (baseline mean) of the similarity chart.",
    ),
    MetricSpec(
        DRIFT_SIMILARITY_LOWER_LIMIT,
        "gauge",
        (SERVICE, FEATURE),
        "Lower control limit of the similarity chart.",
    ),
    MetricSpec(
        DRIFT_SIMILARITY_ALARM,
        "gauge",
        (SERVICE, FEATURE),
        "1 while the similarity EWMA is below its lower control limit, else 0.",
    ),
    MetricSpec(
        DRIFT_SCORE,
        "gauge",
        (SERVICE, FEATURE, SIGNAL),
        "Effect size of the last reference-vs-current test: MMD² (input), KS D (response_length), "
        "Cramér's V (finish_reason).",
    ),
    MetricSpec(
        DRIFT_P_VALUE, "gauge", (SERVICE, FEATURE, SIGNAL), "p-value of the last reference-vs-current test."
    ),
    MetricSpec(
        DRIFT_DRIFTED,
        "gauge",
        (SERVICE, FEATURE, SIGNAL),
        "1 when the last test rejected 'same distribution' at the configured alpha, else 0.",
    ),
    MetricSpec(DRIFT_TESTS_TOTAL, "counter", (SERVICE, FEATURE, SIGNAL), "Two-sample drift tests run."),
    MetricSpec(
        DRIFT_SAMPLES_TOTAL, "counter", (SERVICE, FEATURE), "Sampled prompts embedded by the drift engine."
    ),
    MetricSpec(
        DRIFT_SAMPLES_DROPPED_TOTAL,
        "counter",
        (REASON,),
        "Samples the drift engine dropped, by reason (queue_full|feature_cap|embed_error|budget|empty).",
    ),
    MetricSpec(
        DRIFT_SAVES_REFUSED_TOTAL,
        "counter",
        (REASON,),
        "Frozen references the store refused to save, by reason (stale_owner: another replica took"
        " the feature over since this one did).",
    ),
    MetricSpec(
        DRIFT_REFERENCE_SAMPLES,
        "gauge",
        (SERVICE, FEATURE),
        "Samples in the frozen reference window (0 while it is being collected).",
    ),
    MetricSpec(DRIFT_WINDOW_SAMPLES, "gauge", (SERVICE, FEATURE), "Samples in the current window."),
    MetricSpec(
        DRIFT_REFERENCE_FROZEN_TIMESTAMP,
        "gauge",
        (SERVICE, FEATURE),
        "Unix time the reference window was last frozen (0 while collecting).",
    ),
    MetricSpec(DRIFT_QUEUE_SAMPLES, "gauge", (), "Samples waiting to be embedded."),
    MetricSpec(
        DRIFT_EMBED_SECONDS, "histogram", (), "Time to embed one batch of samples.", EMBED_SECONDS_BUCKETS
    ),
)

DRIFT_METRICS_BY_NAME: Final = {spec.name: spec for spec in DRIFT_METRICS}

DRIFT_EXPORTED_SERIES: Final[frozenset[str]] = frozenset(
    name for spec in DRIFT_METRICS for name in spec.series
)
"""Every sample name the drift engine adds to a scrape (``_created`` aside)."""
