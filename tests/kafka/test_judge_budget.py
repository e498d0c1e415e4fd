"""Three replicas routing by feature, the judge on against the fake provider and one PostgreSQL
store: together they spend at most the one daily judge budget (each alone would spend all of it)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmpulse.contract import attributes as A
from llmpulse.processor.quality import metric_names as Q
from llmpulse.stack.kafka import KafkaBroker
from llmpulse.testing.otlp import llm_attributes, make_request, make_span
from tests.kafka.helpers import produce, sample, scrape
from tests.kafka.test_replicas import Replica
from tests.kafka.test_takeover import LLMPULSE, wait_for

PARTITIONS = 6
FEATURES = tuple(f"judged-{i}" for i in range(6))
CALLS_PER_FEATURE = 25
BUDGET = 6000  # judge tokens a day, for all replicas
WORKERS = 2
INPUT = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "How do I get a refund?"}]}])
OUTPUT = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "Open Orders, pick it."}]}])


def _records() -> list[tuple[bytes, bytes]]:
    out = []
    for f, feature in enumerate(FEATURES):
        for i in range(CALLS_PER_FEATURE):
            n = 10_000 * (f + 1) + i
            attributes = {
                A.FEATURE: feature,
                A.GEN_AI_RESPONSE_ID: f"resp-{n}",
                A.GEN_AI_INPUT_MESSAGES: INPUT,
                A.GEN_AI_OUTPUT_MESSAGES: OUTPUT,
            }
            span = make_span(
                llm_attributes(**attributes),
                trace_id=n.to_bytes(16, "big"),
                span_id=n.to_bytes(8, "big"),
                name="chat gpt-4o",
                kind=Span.SPAN_KIND_CLIENT,
                start_ns=time.time_ns(),
            )
            out.append(
                (feature.encode(), make_request([span], resource={"service.name": "app"}).SerializeToString())
            )
    return out


def _config(base_url: str) -> str:
    return f"""
[quality]
judge_rate = 1.0

[quality.judge]
base_url = "{base_url}/v1"
model = "gpt-4o-mini"
api_key = "fake"
daily_token_budget = {BUDGET}
requests_per_second = 100.0
burst = 100
workers = {WORKERS}

[drift]
enabled = false
"""


def test_three_replicas_spend_one_judge_budget(
    kafka_broker: KafkaBroker, new_topic, new_pg_database, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    provider = subprocess.Popen(
        [LLMPULSE, "fake-provider", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    group: list[Replica] = []
    try:
        assert provider.stdout is not None
        base_url = provider.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:"), base_url
        topic, owner_topic = new_topic(PARTITIONS), new_topic(PARTITIONS)
        url = new_pg_database()
        config = tmp_path / "llmpulse.toml"
        config.write_text(_config(base_url))
        brokers = kafka_broker.bootstrap_servers
        group = [
            Replica(
                brokers,
                topic,
                f"judge-{topic}",
                tmp_path / f"replica-{i}.log",
                owner_topic,
                args=("--config", str(config)),
                env={"LLMPULSE_STORE_URL": url},
            )
            for i in range(3)
        ]
        wait_for(lambda: all(r.ready() for r in group), "replicas not ready")
        wait_for(
            lambda: all(r.status()["kafka"]["partitions"] for r in group),
            "partitions not spread over the replicas",
        )
        produce(brokers, topic, _records())

        def totals() -> dict[str, float]:
            out = {"tokens": 0.0, "verdicts": 0.0, "sampled": 0.0, "dropped": 0.0}
            for r in group:
                status, body = scrape(r.admin_port)
                assert status in (200, 503), body[-300:]
                if status != 200:
                    return {}
                out["tokens"] += sample(body, Q.JUDGE_TOKENS_TOTAL)
                out["verdicts"] += sample(body, Q.JUDGE_VERDICTS_TOTAL)
                out["sampled"] += sample(body, Q.JUDGE_SAMPLED_TOTAL)
                out["dropped"] += sample(body, Q.JUDGE_DROPPED_TOTAL)
            return out

        offered = len(FEATURES) * CALLS_PER_FEATURE
        wait_for(
            lambda: (t := totals()) and t["sampled"] == offered and t["verdicts"] + t["dropped"] == offered,
            f"every call judged or dropped: {totals()}",
            timeout=90,
        )
        final = totals()
        # replicas that sampled calls for the judge, so competed for the one budget (which of them
        # won verdicts is a race: a replica that started judging first may spend it all)
        owners = [
            i for i, r in enumerate(group) if sample(scrape(r.admin_port)[1], Q.JUDGE_SAMPLED_TOTAL) > 0
        ]
    finally:
        for r in group:
            r.stop()
        provider.terminate()
        provider.wait(10)
        if provider.stdout is not None:
            provider.stdout.close()
    per_call = final["tokens"] / final["verdicts"]
    # more than one replica asked the judge (features hash onto partitions: one may own none)
    assert len(owners) >= 2, owners
    # worst overshoot (docs/store.md): one call per worker per replica before the day's mean
    # exists, plus the last admitted calls' cost above the mean (equal calls here: none)
    bound = BUDGET + 3 * WORKERS * per_call
    assert final["tokens"] <= bound, (final, per_call)
    # and the test can fail: three budgets would have bought more than the bound
    assert offered * per_call > 3 * BUDGET > bound, (per_call, final)
    assert final["dropped"] > 0, final
    print(
        f"judge: per call {per_call:.0f} tokens, spent {final['tokens']:.0f} of {BUDGET}"
        f" (bound {bound:.0f}), verdicts {final['verdicts']:.0f} of {offered}"
    )
