"""The Kafka source of ``llmpulse serve`` against a real broker: every record counted once, offsets
committed only when a scrape shows the counts, a replay after a stop counts only what was unshown,
bad records counted by reason, unreachable brokers refused in one line."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmpulse.processor.kafka import metric_names as N
from llmpulse.processor.metrics import names as M
from llmpulse.processor.service import ProcessorService
from llmpulse.processor.settings import Settings
from llmpulse.stack.components import free_port
from llmpulse.stack.kafka import KafkaBroker
from tests.kafka.helpers import committed, end_offsets, llm_request, produce, sample, scrape

_groups = itertools.count(1)


def _settings(broker: KafkaBroker, topic: str, group: str) -> Settings:
    return Settings(
        grpc_port=0,
        http_port=0,
        admin_port=0,
        kafka_brokers=broker.bootstrap_servers,
        kafka_topic=topic,
        kafka_group=group,
        kafka_session_timeout=6.0,
    )


async def _until(predicate, timeout: float = 30.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _llm(service: ProcessorService) -> int:
    return service.accounting.accepted[M.ACCEPTED_LLM]


async def _scrape(service: ProcessorService) -> tuple[int, str]:
    return await asyncio.to_thread(scrape, service.admin.port)


async def test_counts_once_commits_on_scrape_and_a_successor_counts_only_the_unshown(
    kafka_broker: KafkaBroker, new_topic
) -> None:  # type: ignore[no-untyped-def]
    topic, group, brokers = new_topic(4), f"g-source-{next(_groups)}", kafka_broker.bootstrap_servers
    first = [(str(i).encode(), llm_request(10)) for i in range(12)]
    bad = [(b"e", b""), (b"g", b"\xff\x00not protobuf\x12"), (b"n", llm_request(0))]
    produce(brokers, topic, first + bad)

    one = ProcessorService(_settings(kafka_broker, topic, group))
    await one.startup()
    try:
        await _until(lambda: _llm(one) == 120, what="120 LLM calls counted")
        await asyncio.sleep(0.3)
        # nothing is committed before a scrape has shown the counts
        assert committed(brokers, group, topic, 4) == {}
        status, body = await _scrape(one)
        assert status == 200
        assert sample(body, M.SPANS_ACCEPTED_TOTAL, kind="llm") == 120
        assert sample(body, M.SPANS_RECEIVED_TOTAL, receiver="kafka") == 120
        for reason in (N.REJECT_EMPTY, N.REJECT_UNDECODABLE, N.REJECT_NO_SPANS):
            assert sample(body, N.RECORDS_REJECTED_TOTAL, reason=reason) == 1, reason
        assert committed(brokers, group, topic, 4) == end_offsets(brokers, topic, 4)

        # counted but never scraped: these die with the replica and are replayed
        produce(brokers, topic, [(str(i).encode(), llm_request(5)) for i in range(8)])
        await _until(lambda: _llm(one) == 160, what="40 more calls counted")
    finally:
        await one.shutdown()

    two = ProcessorService(_settings(kafka_broker, topic, group))
    await two.startup()
    try:
        await _until(lambda: _llm(two) == 40, what="the successor counting the 40 unshown calls")
        await asyncio.sleep(1.0)
        assert _llm(two) == 40  # and not the 120 the first replica's last scrape showed
        status, body = await _scrape(two)
        assert status == 200 and sample(body, M.SPANS_ACCEPTED_TOTAL, kind="llm") == 40
        assert committed(brokers, group, topic, 4) == end_offsets(brokers, topic, 4)
        assert sorted(two.status()["kafka"]["partitions"]) == [0, 1, 2, 3]
    finally:
        await two.shutdown()


async def test_two_members_split_the_partitions_and_count_each_record_once(
    kafka_broker: KafkaBroker, new_topic
) -> None:  # type: ignore[no-untyped-def]
    topic, group, brokers = new_topic(6), f"g-split-{next(_groups)}", kafka_broker.bootstrap_servers
    a = ProcessorService(_settings(kafka_broker, topic, group))
    b = ProcessorService(_settings(kafka_broker, topic, group))
    await a.startup()
    await b.startup()
    try:
        await _until(
            lambda: (
                len(a.kafka.assigned) + len(b.kafka.assigned) == 6 and a.kafka.assigned and b.kafka.assigned
            ),
            what="both members owning partitions",
        )
        produce(brokers, topic, [(f"trace-{i}".encode(), llm_request(4)) for i in range(60)])
        await _until(lambda: _llm(a) + _llm(b) == 240, what="240 calls counted across both")
        assert _llm(a) > 0 and _llm(b) > 0
        assert not set(a.kafka.assigned) & set(b.kafka.assigned)
        for service in (a, b):
            assert (await _scrape(service))[0] == 200
        assert committed(brokers, group, topic, 6) == end_offsets(brokers, topic, 6)
    finally:
        await a.shutdown()
        await b.shutdown()


def test_serve_with_unreachable_brokers_fails_in_one_line() -> None:
    closed = free_port()
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "llmpulse"),
            *("serve", "--kafka-brokers", f"127.0.0.1:{closed}"),
            *("--grpc-port", "0", "--http-port", "0", "--admin-port", "0"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.startswith("llmpulse serve:")]
    assert len(lines) == 1, done.stderr
    assert f"127.0.0.1:{closed}" in lines[0] and "Traceback" not in done.stderr


@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_bad_session_timeout_is_a_config_error(value: str) -> None:
    from llmpulse.processor.settings import ConfigError, resolve

    with pytest.raises(ConfigError, match="kafka_session_timeout"):
        resolve({"kafka_session_timeout": value}, environ={})


class _Owners:
    """A KeyOwner that records what it is told."""

    def __init__(self) -> None:
        self.resumed: list[set[tuple[str, str]]] = []
        self.released: list[tuple[set[tuple[str, str]] | None, bool]] = []

    async def resume(self, keys) -> None:  # type: ignore[no-untyped-def]
        self.resumed.append(set(keys))

    def release(self, keys, *, save: bool = True) -> None:  # type: ignore[no-untyped-def]
        self.released.append((None if keys is None else set(keys), save))


async def test_a_revoked_partition_saves_its_keys_and_a_lost_one_does_not(
    kafka_broker: KafkaBroker, new_topic
) -> None:  # type: ignore[no-untyped-def]
    from confluent_kafka import TopicPartition

    from llmpulse.processor.kafka.source import KafkaSource

    brokers, key = kafka_broker.bootstrap_servers, ("app", "support")
    outcomes = {}
    for ending in ("revoked", "lost"):
        topic, group = new_topic(1), f"g-owner-{next(_groups)}"
        produce(brokers, topic, [(b"app\x00support", llm_request(3)) for _ in range(4)])
        service = ProcessorService(Settings(grpc_port=0, http_port=0, admin_port=0))
        owners = _Owners()
        source = KafkaSource(
            service.pipeline, brokers=brokers, topic=topic, group=group, session_timeout=6.0, owners=[owners]
        )
        await service.startup()
        await source.start()
        try:
            await _until(lambda: _llm(service) == 12, what="12 spans counted")  # noqa: B023
            assert owners.resumed == [{key}]
            source.commit_counted()  # what a scrape does: the counts are shown, the offset committed
            produce(brokers, topic, [(b"app\x00support", llm_request(3))])
            await _until(lambda: _llm(service) == 15, what="3 more spans counted")  # noqa: B023
            # librdkafka's callbacks: a live hand-over, or this member's session expired
            callback = source._on_lost if ending == "lost" else source._on_revoke
            callback(source._consumer, [TopicPartition(topic, 0)])
        finally:
            await source.close()  # leaves the group without committing; nothing left to release
            await service.shutdown()
        outcomes[ending] = (owners.released, committed(brokers, group, topic, 1))
    # start: give up what was loaded; revoked: save, and commit the counted prefix (all 5
    # records); lost: forget without saving and commit nothing (the new owner may be past both)
    for ending, (save, offset) in {"revoked": (True, 5), "lost": (False, 4)}.items():
        released, offsets = outcomes[ending]
        assert released[:2] == [(None, True), ({key}, save)] and offsets == {0: offset}, ending
        assert all(keys == set() for keys, _save in released[2:]), released
