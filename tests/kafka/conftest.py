"""A real single-node Kafka broker (KRaft, loopback) for the whole session, and topic helpers."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from llmpulse.stack import components
from llmpulse.stack.kafka import KafkaBroker

_topics = itertools.count(1)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """One throwaway broker per session (tests make their own topics and groups)."""
    try:
        broker = KafkaBroker()
    except components.ComponentMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def new_topic(kafka_broker: KafkaBroker) -> Callable[[int], str]:
    """Create a fresh topic with the given number of partitions; returns its name."""

    def make(partitions: int = 6) -> str:
        name = f"traces-{next(_topics)}"
        kafka_broker.create_topic(name, partitions)
        return name

    return make
