"""Producing OTLP records to Kafka and reading a group's committed offsets, for the Kafka tests."""

from __future__ import annotations

import itertools
import json
import re
import urllib.parse
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmpulse.contract import attributes as A
from llmpulse.testing.otlp import llm_attributes, make_request, make_span

_ids = itertools.count(1)


def llm_request(spans: int, *, service: str = "app", features: tuple[str, ...] = ("support",)) -> bytes:
    """One serialized request of ``spans`` distinct LLM spans in one trace."""
    trace = next(_ids).to_bytes(16, "big")
    out = []
    for i in range(spans):
        n = next(_ids)
        attrs = llm_attributes(**{A.FEATURE: features[i % len(features)], A.GEN_AI_RESPONSE_ID: f"resp-{n}"})
        out.append(
            make_span(
                attrs,
                trace_id=trace,
                span_id=n.to_bytes(8, "big"),
                name="chat gpt-4o",
                kind=Span.SPAN_KIND_CLIENT,
            )
        )
    return make_request(out, resource={"service.name": service}).SerializeToString()


def produce(brokers: str, topic: str, values: list[tuple[bytes, bytes]]) -> None:
    """Write (key, value) records and wait until the broker has them all."""
    producer = Producer({"bootstrap.servers": brokers, "acks": "all", "linger.ms": 5})
    for key, value in values:
        producer.produce(topic, value=value, key=key)
    left = producer.flush(30)
    assert left == 0, f"{left} records not delivered"


def committed(brokers: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """partition -> committed offset of ``group`` (missing: nothing committed)."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in tps if tp.offset >= 0}


def end_offsets(brokers: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "llmpulse-test-watermarks"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


def scrape(admin_port: int) -> tuple[int, str]:
    """GET /metrics on a processor's admin port: (status, body)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def sample(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``, in exposition text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        found = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not found or found.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', found.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(found.group(3))
    return total


def promql(base_url: str, expr: str) -> list[dict]:  # type: ignore[type-arg]
    """An instant query on a Prometheus HTTP API (Prometheus' own or VictoriaMetrics'):
    the result vector, each ``{"metric": {...}, "value": [t, "v"]}``."""
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]  # type: ignore[no-any-return]


def by_labels(result: list[dict], *labels: str) -> dict[tuple[str, ...], float]:  # type: ignore[type-arg]
    """An instant vector as {label values: sum of the values of the series with those values}."""
    out: dict[tuple[str, ...], float] = {}
    for r in result:
        key = tuple(r["metric"].get(k, "") for k in labels)
        out[key] = out.get(key, 0.0) + float(r["value"][1])
    return out
