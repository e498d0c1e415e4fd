"""The Kafka source of ``llmpulse serve``: OTLP traces read from a topic as one member of a
consumer group, fed into the same pipeline as the OTLP receivers (docs/kafka.md).

:class:`~llmpulse.processor.kafka.source.KafkaSource` owns the consumer, the offsets of what the
pipeline has counted and the commit that hands them to Kafka; the service builds one when
``kafka_brokers`` is set (:func:`build_kafka_source`) and calls its ``commit_counted`` before each
``/metrics`` scrape, so what Prometheus has seen and what Kafka will not deliver again are the same.
"""

from __future__ import annotations

from llmpulse.processor.kafka.source import CommitFailed, KafkaSource, KafkaUnavailable, build_kafka_source

__all__ = ["CommitFailed", "KafkaSource", "KafkaUnavailable", "build_kafka_source"]
