"""Read OTLP traces from a Kafka topic into the pipeline; commit only what the metrics have shown.

Each Kafka record is one OTLP protobuf ``ExportTraceServiceRequest`` (the collector's kafka
exporter with ``encoding: otlp_proto``, partitioned by trace id). The replicas of ``llmpulse serve``
that share ``kafka_group`` form one consumer group: Kafka gives each partition to one of them and
moves it when a replica leaves or dies (cooperative-sticky assignment, so a survivor keeps what it
had while the dead one's partitions move).

**Exactly once into Prometheus.** A processor's counts live in its memory until Prometheus scrapes
them, and die with it. So an offset is committed exactly when the counts of the records before it
are handed to a scraper: :meth:`KafkaSource.commit_counted` runs before each ``/metrics`` response
and commits, per partition, the offset after the last record the pipeline has counted (a record's
future is done the moment the worker has counted it, in the same synchronous step). A replica that
dies had shown Prometheus exactly the counts of the offsets it committed; the replica that takes
its partitions over starts at those offsets and counts the rest once. A failed commit answers the
scrape 503 (Prometheus keeps the previous values; nothing shown is uncommitted).

A zombie (this replica paused past its session timeout) finds its partitions lost holding records
it counted and can no longer commit, which their new owner counts again: the scrape endpoint then
withholds every count its last scrape did not show (``withhold_unshown``,
:mod:`llmpulse.processor.metrics.shown`), so the next scrape goes on from what Prometheus has.

When a partition is revoked from a live replica, its records not yet counted are dropped from the
queue (their futures are cancelled, so the worker skips them) and the counted prefix is committed:
the new owner counts the rest. Bounds that remain: counts committed on a revoke, or by the idle
commit (no scrape for ``idle_commit_seconds``), and lost if the replica dies before its next scrape;
a scrape response that was committed but never reached Prometheus; anthropic-SDK spans held by the
de-duplicator when their record's offset was committed.

Records that carry nothing countable (empty, not OTLP protobuf, no spans) are counted by reason in
``llmpulse_kafka_records_rejected_total`` and their offsets committed; the source never stops on one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from llmpulse.errors import LLMPulseError
from llmpulse.processor.extension import KeyOwner
from llmpulse.processor.kafka import metric_names as N
from llmpulse.processor.metrics import names as M
from llmpulse.processor.pipeline.queue import ExportResult, Pipeline, QueueFull, ShuttingDown
from llmpulse.processor.pipeline.wire import count_spans, decode_request

logger = logging.getLogger(__name__)

__all__ = ["CommitFailed", "KafkaSource", "KafkaUnavailable", "build_kafka_source"]

TopicPartitionKey = tuple[str, int]
FeatureKey = tuple[str, str]
_Pending = tuple[int, "asyncio.Future[ExportResult] | None"]  # offset, future (None: nothing to count)


class KafkaUnavailable(LLMPulseError, RuntimeError):
    """The Kafka client is not installed or the brokers cannot be used; the message says what to do."""


class CommitFailed(LLMPulseError, RuntimeError):
    """Kafka refused or could not take an offset commit; the counts stay unshown until one succeeds."""


def _client() -> Any:
    try:
        import confluent_kafka
    except ImportError:
        raise KafkaUnavailable(
            "the Kafka source needs the confluent-kafka package: pip install 'llmpulse[kafka]'"
        ) from None
    return confluent_kafka


class _Instruments:
    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(name.removesuffix("_total"), doc, labels, registry=registry)

        self.records = counter(N.RECORDS_TOTAL, "Kafka records read and counted.", (N.OUTCOME,))
        self.rejected = counter(
            N.RECORDS_REJECTED_TOTAL, "Kafka records with nothing countable, by reason.", (N.REASON,)
        )
        self.commits = counter(N.COMMITS_TOTAL, "Kafka offset commits, by outcome.", (N.OUTCOME,))
        self.handed_over = counter(
            N.HANDED_OVER_TOTAL, "Records left uncounted when their partition moved to another replica.", ()
        )
        self.rebalances = counter(N.REBALANCES_TOTAL, "Partition assignment changes, by kind.", (N.KIND,))
        self.records.labels("counted")
        for reason in N.REJECT_REASONS:
            self.rejected.labels(reason)
        for outcome in (N.COMMIT_OK, N.COMMIT_FAILED):
            self.commits.labels(outcome)
        for kind in N.REBALANCE_KINDS:
            self.rebalances.labels(kind)


class _LagCollector(Collector):
    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            N.CONSUMER_LAG, "Records on the assigned partitions not yet counted.", labels=[N.TOPIC]
        )
        lag.add_metric([self._source.topic], float(self._source.lag()))
        assigned = GaugeMetricFamily(N.ASSIGNED_PARTITIONS, "Partitions this replica owns now.")
        assigned.add_metric([], float(len(self._source.assigned)))
        yield lag
        yield assigned


class KafkaSource:
    """One consumer-group member feeding ``pipeline``; :meth:`start`, :meth:`stop_reading`, :meth:`close`.

    Args:
        pipeline: where decoded requests go (the receivers' pipeline).
        brokers: bootstrap servers, ``host:port[,host:port...]``.
        topic: the topic of OTLP protobuf traces.
        group: the consumer group id the replicas share.
        session_timeout: seconds without a heartbeat before Kafka moves a member's partitions.
        max_inflight_spans: spans handed to the pipeline and not yet counted, at most (back-pressure).
        idle_commit_seconds: commit counted offsets anyway when nothing scraped for this long.
        consumer_config: extra librdkafka settings (security, ...), applied last.
        router: a :class:`~llmpulse.processor.kafka.router.FeatureRouter` that fills ``topic``
            (the owner topic) and starts and stops with this source; None: read the collector's topic.
        owners: the engines' :class:`~llmpulse.processor.extension.KeyOwner` hooks, when ``topic``
            is keyed by ``service\x00feature`` (the owner topic): each key's state is resumed from
            the store before its first record here is counted, and released when its partition
            is revoked (saved first) or lost (not saved: the next owner may hold it already).
        withhold_unshown: called when partitions are lost holding records counted after the
            last commit (this replica was a zombie: the next owner counts them again); the
            scrape endpoint then withholds every count its last scrape did not show
            (:mod:`llmpulse.processor.metrics.shown`). Returns the number of series concerned.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        brokers: str,
        topic: str,
        group: str,
        session_timeout: float = 10.0,
        max_batch: int = 500,
        max_inflight_spans: int = 8192,
        idle_commit_seconds: float = 60.0,
        consumer_config: dict[str, Any] | None = None,
        router: Any | None = None,
        owners: Sequence[KeyOwner] = (),
        withhold_unshown: Callable[[], int] | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kafka = _client()
        self.pipeline = pipeline
        self.brokers = brokers
        self.topic = topic
        self.group = group
        self.max_batch = max_batch
        self.max_inflight_spans = min(max_inflight_spans, max(1, pipeline.capacity // 2))
        self.idle_commit_seconds = idle_commit_seconds
        self._clock = clock
        self._config = {
            "bootstrap.servers": brokers,
            "group.id": group,
            "client.id": f"llmpulse-{socket.gethostname()}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": int(session_timeout * 1000),
            "heartbeat.interval.ms": max(100, int(session_timeout * 1000) // 5),
            "enable.partition.eof": False,
            "isolation.level": "read_committed",  # a router's aborted transactions stay unseen
            **(consumer_config or {}),
        }
        self.router = router
        self.owners = tuple(owners)
        self._withhold_unshown = withhold_unshown
        self._keys: dict[TopicPartitionKey, set[FeatureKey]] = {}  # resumed keys per owned partition
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=False)
        self._m = _Instruments(self.registry)
        self.registry.register(_LagCollector(self))
        self.assigned: set[TopicPartitionKey] = set()
        self._pending: dict[TopicPartitionKey, deque[_Pending]] = {}
        self._counted: dict[TopicPartitionKey, int] = {}  # next offset after the counted prefix
        self._committed: dict[TopicPartitionKey, int] = {}
        self._inflight_spans = 0
        self._last_commit = clock()
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._error: str | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the consumer, join the group, start reading on the running loop."""
        try:
            if self.router is not None:
                await asyncio.to_thread(self.router.start)
            for owner in self.owners:  # state loaded at start: the assignment says what is ours
                owner.release(None)
            self._consumer = self._kafka.Consumer(self._config, logger=logger)
            # librdkafka retries unreachable brokers forever in the background: ask once, so a
            # wrong address fails the start in one line instead of a silent replica.
            metadata = await asyncio.to_thread(self._consumer.list_topics, self.topic, 10.0)
            if not metadata.brokers:
                raise self._kafka.KafkaException(f"no broker answered at {self.brokers}")
            self._consumer.subscribe(
                [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
            )
        except (self._kafka.KafkaException, ValueError, TypeError) as exc:
            raise KafkaUnavailable(
                f"cannot use Kafka at {self.brokers} (topic {self.topic!r}, group {self.group!r}): {exc}"
            ) from None
        self._task = asyncio.get_running_loop().create_task(self._run(), name="llmpulse-kafka-source")
        logger.info(
            "event=kafka_source_started brokers=%s topic=%s group=%s", self.brokers, self.topic, self.group
        )

    async def stop_reading(self) -> None:
        """Stop taking records (before the pipeline drains); what was handed over is still counted."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        """Leave the group without committing: counts not scraped die with this process, and the
        partitions' next owner counts those records again from the last commit."""
        await self.stop_reading()
        if self.router is not None:
            await asyncio.to_thread(self.router.stop)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                consumer.close()
        logger.info("event=kafka_source_stopped committed=%s", self._committed_text())

    # --- reading --------------------------------------------------------------------------------

    async def _run(self) -> None:
        consumer = self._consumer
        while True:
            try:
                messages = consumer.consume(num_messages=self.max_batch, timeout=0)
            except self._kafka.KafkaException as exc:
                self._note_error(str(exc))
                messages = []
            if not messages:
                self._advance()
                if self._clock() - self._last_commit >= self.idle_commit_seconds:
                    with contextlib.suppress(CommitFailed):
                        self.commit_counted()
                await asyncio.sleep(0.02)
                continue
            if not await self._take_all(messages):
                return

    async def _take_all(self, messages: list[Any]) -> bool:
        """Hand one consumed batch to the pipeline, one request per partition; False once the
        pipeline refuses for good."""
        groups: dict[TopicPartitionKey, list[Any]] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                self._m.rejected.labels(N.REJECT_CONSUMER_ERROR).inc()
                self._note_error(str(error))
                continue
            groups.setdefault((message.topic(), message.partition()), []).append(message)
        for key, group in groups.items():
            if not await self._take(key, group):
                return False
        return True

    async def _take(self, key: TopicPartitionKey, messages: list[Any]) -> bool:
        """One partition's records as one request: their OTLP bytes concatenated are one valid
        ``ExportTraceServiceRequest`` (repeated fields append), so the worker's per-request cost
        is paid once per batch, not once per trace."""
        if key not in self.assigned:
            return True  # fetched before a revoke: the partition's new owner reads it
        if self.owners and not await self._resume(key, messages):
            return True
        last = messages[-1].offset()
        valid = [value for message in messages if self._valid(value := message.value())]
        request = self._join(valid)
        if request is None:
            self._mark(key, last, None)
            return True
        spans = count_spans(request)
        while self._inflight_spans and self._inflight_spans + spans > self.max_inflight_spans:
            await asyncio.sleep(0.005)
            self._advance()
            if key not in self.assigned:
                return True
        while True:
            try:
                future = self.pipeline.submit(request, spans, M.RECEIVER_KAFKA)
                break
            except QueueFull as exc:
                await asyncio.sleep(min(exc.retry_after, 0.1))
            except ShuttingDown:
                return False
            if key not in self.assigned:
                return True
        self._inflight_spans += spans
        future.add_done_callback(functools.partial(self._settle, spans))
        self._mark(key, last, future)
        return True

    async def _resume(self, key: TopicPartitionKey, messages: list[Any]) -> bool:
        """Resume the state of the batch's (service, feature) keys new to this replica; False
        when the partition was revoked meanwhile."""
        seen = self._keys.setdefault(key, set())
        new: set[FeatureKey] = set()
        for message in messages:
            raw = message.key()
            if raw and b"\x00" in raw:
                service, _, feature = raw.decode("utf-8", "replace").partition("\x00")
                if (service, feature) not in seen:
                    new.add((service, feature))
        if not new:
            return True
        for owner in self.owners:
            try:
                await owner.resume(new)
            except Exception:  # a store down for a moment: count anyway, from a fresh state
                logger.exception("event=kafka_resume_failed partition=%d keys=%d", key[1], len(new))
        if key not in self.assigned:
            return False
        seen |= new
        return True

    def _settle(self, spans: int, _future: asyncio.Future[ExportResult]) -> None:
        self._inflight_spans -= spans

    def _valid(self, value: bytes | None) -> bool:
        """Whether one record is an OTLP request with spans; counts the reason when not."""
        if not value:
            self._m.rejected.labels(N.REJECT_EMPTY).inc()
            return False
        try:
            request = decode_request(value)
        except Exception:  # DecodeError, or anything else protobuf raises on hostile bytes
            self._m.rejected.labels(N.REJECT_UNDECODABLE).inc()
            return False
        if not count_spans(request):
            self._m.rejected.labels(N.REJECT_NO_SPANS).inc()
            return False
        return True

    @staticmethod
    def _join(values: list[bytes]) -> Any | None:
        if not values:
            return None
        return decode_request(values[0] if len(values) == 1 else b"".join(values))

    def _mark(self, key: TopicPartitionKey, offset: int, future: asyncio.Future[ExportResult] | None) -> None:
        pending = self._pending.setdefault(key, deque())
        pending.append((offset, future))
        if len(pending) > 64:
            self._advance_one(key, pending)

    def _note_error(self, text: str) -> None:
        if text != self._error:
            logger.warning("event=kafka_consumer_error brokers=%s error=%s", self.brokers, text)
        self._error = text

    # --- offsets --------------------------------------------------------------------------------

    def _advance(self) -> None:
        for key, pending in self._pending.items():
            self._advance_one(key, pending)

    def _advance_one(self, key: TopicPartitionKey, pending: deque[_Pending]) -> None:
        counted = 0
        while pending:
            offset, future = pending[0]
            if future is not None:
                if not future.done() or future.cancelled() or future.exception() is not None:
                    break
                counted += 1
            pending.popleft()
            self._counted[key] = offset + 1
        if counted:
            self._m.records.labels("counted").inc(counted)

    def commit_counted(self) -> None:
        """Commit, per assigned partition, the offset after the last counted record.

        Called before every ``/metrics`` response (see the module docstring). Raises
        :class:`CommitFailed` when Kafka does not take the commit.
        """
        if self._consumer is None:
            return
        self._advance()
        self._commit({key: off for key, off in self._counted.items() if key in self.assigned})

    def _commit(self, offsets: dict[TopicPartitionKey, int]) -> None:
        changed = {key: off for key, off in offsets.items() if self._committed.get(key) != off}
        self._last_commit = self._clock()
        if not changed:
            return
        tps = [self._kafka.TopicPartition(t, p, off) for (t, p), off in changed.items()]
        try:
            self._consumer.commit(offsets=tps, asynchronous=False)
        except self._kafka.KafkaException as exc:
            self._m.commits.labels(N.COMMIT_FAILED).inc()
            self._note_error(str(exc))
            raise CommitFailed(f"Kafka did not take the offset commit: {exc}") from None
        self._m.commits.labels(N.COMMIT_OK).inc()
        self._committed.update(changed)

    def _committed_text(self) -> str:
        return ",".join(f"{t}/{p}:{off}" for (t, p), off in sorted(self._committed.items()))

    # --- rebalances (called inside consume(), on the loop's thread) ----------------------------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self.assigned.add(key)
            self._pending.pop(key, None)
            self._counted.pop(key, None)
            self._committed.pop(key, None)
            self._keys.pop(key, None)
        self._m.rebalances.labels("assigned").inc()
        logger.info("event=kafka_partitions_assigned partitions=%s", sorted(k[1] for k in self.assigned))

    def _release(self, partitions: list[Any], *, lost: bool) -> None:
        """Give ``partitions`` up: skip their uncounted records and release their keys. Revoked
        (a live hand-over): save the keys' changed state and commit the counted prefix, before
        Kafka gives them to the next owner. Lost (this replica's session expired): the group has
        moved on, the next owner may already have resumed and changed the keys' state and counted
        from the last commit, so neither is written from here."""
        keys = [(tp.topic, tp.partition) for tp in partitions]
        handed = 0
        for key in keys:
            self._advance_one(key, self._pending.get(key, deque()))
        unshown = [k[1] for k in keys if k in self._counted and self._counted[k] != self._committed.get(k)]
        if lost and unshown and self._withhold_unshown is not None:
            # counted here, never committed, and counted again by the next owner: a lost
            # assignment is the whole of it (the group fenced this member), so every count since
            # the last scrape is withheld from the scrapes to come
            series = self._withhold_unshown()
            logger.warning("event=kafka_unshown_counts_withheld partitions=%s series=%d", unshown, series)
        for key in keys:
            for _offset, future in self._pending.pop(key, deque()):
                if future is not None and not future.done():
                    future.cancel()  # the worker skips it; the new owner counts the record
                    handed += 1
        if handed:
            self._m.handed_over.inc(handed)
        released: set[FeatureKey] = set()
        for key in keys:
            released |= self._keys.pop(key, set())
        for owner in self.owners:
            try:
                owner.release(released, save=not lost)
            except Exception:
                logger.exception("event=kafka_release_failed keys=%d", len(released))
        if not lost:
            try:
                self._commit({key: self._counted[key] for key in keys if key in self._counted})
            except CommitFailed:
                logger.warning("event=kafka_revoke_commit_failed partitions=%s", [k[1] for k in keys])
        for key in keys:
            self.assigned.discard(key)
            self._counted.pop(key, None)
            self._committed.pop(key, None)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self._release(partitions, lost=False)
        self._m.rebalances.labels("revoked").inc()
        logger.info("event=kafka_partitions_revoked partitions=%s", sorted(tp.partition for tp in partitions))

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        self._release(partitions, lost=True)
        self._m.rebalances.labels("lost").inc()
        logger.warning("event=kafka_partitions_lost partitions=%s", sorted(tp.partition for tp in partitions))

    # --- observation ----------------------------------------------------------------------------

    def lag(self) -> int:
        """Records on the assigned partitions past the counted offset (from the client's cache)."""
        consumer, total = self._consumer, 0
        if consumer is None:
            return 0
        for key in list(self.assigned):
            with contextlib.suppress(Exception):
                _low, high = consumer.get_watermark_offsets(self._kafka.TopicPartition(*key), cached=True)
                counted = self._counted.get(key)
                if counted is None:
                    position = consumer.position([self._kafka.TopicPartition(*key)])[0].offset
                    counted = position if position >= 0 else high
                if high >= 0:
                    total += max(0, high - counted)
        return total

    def status(self) -> dict[str, Any]:
        """The ``/api/status`` section: brokers, topic, group, owned partitions, committed and
        counted offsets (counted and not committed: shown by no scrape yet)."""
        self._advance()
        return {
            "brokers": self.brokers,
            "topic": self.topic,
            "group": self.group,
            "partitions": sorted(p for _t, p in self.assigned),
            "committed": {str(p): off for (_t, p), off in sorted(self._committed.items())},
            "counted": {str(p): off for (_t, p), off in sorted(self._counted.items())},
            "lag": self.lag(),
            "last_error": self._error,
        }


def build_kafka_source(
    settings: Any,
    pipeline: Pipeline,
    owners: Sequence[KeyOwner] = (),
    withhold_unshown: Callable[[], int] | None = None,
) -> KafkaSource | None:
    """The service's entry point: a source when ``settings.kafka_brokers`` is set, else None.
    ``owners`` get their keys moved with the owner topic's partitions (ignored without one);
    ``withhold_unshown``: see :class:`KafkaSource`."""
    if not settings.kafka_brokers:
        return None
    _client()
    router, topic = None, settings.kafka_topic
    registry = CollectorRegistry(auto_describe=False)
    if settings.kafka_owner_topic:
        from llmpulse.processor.kafka.router import FeatureRouter

        topic = settings.kafka_owner_topic
        router = FeatureRouter(
            brokers=settings.kafka_brokers,
            topic=settings.kafka_topic,
            owner_topic=topic,
            group=f"{settings.kafka_group}-router",
            transactional_id=f"llmpulse-router-{socket.gethostname()}-{os.getpid()}",
            session_timeout=settings.kafka_session_timeout,
            registry=registry,
        )
    return KafkaSource(
        pipeline,
        brokers=settings.kafka_brokers,
        topic=topic,
        group=settings.kafka_group,
        session_timeout=settings.kafka_session_timeout,
        router=router,
        owners=owners if router is not None else (),
        withhold_unshown=withhold_unshown,
        registry=registry,
    )
