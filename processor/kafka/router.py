"""Re-key traces by (service, feature) onto a second topic, exactly once (Kafka transactions).

The Kafka Streams repartition pattern: the collector writes whole traces keyed by trace id; every
replica runs one :class:`FeatureRouter` in the group ``<group>-router`` on that topic, which splits
each trace's spans by the (service, feature) of their calls, steps and feedback and writes them to
``owner_topic`` keyed by ``service\\x00feature``. The replicas' :class:`~llmpulse.processor.kafka.
source.KafkaSource` reads ``owner_topic``, so Kafka's partition assignment gives every
(service, feature) to exactly one replica: one owner of its SPC charts, drift windows, judge
sampling and rolling windows, and one exporter of its gauges. Spans that belong to no feature
(agent runs, web requests) follow the trace's first feature, so a single-feature trace stays whole.

Exactly once: each batch is one transaction holding the produced records and the input offsets
(``send_offsets_to_transaction``); a router that dies mid-batch leaves an aborted transaction the
readers (``isolation.level=read_committed``) never see, and its partitions' next router starts at
the last committed input offset. The router runs in a thread of its own: it never touches the
pipeline, only Kafka.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from llmpulse.processor.kafka import metric_names as N
from llmpulse.processor.pipeline.normalize import normalize_span
from llmpulse.processor.pipeline.records import Feedback, LLMCall, StepRun
from llmpulse.processor.pipeline.resource import resource_labels

logger = logging.getLogger(__name__)

__all__ = ["FeatureRouter", "route_request"]

_KEYED = (LLMCall, StepRun, Feedback)


def route_request(request: Any) -> dict[bytes, Any]:
    """Split one ``ExportTraceServiceRequest`` into requests keyed by ``service\\x00feature``."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    keyed: list[tuple[bytes | None, Any, Any, Any]] = []  # key, resource_spans, scope_spans, span
    first: dict[bytes, bytes] = {}  # trace id -> its first feature key
    for rs in request.resource_spans:
        service, environment = resource_labels(rs.resource)
        for ss in rs.scope_spans:
            for span in ss.spans:
                key: bytes | None = None
                try:
                    record = normalize_span(span, False, service, environment)
                except Exception:
                    record = None
                if isinstance(record, _KEYED):
                    key = f"{service}\x00{record.feature}".encode()
                    first.setdefault(bytes(span.trace_id), key)
                keyed.append((key, rs, ss, span))
    out: dict[bytes, Any] = {}
    scopes: dict[tuple[bytes, int, int], Any] = {}
    for key, rs, ss, span in keyed:
        target = key or first.get(bytes(span.trace_id)) or bytes(span.trace_id)
        request_out = out.get(target)
        if request_out is None:
            request_out = out[target] = ExportTraceServiceRequest()
        slot = (target, id(rs), id(ss))
        scope_out = scopes.get(slot)
        if scope_out is None:
            rs_out = request_out.resource_spans.add()
            rs_out.resource.CopyFrom(rs.resource)
            rs_out.schema_url = rs.schema_url
            scope_out = scopes[slot] = rs_out.scope_spans.add()
            scope_out.scope.CopyFrom(ss.scope)
            scope_out.schema_url = ss.schema_url
        scope_out.spans.add().CopyFrom(span)
    return out


class FeatureRouter:
    """Read ``topic`` in group ``group``, write (service, feature)-keyed records to ``owner_topic``."""

    def __init__(
        self,
        *,
        brokers: str,
        topic: str,
        owner_topic: str,
        group: str,
        transactional_id: str,
        session_timeout: float = 10.0,
        max_batch: int = 500,
        registry: CollectorRegistry | None = None,
    ) -> None:
        import confluent_kafka

        self._kafka = confluent_kafka
        self.topic = topic
        self.owner_topic = owner_topic
        self.max_batch = max_batch
        self._consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": brokers,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "partition.assignment.strategy": "cooperative-sticky",
                "session.timeout.ms": int(session_timeout * 1000),
                "heartbeat.interval.ms": max(100, int(session_timeout * 1000) // 5),
            },
            logger=logger,
        )
        self._producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": brokers,
                "transactional.id": transactional_id,
                # a dead router's open transaction blocks read_committed readers until it times out
                "transaction.timeout.ms": max(10_000, int(session_timeout * 1000)),
                "linger.ms": 5,
            },
            logger=logger,
        )
        registry = registry if registry is not None else CollectorRegistry(auto_describe=False)
        self.routed = Counter(
            N.ROUTED_RECORDS_TOTAL.removesuffix("_total"),
            "Trace records re-keyed by (service, feature) onto the owner topic, by outcome.",
            (N.OUTCOME,),
            registry=registry,
        )
        for outcome in N.ROUTE_OUTCOMES:
            self.routed.labels(outcome)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def start(self) -> None:
        self._producer.init_transactions(30)
        self._consumer.subscribe([self.topic])
        self._thread = threading.Thread(target=self._run, name="llmpulse-kafka-router", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            self._consumer.close()
        except Exception:
            logger.debug("event=kafka_router_close_failed", exc_info=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._consumer.consume(num_messages=self.max_batch, timeout=0.2)
                if messages:
                    self._route(messages)
            except Exception as exc:  # a failed transaction is aborted and the batch read again
                self.error = str(exc)
                logger.warning("event=kafka_router_batch_failed error=%s", exc)
                self._recover()
                time.sleep(0.5)

    def _recover(self) -> None:
        try:
            self._producer.abort_transaction(10)
        except Exception:
            logger.debug("event=kafka_router_abort_failed", exc_info=True)
        # rewind to the committed offsets so the aborted batch is read again
        try:
            assignment = self._consumer.assignment()
            if assignment:
                for tp in self._consumer.committed(assignment, timeout=10):
                    offset = tp.offset if tp.offset >= 0 else self._kafka.OFFSET_BEGINNING
                    self._consumer.seek(self._kafka.TopicPartition(tp.topic, tp.partition, offset))
        except Exception:
            logger.debug("event=kafka_router_rewind_failed", exc_info=True)

    def _route(self, messages: list[Any]) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        self._producer.begin_transaction()
        routed = rejected = 0
        for message in messages:
            if message.error() is not None:
                continue
            try:
                request = ExportTraceServiceRequest.FromString(message.value() or b"")
                parts = route_request(request)
            except Exception:
                parts = {}
            if not parts:
                # the source counts bad records by reason: pass them on as they are
                self._producer.produce(self.owner_topic, value=message.value() or b"", key=message.key())
                rejected += 1
                continue
            for key, part in parts.items():
                self._producer.produce(self.owner_topic, value=part.SerializeToString(), key=key)
                self._producer.poll(0)
            routed += 1
        positions = [tp for tp in self._consumer.position(self._consumer.assignment()) if tp.offset >= 0]
        self._producer.send_offsets_to_transaction(positions, self._consumer.consumer_group_metadata(), 30)
        self._producer.commit_transaction(30)
        self.routed.labels(N.ROUTE_OK).inc(routed)
        self.routed.labels(N.ROUTE_PASSED).inc(rejected)
