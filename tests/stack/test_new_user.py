"""Tried as a new user would: two apps of one's own and a replay of the peers' spans, against the
stack `llmpulse up` (`make up`) starts, and every figure exact per service.

* ``shop`` and ``blog`` are two real Python apps instrumented by the environment variable alone
  (``LLMPULSE_ENABLED=1``, ``OTEL_SERVICE_NAME``), both with a feature called ``chat``, calling
  the real ``openai`` and ``anthropic`` packages against a fake provider: plain calls, a stream, a
  tool call, failures (``shop`` only: its first error burst) and a model the pricing table does
  not know;
* ``support-bot`` is a replay of spans shaped as the official OpenTelemetry GenAI
  instrumentation, OpenLLMetry and OpenInference write them (tokens, no cost), sent to the
  collector over OTLP/HTTP.

Counts, errors, costs (priced by the app for llmpulse's spans, by the processor for the peers'),
unpriced calls, the status table, the dashboards' queries and the quality engine's content state
are checked per service; the first error burst of ``shop`` puts its error alert in pending.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmpulse.contract.pricing import PricingTable
from llmpulse.stack.local import Stack, free_ports
from llmpulse.testing.fake_provider import FakeProvider, FakeReply, RecordedRequest
from llmpulse.testing.otlp import make_request
from llmpulse.testing.polling import wait_until
from tests.processor.test_pricing_and_service import (
    FAILED,
    OFFICIAL,
    OPENINFERENCE,
    OPENLLMETRY,
    UNKNOWN,
    _span,
)
from tests.stack.conftest import PanelQuery
from tests.stack.test_end_to_end import Prometheus, grafana_to_promql

pytestmark = pytest.mark.components

TABLE = PricingTable.load()
IN, OUT = 100, 20  # every successful reply's usage
APP = """
import sys
import anthropic, openai
import llmpulse

base, role = sys.argv[1], sys.argv[2]
gpt = openai.OpenAI(base_url=base + "/v1", api_key="test", max_retries=0)
claude = anthropic.Anthropic(base_url=base, api_key="test", max_retries=0)
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}


def ask(text, model="gpt-4o-mini", **kwargs):
    return gpt.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **kwargs)


with llmpulse.context(feature="chat"):
    if role == "shop":
        for n in range(6):
            ask(f"where is my order {n}?")
        for _ in ask("stream the answer", stream=True, stream_options={"include_usage": True}):
            pass
        ask("what is the weather in Paris?", tools=[WEATHER])
        for n in range(4):
            try:
                ask(f"fail {n}")
            except openai.InternalServerError:
                pass
        claude.messages.create(
            model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "hello"}]
        )
        with claude.messages.stream(
            model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "stream hi"}]
        ) as stream:
            for _ in stream.text_stream:
                pass
        ask("who are you?", model="acme-llm-1")
    else:
        for n in range(5):
            ask(f"write a post about topic {n}")
"""


def _reply(request: RecordedRequest) -> FakeReply:
    text = str(request.body.get("messages", [{}])[-1].get("content", ""))
    if text.startswith("fail"):
        return FakeReply(status=500)
    if "weather" in text:
        call = {"name": "get_weather", "arguments": {"city": "Paris"}}
        return FakeReply(tool_calls=(call,), input_tokens=IN, output_tokens=OUT)
    return FakeReply(text="Here is what I found for you.", input_tokens=IN, output_tokens=OUT)


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        fake.set_handler(_reply)
        yield fake


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    ports = free_ports()
    stack = Stack(tmp_path / "state", ports)
    lines: list[str] = []
    try:
        assert stack.up(lines.append) == 0, "\n".join(lines)
        yield stack
    finally:
        stack.down(lines.append)


def _run_app(stack: Stack, provider: FakeProvider, service: str) -> None:
    env = {
        **os.environ,
        "LLMPULSE_ENABLED": "1",
        "OTEL_SERVICE_NAME": service,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{stack.ports.collector_grpc}",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "sampled",  # the README's one setting
        "LLMPULSE_SAMPLE_RATE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", APP, provider.base_url, service],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def _by(prometheus: Prometheus, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(series["metric"].get(label, "") for label in labels): float(series["value"][1])
        for series in prometheus.query(expr)
    }


def test_two_apps_and_the_peers_spans_are_exact_per_service(
    stack: Stack, provider: FakeProvider, dashboard_queries: list[PanelQuery]
) -> None:
    ports = stack.ports
    for service in ("shop", "blog"):
        _run_app(stack, provider, service)
    peers = [_span(OFFICIAL, 1), _span(OFFICIAL, 2), _span(OPENLLMETRY, 3), _span(OPENINFERENCE, 4)]
    peers += [_span(FAILED, 5, status=2), _span(UNKNOWN, 6)]
    replay = make_request(peers, resource={"service.name": "support-bot"}).SerializeToString()
    answer = httpx.post(
        f"http://127.0.0.1:{ports.collector_http}/v1/traces",
        content=replay,
        headers={"Content-Type": "application/x-protobuf"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text

    prometheus = Prometheus(ports.prometheus)
    requests = 'sum by (service, model) (llmpulse_requests_total{feature="chat"})'
    expected_requests = {
        ("shop", "gpt-4o-mini"): 12.0,  # 6 plain, a stream, a tool call, 4 failures
        ("shop", "claude-haiku-4-5"): 2.0,  # one plain, one stream
        ("shop", "acme-llm-1"): 1.0,
        ("blog", "gpt-4o-mini"): 5.0,
        ("support-bot", "gpt-4.1-mini"): 3.0,  # two calls and a failed one
        ("support-bot", "claude-sonnet-4-5"): 1.0,
        ("support-bot", "gpt-4o-mini"): 1.0,
        ("support-bot", "gpt-6-preview"): 1.0,
    }
    wait_until(
        lambda: _by(prometheus, requests, "service", "model") == expected_requests,
        timeout=90,
        interval=0.5,
        message=lambda: f"Prometheus never showed the calls: {_by(prometheus, requests, 'service', 'model')}",
    )
    errors = _by(
        prometheus, 'sum by (service, model) (llmpulse_errors_total{feature="chat"})', "service", "model"
    )
    assert {key: value for key, value in errors.items() if value} == {
        ("shop", "gpt-4o-mini"): 4.0,
        ("support-bot", "gpt-4.1-mini"): 1.0,
    }

    # Costs: llmpulse's spans priced by the app, the peers' by the processor, from one table.
    call = TABLE.cost_of("gpt-4o-mini", IN, OUT)
    haiku = TABLE.cost_of("claude-haiku-4-5", IN, OUT)
    official = TABLE.cost_of("gpt-4.1-mini", 1200, 300, cache_read=1000)
    openllmetry = TABLE.cost_of("claude-sonnet-4-5", 5000, 200, cache_read=3000, cache_write=1000)
    openinference = TABLE.cost_of("gpt-4o-mini", 800, 100, cache_read=400)
    expected_cost = {
        "shop": 8 * call + 2 * haiku,
        "blog": 5 * call,
        "support-bot": 2 * official + openllmetry + openinference,
    }
    by_service = _by(prometheus, 'sum by (service) (llmpulse_cost_usd_total{feature="chat"})', "service")
    cost = {key[0]: usd for key, usd in by_service.items()}
    assert cost.keys() == expected_cost.keys()
    for service, usd in expected_cost.items():
        assert cost[service] == pytest.approx(usd, rel=1e-9), service
    unpriced = _by(
        prometheus, "sum by (service, model) (llmpulse_unpriced_requests_total)", "service", "model"
    )
    assert {key: value for key, value in unpriced.items() if value} == {
        ("shop", "acme-llm-1"): 1.0,
        ("support-bot", "gpt-6-preview"): 1.0,
    }

    # The first error burst of shop's brand-new series: its error alert is pending at once (it
    # fires after the rule's `for:`); blog's and the peers' series stay quiet.
    def pending() -> list[dict[str, Any]]:
        return prometheus.query('ALERTS{alertname=~"LLMPulseError.*", component="llm"}')

    alerts = wait_until(pending, timeout=60, interval=0.5, message="no error alert on shop's first burst")
    assert {(a["metric"]["service"], a["metric"]["model"]) for a in alerts} <= {
        ("shop", "gpt-4o-mini"),
        ("support-bot", "gpt-4.1-mini"),  # 1 failure in 3 calls: over the 5% threshold too
    }
    assert ("shop", "gpt-4o-mini") in {(a["metric"]["service"], a["metric"]["model"]) for a in alerts}

    # The status table and JSON of the processor, per service.
    admin = f"http://127.0.0.1:{ports.processor_admin}"
    status = httpx.get(f"{admin}/api/status", timeout=10).json()
    shop = status["services"]["shop"]["chat"]["5m"]
    assert shop["requests"] == 15 and shop["cost_usd_total"] == pytest.approx(expected_cost["shop"], rel=1e-9)
    assert shop["error_rate"] == pytest.approx(4 / 15)
    assert shop["unpriced_share"] == pytest.approx(1 / 11)  # of the successful calls
    assert status["services"]["blog"]["chat"]["5m"]["requests"] == 5
    table = subprocess.run(
        [sys.executable, "-m", "llmpulse.cli", "status", "--url", admin, "--service", "blog"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines() if line.startswith("blog")]
    assert len(rows) == 1 and rows[0][1:3] == ["chat", "5"], table.stdout
    # The quality engine sees each app's content apart (the README's one setting is on).
    quality = status["quality"]["services"]
    assert quality["shop"]["chat"]["content"]["state"] == "seen"
    assert quality["blog"]["chat"]["content"]["state"] == "seen"

    # Every dashboard query narrowed to one service answers for that service only.
    for query in dashboard_queries:
        expr = grafana_to_promql(query.expr.replace("$service", "blog"))
        for series in prometheus.query(expr):
            assert series["metric"].get("service", "blog") == "blog", (query, series["metric"])
