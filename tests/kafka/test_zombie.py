"""A zombie replica, end to end: the built collector, a real Kafka broker, a real PostgreSQL,
three ``llmpulse serve`` replicas routing by feature and a real Prometheus, their only scraper.

The owner of some (service, feature) keys is paused with SIGSTOP right after it counted records
whose offsets no scrape has committed, with SPC charts changed since their last save, and stays
paused past its Kafka session timeout: its partitions move to the other two, which count those
records again from the last commit, take the keys' charts over from the store (claiming them:
a newer owner epoch) and save them. Then it is resumed (SIGCONT) with its quality tick due at
once. Checked, as docs/kafka.md promises: the Prometheus sums equal what was sent (nothing lost,
and the zombie's uncommitted counts not shown twice); its late chart saves never land (refused by
the owner epochs, or dropped when Kafka tells it the partitions are lost, whichever comes first)
and the new owners' stored charts stand; its next scrape exports none of the keys it lost; once
the group settles each key is charted by one replica, the one Kafka gives its partition to."""

from __future__ import annotations

import functools
import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition

from llmpulse.processor.metrics.names import SAVE_REFUSED_STALE_OWNER as STALE_OWNER
from llmpulse.processor.quality import metric_names as Q
from llmpulse.processor.quality.chart_store import CHARTS_STATE
from llmpulse.stack import components
from llmpulse.stack.kafka import KafkaBroker
from llmpulse.testing.polling import wait_until
from tests.kafka.helpers import by_labels, committed, end_offsets, llm_request, promql
from tests.kafka.test_replicas import BY_FEATURE, EXPORT, SPANS, Replica, prometheus_config, targets
from tests.kafka.test_takeover import CONFIG as TAKEOVER_CONFIG
from tests.kafka.test_takeover import LATENCY, WARMUP, WINDOW

PARTITIONS = 6
SESSION_TIMEOUT = 6  # seconds: the broker's group.min.session.timeout.ms (6 s by default)
KEYS = tuple((service, f"feature-{i}") for service in ("app", "billing") for i in range(3))
# a tick every second: the zombie's first tick after SIGCONT is due before Kafka tells it the
# partitions are lost, as a 15 s tick is for a replica paused 15 s or more
CONFIG = "[quality]\ntick_s = 1.0\n" + TAKEOVER_CONFIG
CHARTED = f'{Q.SPC_CENTRE}{{statistic="{LATENCY}"}}'


class Sender:
    """Sends single-key traces through the collector and remembers how many calls per key."""

    def __init__(self, endpoint: str) -> None:
        self._channel = grpc.insecure_channel(endpoint)
        self._export = self._channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        self.sent: dict[tuple[str, str], int] = dict.fromkeys(KEYS, 0)

    def send(self, calls_per_key: int, *, keys: tuple[tuple[str, str], ...] = KEYS) -> None:
        """``calls_per_key`` calls of each key, a trace of 2 calls per record, 20 traces a request."""
        traces = [
            llm_request(2, service=s, features=(f,)) for s, f in keys for _ in range(calls_per_key // 2)
        ]
        for start in range(0, len(traces), 20):
            self._export(b"".join(traces[start : start + 20]), timeout=30)
        for key in keys:
            self.sent[key] += 2 * (calls_per_key // 2)

    def close(self) -> None:
        self._channel.close()


@pytest.fixture
def sender(kafka_broker: KafkaBroker, start_collector) -> Iterator[Callable[[str], Sender]]:  # type: ignore[no-untyped-def]
    made: list[Sender] = []

    def make(topic: str) -> Sender:
        collector = start_collector(
            "127.0.0.1:1",  # unused: this config exports to Kafka
            config=components.REPO_ROOT / "otel-collector-kafka.yaml",
            env={"LLMPULSE_KAFKA_BROKERS": kafka_broker.bootstrap_servers, "LLMPULSE_KAFKA_TOPIC": topic},
        )
        made.append(Sender(collector.grpc_endpoint))
        return made[-1]

    yield make
    for s in made:
        s.close()


def key_partitions(brokers: str, owner_topic: str) -> dict[tuple[str, str], int]:
    """(service, feature) -> its owner-topic partition, read from the records the routers wrote."""
    ends = end_offsets(brokers, owner_topic, PARTITIONS)
    consumer = Consumer(
        {"bootstrap.servers": brokers, "group.id": "llmpulse-test-keys", "isolation.level": "read_committed"}
    )
    found: dict[tuple[str, str], int] = {}
    try:
        consumer.assign([TopicPartition(owner_topic, p, 0) for p in range(PARTITIONS) if ends[p]])
        read = dict.fromkeys(range(PARTITIONS), 0)
        deadline = time.monotonic() + 30
        while any(read[p] < ends[p] for p in range(PARTITIONS)) and len(found) < len(KEYS):
            assert time.monotonic() < deadline, (read, ends)
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            read[message.partition()] = message.offset() + 1
            service, _, feature = (message.key() or b"").decode().partition("\x00")
            found[(service, feature)] = message.partition()
    finally:
        consumer.close()
    assert set(found) == set(KEYS), found
    return found


def chart_owners(prometheus: str) -> dict[tuple[str, str], list[str]]:
    """(service, feature) -> the instances Prometheus has its latency chart from now."""
    out: dict[tuple[str, str], list[str]] = {key: [] for key in KEYS}
    for series in promql(prometheus, CHARTED):
        labels = series["metric"]
        out.setdefault((labels["service"], labels["feature"]), []).append(labels["instance"])
    return out


def shown(prometheus: str, metric: str, instance: str, **labels: str) -> float:
    """The sum of ``metric``'s series of ``instance`` with ``labels``, as Prometheus has them now."""
    matchers = ",".join(f'{k}="{v}"' for k, v in {**labels, "instance": instance}.items())
    return sum(by_labels(promql(prometheus, f"sum({metric}{{{matchers}}})")).values())


def spread(assignment: list[list[int]]) -> bool:
    """Every partition owned by one replica, every replica owning some."""
    return sorted(p for parts in assignment for p in parts) == list(range(PARTITIONS)) and all(assignment)


def settled(group: Group, seen: list[tuple[float, list[list[int]]]]) -> bool:
    """The assignment is spread and the same as a second ago (``seen``: the earlier polls)."""
    now, assignment = time.monotonic(), group.assignment()
    if not spread(assignment) or (seen and seen[0][1] != assignment):
        seen.clear()
    seen.append((now, assignment))
    return spread(assignment) and seen[0][0] <= now - 1.0


def scraped_twice_since(prometheus: str, since: float, replicas: list[Replica]) -> bool:
    """Prometheus scraped every replica successfully at least twice after ``since`` (unix s)."""
    for r in replicas:
        (last,) = promql(prometheus, f'timestamp(up{{instance="{r.instance}"}} == 1)') or [None]
        if last is None or float(last["value"][1]) < since + 2:
            return False
    return True


@dataclass
class Group:
    """Three replicas routing by feature with a shared PostgreSQL store, and their topics."""

    brokers: str
    topic: str
    owner_topic: str
    group_id: str
    store_url: str
    replicas: list[Replica]

    def assignment(self) -> list[list[int]]:
        """Each replica's owner-topic partitions (``/api/status`` commits nothing)."""
        return [r.status()["kafka"]["partitions"] for r in self.replicas]


@pytest.fixture
def group(kafka_broker: KafkaBroker, new_topic, new_pg_database, tmp_path: Path) -> Iterator[Group]:  # type: ignore[no-untyped-def]
    topic, owner_topic = new_topic(PARTITIONS), new_topic(PARTITIONS)
    url = new_pg_database()
    config = tmp_path / "llmpulse.toml"
    config.write_text(CONFIG)
    brokers, group_id = kafka_broker.bootstrap_servers, f"zombie-{topic}"
    replicas = [
        Replica(
            brokers,
            topic,
            group_id,
            tmp_path / f"replica-{i}.log",
            owner_topic,
            args=("--config", str(config), "--kafka-session-timeout", str(SESSION_TIMEOUT)),
            env={"LLMPULSE_STORE_URL": url},
        )
        for i in range(3)
    ]
    try:
        wait_until(lambda: all(r.ready() for r in replicas), timeout=60, message="replicas not ready")
        yield Group(brokers, topic, owner_topic, group_id, url, replicas)
    finally:
        for r in replicas:
            if r.process.poll() is None:
                r.process.send_signal(signal.SIGCONT)  # a stopped process cannot take SIGTERM
            r.stop()


def pause_holding_unshown_counts(
    group: Group, zombie: Replica, send: Sender, keys: list[tuple[str, str]]
) -> None:
    """SIGSTOP ``zombie`` right after it counted calls of ``keys`` that no scrape has committed
    (checked on the broker once it is stopped; a scrape that came between: resume, again)."""
    for _attempt in range(10):
        before = zombie.status()["kafka"]["counted"]
        send.send(2 * WINDOW, keys=tuple(keys))  # new SPC points: charts changed since their save
        ahead = wait_until(
            functools.partial(_counted_unshown, zombie, before, WINDOW * len(keys)),
            timeout=30,
            interval=0.01,
            message="the zombie did not count the calls",
        )
        zombie.process.send_signal(signal.SIGSTOP)
        on_broker = committed(group.brokers, group.group_id, group.owner_topic, PARTITIONS)
        if any(on_broker.get(int(p), -1) < off for p, off in ahead.items()):
            return
        zombie.process.send_signal(signal.SIGCONT)
    raise AssertionError("never paused the zombie holding counted records not committed")


def _counted_unshown(replica: Replica, before: dict[str, int], records: int) -> dict[str, int]:
    """partition -> counted offset, where it is past the committed one, once ``records`` more
    records were counted since ``before``; {} until then."""
    kafka = replica.status()["kafka"]
    counted, done = kafka["counted"], kafka["committed"]
    if sum(off - before.get(p, 0) for p, off in counted.items()) < records:
        return {}
    return {p: off for p, off in counted.items() if off > done.get(p, -1)}


def test_a_zombie_replica_counts_nothing_twice_and_its_late_saves_never_land(
    group: Group, sender, start_prometheus
) -> None:  # type: ignore[no-untyped-def]
    _process, port = start_prometheus(prometheus_config(group.replicas))
    prometheus = f"http://127.0.0.1:{port}"
    send = sender(group.topic)
    url = group.store_url
    replicas = group.replicas
    wait_until(
        lambda: spread(group.assignment()), timeout=60, message="partitions not spread over the replicas"
    )

    # before: every key gets a baseline on its one owner
    send.send(WINDOW * (WARMUP + 2))

    def baselines() -> bool:
        owners = chart_owners(prometheus)
        warm = by_labels(promql(prometheus, f'{Q.SPC_WARMUP}{{statistic="{LATENCY}"}}'), "service", "feature")
        return all(len(owners[k]) == 1 and warm.get(k) == 0 for k in KEYS)

    wait_until(baselines, timeout=90, message=lambda: f"no baseline per key: {chart_owners(prometheus)}")
    owners = chart_owners(prometheus)
    zombie = next(r for r in replicas if r.instance == owners[KEYS[0]][0])
    survivors = [r for r in replicas if r is not zombie]
    moved = sorted(k for k in KEYS if owners[k] == [zombie.instance])

    # pause the zombie right after it counted records no scrape has committed yet
    pause_holding_unshown_counts(group, zombie, send, moved)
    paused = time.time()
    epochs_at_pause = claimed_epochs(url)

    # during: the survivors take the zombie's partitions and keys over
    send.send(WINDOW)
    wait_until(
        lambda: (
            sorted(p for r in survivors for p in r.status()["kafka"]["partitions"]) == list(range(PARTITIONS))
        ),
        timeout=60,
        message=lambda: f"partitions not moved: {[r.status()['kafka'] for r in survivors]}",
    )
    wait_until(
        lambda: all(len(o) == 1 and o[0] != zombie.instance for o in chart_owners(prometheus).values()),
        timeout=60,
        message=lambda: f"the survivors do not chart every key: {chart_owners(prometheus)}",
    )
    send.send(WINDOW)
    stored = saved_by_new_owners(url, moved, epochs_at_pause)
    assert time.time() - paused > SESSION_TIMEOUT

    # after: the zombie wakes up, runs its tick, learns it lost its partitions, rejoins
    zombie.process.send_signal(signal.SIGCONT)
    wait_until(
        lambda: "event=kafka_partitions_lost" in zombie.log.read_text(),
        timeout=60,
        message=lambda: f"the zombie never learnt it lost its partitions:\n{zombie.log.read_text()[-3000:]}",
    )
    learnt = time.time()
    # (c) the new owners' charts stand: the zombie's late saves were refused, or dropped
    zombie_log = zombie.log.read_text()
    assert_still_stored(url, stored)
    # (d) its next scrape shows none of the keys it lost (no record came for them since)
    wait_until(
        lambda: scraped_twice_since(prometheus, learnt, [zombie]),
        timeout=30,
        message=lambda: f"the zombie is not scraped again: {targets(prometheus)}",
    )
    charted = chart_owners(prometheus)
    assert not [k for k in KEYS if zombie.instance in charted[k]], (charted, zombie.instance)

    wait_until(
        functools.partial(settled, group, []),
        timeout=60,
        message=lambda: f"no stable assignment: {group.assignment()}",
    )
    send.send(WINDOW)
    sent = sum(send.sent.values())

    def total() -> float:
        return sum(by_labels(promql(prometheus, SPANS)).values())

    wait_until(lambda: total() >= sent, timeout=90, message=lambda: f"sent {sent}, shown {total()}")
    done = time.time()
    wait_until(
        lambda: scraped_twice_since(prometheus, done, replicas),
        timeout=60,
        message=lambda: f"replicas not scraped after the last spans: {targets(prometheus)}",
    )

    # (a) the sums as the rules and dashboards take them: nothing lost, nothing counted twice
    per_key = by_labels(promql(prometheus, BY_FEATURE), "service", "feature")
    by_instance = by_labels(promql(prometheus, SPANS.replace("sum(", "sum by (instance) (")), "instance")
    assert total() == sent, f"sent {sent}, Prometheus shows {total()} (by replica {by_instance})"
    assert per_key == {k: float(n) for k, n in send.sent.items()}, (per_key, send.sent)
    withheld = "event=kafka_unshown_counts_withheld" in zombie.log.read_text()
    assert withheld, zombie.log.read_text()[-3000:]

    # (b) one owner per key, the replica Kafka gives the key's partition to
    where = key_partitions(group.brokers, group.owner_topic)
    assigned = {r.instance: set(r.status()["kafka"]["partitions"]) for r in replicas}
    charted = chart_owners(prometheus)
    for key in KEYS:
        assert charted[key] == [i for i, parts in assigned.items() if where[key] in parts], (
            key,
            charted,
            assigned,
            where,
        )

    # (c) the zombie had changed charts when it was paused: each was refused by the store
    # or dropped without a save when Kafka told it the partitions were lost
    refused = shown(prometheus, Q.SPC_SAVES_REFUSED_TOTAL, zombie.instance, reason=STALE_OWNER)
    dropped = [
        int(n) for n in re.findall(r"event=spc_charts_dropped keys=\d+ charts_not_saved=(\d+)", zombie_log)
    ]
    assert refused > 0 or sum(dropped) > 0, zombie_log[-3000:]
    for r in survivors:
        assert shown(prometheus, Q.SPC_SAVES_REFUSED_TOTAL, r.instance, reason=STALE_OWNER) == 0


def claimed_epochs(url: str) -> dict[tuple[str, str], int]:
    """(service, feature) -> its SPC charts' owner epoch in ``key_owners``."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT service, feature, epoch FROM key_owners WHERE state = %s", (CHARTS_STATE,)
        ).fetchall()
    return {(s, f): e for s, f, e in rows}


def chart_rows(url: str) -> dict[tuple[str, str], tuple[int, str]]:
    """(service, feature) -> (owner epoch, state) of its saved latency chart."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT service, feature, epoch, state FROM spc_charts WHERE statistic = %s", (LATENCY,)
        ).fetchall()
    return {(s, f): (e, state) for s, f, e, state in rows}


def chart_epochs(url: str) -> dict[tuple[str, str], int]:
    """(service, feature) -> the owner epoch its latency chart was last saved under."""
    return {key: epoch for key, (epoch, _state) in chart_rows(url).items()}


def test_a_zombie_paused_inside_a_chart_save_does_not_hold_up_the_take_over(
    group: Group, sender, start_prometheus
) -> None:  # type: ignore[no-untyped-def]
    """Paused (or cut off) between a save's statements and its COMMIT, a zombie's transaction
    holds a shared lock on its keys' owner epochs: the new owner's claim would wait for it, and
    with it that replica's whole Kafka source, for as long as the zombie is paused."""
    _process, port = start_prometheus(prometheus_config(group.replicas))
    prometheus = f"http://127.0.0.1:{port}"
    send = sender(group.topic)
    wait_until(
        lambda: spread(group.assignment()), timeout=60, message="partitions not spread over the replicas"
    )
    send.send(WINDOW * (WARMUP + 2))
    wait_until(
        lambda: all(len(o) == 1 for o in chart_owners(prometheus).values()),
        timeout=90,
        message=lambda: f"no chart per key: {chart_owners(prometheus)}",
    )
    owners = chart_owners(prometheus)
    zombie = next(r for r in group.replicas if r.instance == owners[KEYS[0]][0])
    moved = sorted(k for k in KEYS if owners[k] == [zombie.instance])
    wait_until(
        lambda: set(moved) <= set(chart_epochs(group.store_url)), timeout=30, message="charts not saved"
    )

    with psycopg.connect(group.store_url) as blocker:
        # every chart upsert waits behind this lock; only the zombie has charts to save
        blocker.execute("LOCK TABLE spc_charts IN EXCLUSIVE MODE")
        send.send(2 * WINDOW, keys=tuple(moved))
        wait_until(
            lambda: waiting_on_charts(group.store_url),
            timeout=30,
            message="the zombie's tick never tried to save its charts",
        )
        zombie.process.send_signal(signal.SIGSTOP)
    # the lock is gone: the zombie's upsert ran, its COMMIT never comes while it is stopped
    wait_until(
        lambda: idle_in_transaction(group.store_url),
        timeout=30,
        message="the zombie's save is not left open",
    )
    epochs = claimed_epochs(group.store_url)
    try:
        survivors = [r for r in group.replicas if r is not zombie]
        wait_until(
            lambda: (
                sorted(p for r in survivors for p in r.status()["kafka"]["partitions"])
                == list(range(PARTITIONS))
            ),
            timeout=60,
            message=lambda: f"partitions not moved: {[r.status()['kafka'] for r in survivors]}",
        )
        send.send(WINDOW)
        wait_until(
            lambda: all(len(o) == 1 and o[0] != zombie.instance for o in chart_owners(prometheus).values()),
            timeout=45,
            message=lambda: (
                f"the survivors did not take every key over: {chart_owners(prometheus)}; "
                f"store sessions {sessions(group.store_url)}"
            ),
        )
        stored = saved_by_new_owners(group.store_url, moved, epochs)
    finally:
        zombie.process.send_signal(signal.SIGCONT)
    wait_until(
        lambda: "event=kafka_partitions_lost" in zombie.log.read_text(),
        timeout=60,
        message=lambda: zombie.log.read_text()[-3000:],
    )
    assert_still_stored(group.store_url, stored)  # the zombie's save never landed


def saved_by_new_owners(
    url: str, keys: list[tuple[str, str]], epochs: dict[tuple[str, str], int]
) -> dict[tuple[str, str], tuple[int, str]]:
    """Wait until the latency charts of ``keys`` are saved under epochs newer than ``epochs``
    (their new owners'); returns the saved rows of ``keys``."""
    wait_until(
        lambda: all(chart_epochs(url)[k] > epochs[k] for k in keys),
        timeout=60,
        message=lambda: f"the new owners never saved: {chart_epochs(url)}, claimed before {epochs}",
    )
    rows = chart_rows(url)
    return {k: rows[k] for k in keys}


def assert_still_stored(url: str, stored: dict[tuple[str, str], tuple[int, str]]) -> None:
    """Each chart in ``stored`` is as it was, or saved again under a newer epoch (never an older)."""
    rows = chart_rows(url)
    for key, (epoch, state) in stored.items():
        assert rows[key] == (epoch, state) or rows[key][0] > epoch, (key, (epoch, state), rows[key])


def sessions(url: str) -> list[tuple[str, str, str]]:
    """(state, wait event type, query) of the store's other sessions, for failure messages."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT state, coalesce(wait_event_type, ''), left(query, 60) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def waiting_on_charts(url: str) -> bool:
    """A session waits for a lock to write ``spc_charts``."""
    return any(w == "Lock" and "spc_charts" in q for _s, w, q in sessions(url))


def idle_in_transaction(url: str) -> bool:
    """A session has written ``spc_charts`` and waits for its client to commit."""
    return any(s == "idle in transaction" and "spc_charts" in q for s, _w, q in sessions(url))
