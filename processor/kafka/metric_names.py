"""Names, labels and help of the Kafka source's metrics (one source of truth; see
:class:`~llmpulse.processor.kafka.source.KafkaSource`)."""

from __future__ import annotations

from typing import Final

RECORDS_TOTAL: Final = "llmpulse_kafka_records_total"
"""Kafka records read, by outcome (``counted``: handed to the pipeline and counted)."""
RECORDS_REJECTED_TOTAL: Final = "llmpulse_kafka_records_rejected_total"
"""Kafka records that carried nothing countable, by reason; their offsets are committed."""
COMMITS_TOTAL: Final = "llmpulse_kafka_commits_total"
"""Offset commits, by outcome (``ok``, ``failed``)."""
HANDED_OVER_TOTAL: Final = "llmpulse_kafka_records_handed_over_total"
"""Records read but not counted when their partition moved to another replica (it counts them)."""
CONSUMER_LAG: Final = "llmpulse_kafka_consumer_lag_records"
"""Records on the assigned partitions not yet counted (high watermark minus counted offset)."""
ASSIGNED_PARTITIONS: Final = "llmpulse_kafka_assigned_partitions"
"""Partitions of the topic this replica owns now."""
REBALANCES_TOTAL: Final = "llmpulse_kafka_rebalances_total"
"""Partition assignment changes seen, by kind (``assigned``, ``revoked``, ``lost``)."""
ROUTED_RECORDS_TOTAL: Final = "llmpulse_kafka_routed_records_total"
"""Trace records the router re-keyed by (service, feature) onto the owner topic, by outcome
(``routed``; ``passed``: nothing to route, handed on as they are for the source to count)."""

REASON: Final = "reason"
OUTCOME: Final = "outcome"
KIND: Final = "kind"

REJECT_EMPTY: Final = "empty"
REJECT_UNDECODABLE: Final = "undecodable"
REJECT_NO_SPANS: Final = "no_spans"
REJECT_CONSUMER_ERROR: Final = "consumer_error"
REJECT_REASONS: Final = (REJECT_EMPTY, REJECT_UNDECODABLE, REJECT_NO_SPANS, REJECT_CONSUMER_ERROR)

COMMIT_OK: Final = "ok"
COMMIT_FAILED: Final = "failed"
REBALANCE_KINDS: Final = ("assigned", "revoked", "lost")
ROUTE_OK: Final = "routed"
ROUTE_PASSED: Final = "passed"
ROUTE_OUTCOMES: Final = (ROUTE_OK, ROUTE_PASSED)

ALL_METRICS: Final = (
    RECORDS_TOTAL,
    RECORDS_REJECTED_TOTAL,
    COMMITS_TOTAL,
    HANDED_OVER_TOTAL,
    CONSUMER_LAG,
    ASSIGNED_PARTITIONS,
    REBALANCES_TOTAL,
    ROUTED_RECORDS_TOTAL,
)

TOPIC: Final = "topic"

KAFKA_EXPORTED_SERIES: Final[frozenset[str]] = frozenset(
    {
        RECORDS_TOTAL,
        RECORDS_REJECTED_TOTAL,
        COMMITS_TOTAL,
        HANDED_OVER_TOTAL,
        CONSUMER_LAG,
        ASSIGNED_PARTITIONS,
        REBALANCES_TOTAL,
        ROUTED_RECORDS_TOTAL,
    }
)
"""Every sample name the Kafka source and router add to a scrape (when ``--kafka-brokers`` is set)."""
KAFKA_LABELS: Final[frozenset[str]] = frozenset({REASON, OUTCOME, KIND, TOPIC})
"""The label names of those samples."""
