"""End to end, real components, no Docker.

An app process instrumented only by ``LLMPULSE_ENABLED=1`` calls the fake provider through the
real ``openai`` package -> the built collector -> the processor -> Prometheus (our rules, with
windows and ``for:`` scaled down 20x so the test takes a minute) -> Alertmanager (our routing)
-> a webhook sink here. The test then:

1. injects an error burst at the provider and waits for LLMPulseErrorRateHigh at the webhook;
2. slows the app's retrieval step and finds, through the exemplar on the step histogram
   (Prometheus /api/v1/query_exemplars), the trace id of a slow retrieval span;
3. labels a judged sample with ``llmpulse label`` (found with ``llmpulse triage``);
4. runs every PromQL expression of every dashboard panel and lists those that return nothing
   (apart from NOT_EXERCISED, which a run this short cannot fill).

The processor runs with a judge and a canary pointed at the fake provider and with SPC and
drift windows sized for seconds, and the app captures message content, so the quality, drift
and canary panels are exercised too.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmpulse.demo.rules import write_compressed_rules
from llmpulse.processor.quality.settings import SESSION_DIMENSIONS
from llmpulse.stack import components
from llmpulse.testing.fake_judge import judge_dimensions, judge_reply
from llmpulse.testing.fake_provider import FakeProvider, FakeReply, RecordedRequest
from llmpulse.testing.polling import wait_until
from llmpulse.testing.webhook_sink import WebhookSink

pytestmark = pytest.mark.components

REPO = components.REPO_ROOT
FEATURE = "e2e"
SCALE = 20  # rule windows and `for:` durations are divided by this in the test
SLOW_RETRIEVAL_S = 0.3
JUDGE_MODEL = "judge-model"
JUDGE_VERDICT = json.dumps(
    {
        "correctness": 4,
        "completeness": 4,
        "tone": 5,
        "relevance": 4,
        "groundedness": 4,
        "explanation": "Fine.",
    }
)
CANARY_MODEL = "canary-model"

APP = r"""
import itertools, pathlib, sys, time
import openai, llmpulse

mode_file, base_url = pathlib.Path(sys.argv[1]), sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key="test", max_retries=0)
questions = [
    "What is the refund policy?", "How do I return a damaged item?", "Can I change my delivery address?",
    "Where is my order?", "Do you ship abroad?", "How long does a refund take?", "Can I cancel my order?",
]
ask = [{"role": "user", "content": questions[0]}]

def call(model, messages=ask, stream=False):
    try:
        if stream:
            for _ in client.chat.completions.create(
                model=model, messages=messages, stream=True, stream_options={"include_usage": True}
            ):
                pass
        else:
            client.chat.completions.create(model=model, messages=messages)
    except openai.APIError:
        pass

with llmpulse.context(feature="e2e"):
    call("gpt-4o-mini")
    for k in range(10):  # more models than the processor's label cap: folded into __other__
        call(f"unpriced-model-{k}")
    call("gpt-4o-mini", [{"role": "user", "content": "please refuse this"}])

for i in itertools.count(1):
    mode = mode_file.read_text().strip()
    if mode == "stop":
        break
    with llmpulse.context(feature="e2e", prompt_version="e2e-v1"):
        with llmpulse.step("retrieval") as retrieval:
            time.sleep(0.3 if mode == "slow" else 0.002)
            if mode == "slow":
                trace_id = retrieval.span.get_span_context().trace_id
                print("slow-retrieval", format(trace_id, "032x"), flush=True)
        call("gpt-4o-mini", [{"role": "user", "content": questions[i % len(questions)]}], stream=(i % 3 == 0))
        if i % 10 == 0:
            call("gpt-4o")  # answered by another model
        if i % 4 == 0:
            llmpulse.feedback("thumbs", 1 if i % 8 else 0)  # span contract: 1 up, 0 down
            llmpulse.feedback("follow_up", 1)
        if i % 7 == 0:
            try:
                with llmpulse.step("rerank"):
                    raise RuntimeError("reranker unavailable")
            except RuntimeError:
                pass
    # an agent run every other turn of a three-turn conversation: a search tool that fails now
    # and then, a run that loops on the same search (runaway), a run that fails
    if i % 2 == 0:
        try:
            with llmpulse.context(feature="e2e", conversation_id=f"conv-{i // 6}"), llmpulse.agent("planner"):
                call("gpt-4o-mini", [{"role": "user", "content": questions[i % len(questions)]}])
                for q in (("same", "same", "same") if i % 6 == 0 else (str(i),)):
                    try:
                        with llmpulse.tool("search", arguments={"q": q}):
                            if i % 5 == 0:
                                raise TimeoutError("search backend timed out")
                    except TimeoutError:
                        pass
                if i % 10 == 0:
                    raise RuntimeError("planner gave up")
        except RuntimeError:
            pass
        if i % 4 == 0:  # feedback inside the conversation: counted for its session
            with llmpulse.context(feature="e2e", conversation_id=f"conv-{i // 6}"):
                llmpulse.feedback("thumbs", 1)
                llmpulse.feedback("correction")
    if i % 5 == 0:  # a one-question conversation: abandoned after the first answer
        with llmpulse.context(feature="e2e", conversation_id=f"solo-{i}"):
            call("gpt-4o-mini", [{"role": "user", "content": questions[i % len(questions)]}])
    time.sleep(0.05)
"""


# Dashboard queries the end-to-end run cannot fill, by the series they read, and why. Every
# other query must return data; every entry must still be read by some panel (no rot).
NOT_EXERCISED: dict[str, str] = {
    "service_feature_dimension:llmpulse_judge_score:baseline1d": (
        "the day baseline reads judge scores older than its offset (1 h, 3 min scaled 1/20); "
        "the test runs for under a minute"
    ),
}
# What Grafana sends for each variable: "All" (.*), or the default of a single-value variable.
VARIABLE_VALUES = {
    **dict.fromkeys(
        ("service", "feature", "provider", "model", "step", "kind", "instance", "dimension", "agent", "tool"),
        ".*",
    ),
    "statistic": "judge_score",
}


def grafana_to_promql(expr: str) -> str:
    """A panel query as Grafana sends it for the selections above."""
    for variable, value in VARIABLE_VALUES.items():
        expr = expr.replace(f"${variable}", value)
    return expr.replace("$__rate_interval", "1m").replace("$__range", "5m")


class Prometheus:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/api/v1"

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.url}/query", params={"query": expr}, timeout=10).json()
        assert body["status"] == "success", f"{expr}: {body}"
        return list(body["data"]["result"])

    def exemplars(self, expr: str, start: float) -> list[dict[str, Any]]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{time.time() + 1:.3f}"}
        body = httpx.get(f"{self.url}/query_exemplars", params=params, timeout=10).json()
        assert body["status"] == "success", body
        return [e for series in body["data"] for e in series["exemplars"]]


@pytest.fixture
def provider() -> Iterator[tuple[FakeProvider, threading.Event]]:
    """The fake provider: refusals, a model swap for gpt-4o, and every other call failing while
    the returned event is set. It is also the processor's judge and canary endpoint, which the
    error burst leaves alone."""
    failing = threading.Event()
    counter = itertools.count()

    def reply(request: RecordedRequest) -> FakeReply:
        body = request.body if isinstance(request.body, dict) else {}
        if body.get("model") == JUDGE_MODEL:
            if judge_dimensions(body) == SESSION_DIMENSIONS:  # a whole conversation: canned scores
                verdict = judge_reply(body)
                assert verdict is not None
                return verdict
            return FakeReply(text=JUDGE_VERDICT)
        if body.get("model") == CANARY_MODEL:
            return FakeReply(text="Paris is the capital of France.")
        if "please refuse" in json.dumps(body.get("messages", "")):
            return FakeReply(refusal="I can't help with that.")
        if body.get("model") == "gpt-4o":
            return FakeReply(model="gpt-4o-mini")
        if failing.is_set() and next(counter) % 2 == 0:
            return FakeReply(status=500)
        return FakeReply(time_to_first_token=0.02, latency=0.01)

    with FakeProvider() as fake:
        fake.set_handler(reply)
        yield fake, failing


def engine_config(tmp_path: Path, provider_url: str) -> str:
    """``serve --config`` tables: the fake provider as judge and canary target; SPC windows,
    drift windows and tests sized for a run of seconds instead of hours."""
    return f"""
[quality]
judge_rate = 1.0
audit_rate = 1.0
db_path = "{tmp_path / "quality.db"}"
[quality.judge]
base_url = "{provider_url}"
model = "{JUDGE_MODEL}"
api_key = "test"
requests_per_second = 50
burst = 50
[quality.spc]
warmup_windows = 3
requests_per_window = 10
scores_per_window = 5

[canary]
interval_s = 1
[[canary.targets]]
model = "{CANARY_MODEL}"
base_url = "{provider_url}"
[[canary.probes]]
name = "capital"
prompt = "What is the capital of France?"
check = "contains"
expect = "paris"

[agents]
run_grace_s = 0.2
tick_s = 0.2
session_timeout_s = 1.0
judge_rate = 1.0
repeated_tool_calls = 3

[drift.settings]
reference_size = 20
window_size = 20
test_every = 5
min_current = 10
min_output_samples = 5
spc_block = 2
spc_warmup = 3
permutations = 50
"""


@pytest.fixture
def processor(tmp_path: Path, provider: tuple[FakeProvider, threading.Event]) -> Iterator[tuple[int, int]]:
    """``llmpulse serve`` on free ports with a small label cap and the engines configured by
    :func:`engine_config`; yields (grpc port, admin port)."""
    grpc_port, http_port, admin_port = (components.free_port() for _ in range(3))
    config = tmp_path / "llmpulse.toml"
    config.write_text(engine_config(tmp_path, provider[0].openai_base_url))
    argv = [
        sys.executable, "-m", "llmpulse.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
        "--grpc-port", str(grpc_port), "--http-port", str(http_port), "--admin-port", str(admin_port),
        "--max-label-values", "8",
    ]  # fmt: skip
    process = components.ManagedProcess(
        "processor", argv, f"http://127.0.0.1:{admin_port}/readyz", tmp_path / "processor.log"
    )
    process.start()
    try:
        yield grpc_port, admin_port
    finally:
        process.stop()


@pytest.mark.prometheus3
def test_end_to_end(  # noqa: PLR0917 (pytest injects fixtures positionally)
    tmp_path: Path,
    provider: tuple[FakeProvider, threading.Event],
    processor: tuple[int, int],
    start_prometheus: Any,
    start_alertmanager: Any,
    alertmanager_config_for: Callable[[str], str],
    start_collector: Any,
    dashboard_queries: list[Any],
    record_property: Callable[[str, object], None],
) -> None:
    fake, failing = provider
    processor_grpc, processor_admin = processor
    with WebhookSink() as sink:
        _, am_port = start_alertmanager(alertmanager_config_for(sink.url))
        rules = write_compressed_rules(tmp_path / "rules", SCALE)
        prom_config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
            "rule_files": [str(path) for path in rules],
            "scrape_configs": [
                {
                    "job_name": "llmpulse-processor",
                    "static_configs": [{"targets": [f"127.0.0.1:{processor_admin}"]}],
                }
            ],
        }
        _, prom_port = start_prometheus(yaml.safe_dump(prom_config))
        prometheus = Prometheus(prom_port)
        collector = start_collector(f"127.0.0.1:{processor_grpc}")

        mode = tmp_path / "mode"
        mode.write_text("normal")
        env = {
            **os.environ,
            "LLMPULSE_ENABLED": "1",
            "OTEL_SERVICE_NAME": "e2e-app",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{collector.grpc_endpoint}",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            # content on every call: the judge, the output checks and the drift engine need it
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
        }
        app_log = (tmp_path / "app.stderr").open("w")
        app = subprocess.Popen(
            [sys.executable, "-c", APP, str(mode), fake.openai_base_url],
            env=env,
            stdout=subprocess.PIPE,
            stderr=app_log,
            text=True,
        )
        try:
            # Normal traffic reaches Prometheus through the whole pipeline.
            def requests_seen() -> float | None:
                found = prometheus.query(f'sum(llmpulse_requests_total{{feature="{FEATURE}"}})')
                return float(found[0]["value"][1]) if found and float(found[0]["value"][1]) >= 20 else None

            wait_until(
                requests_seen,
                timeout=60,
                interval=0.25,
                message=lambda: "calls never reached Prometheus: " + _logs(tmp_path),
            )
            assert not any("LLMPulseErrorRateHigh" in n.alertnames for n in sink.notifications), (
                "LLMPulseErrorRateHigh fired on healthy traffic"
            )

            # A human labels a judged sample found with triage (the incident workflow); the
            # quality engine's next tick turns it into the judge-agreement gauges.
            quality_db = tmp_path / "quality.db"
            judged = wait_until(
                lambda: _judged_sample(quality_db),
                timeout=30,
                interval=0.25,
                message=lambda: "no judged sample reached the quality database: " + _logs(tmp_path),
            )
            assert judged is not None, "no judged sample reached the quality database: " + _logs(tmp_path)
            _llmpulse("label", "--db", str(quality_db), str(judged), "good", "--note", "end-to-end")

            # 1. Error burst -> LLMPulseErrorRateHigh at the webhook.
            injected = time.monotonic()
            failing.set()
            notification = sink.wait_for("LLMPulseErrorRateHigh", timeout=90)
            burst_to_webhook = time.monotonic() - injected
            failing.clear()
            assert notification is not None, "LLMPulseErrorRateHigh never reached the webhook"
            (alert,) = [
                a
                for a in notification.payload["alerts"]
                if a["labels"]["alertname"] == "LLMPulseErrorRateHigh"
            ]
            assert alert["labels"]["feature"] == FEATURE
            assert alert["labels"]["model"] == "gpt-4o-mini"
            assert alert["labels"]["severity"] == "critical"
            assert notification.payload["receiver"] == "llmpulse-critical"
            assert alert["annotations"]["runbook_url"].endswith("/docs/runbooks/LLMPulseErrorRateHigh.md")
            record_property("error_burst_to_webhook_seconds", round(burst_to_webhook, 1))
            print(f"\nerror burst -> webhook notification: {burst_to_webhook:.1f} s (rules scaled 1/{SCALE})")

            # 2. Slow retrieval -> the exemplar on the step histogram names a slow span's trace.
            slow_from = time.time()
            mode.write_text("slow")

            def slow_exemplar() -> dict[str, Any] | None:
                found = prometheus.exemplars(
                    f'llmpulse_step_duration_seconds_bucket{{feature="{FEATURE}", step="retrieval"}}',
                    slow_from - 5,
                )
                return next((e for e in found if float(e["value"]) >= SLOW_RETRIEVAL_S), None)

            exemplar = wait_until(
                slow_exemplar,
                timeout=30,
                interval=0.25,
                message="no exemplar of a slow retrieval on the step histogram",
            )
            mode.write_text("normal")
            assert exemplar is not None, "no exemplar of a slow retrieval on the step histogram"

            # 3. Every dashboard query returns data (the app keeps sending normal traffic).
            time.sleep(3)
            labelled = wait_until(
                lambda: prometheus.query(f'llmpulse_judge_human_labelled_samples{{feature="{FEATURE}"}}'),
                timeout=30,
                interval=0.25,
                message="the human label never reached the judge-agreement gauges",
            )
            assert labelled, "the human label never reached the judge-agreement gauges"
            empty = [
                str(q)
                for q in dashboard_queries
                if not any(name in q.expr for name in NOT_EXERCISED)
                and not prometheus.query(grafana_to_promql(q.expr))
            ]
        finally:
            mode.write_text("stop")
            try:
                out, _ = app.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                app.kill()
                out, _ = app.communicate()
            app_log.close()
    slow_traces = {line.split()[1] for line in out.splitlines() if line.startswith("slow-retrieval ")}
    assert exemplar["labels"]["trace_id"] in slow_traces, (exemplar, slow_traces)
    assert not empty, "dashboard queries that returned no data after the traffic:\n" + "\n".join(empty)


def test_every_query_left_out_of_the_data_check_exists(dashboard_queries: list[Any]) -> None:
    unread = [name for name in NOT_EXERCISED if not any(name in q.expr for q in dashboard_queries)]
    assert not unread, unread


def _llmpulse(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "llmpulse.cli", *args], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, f"llmpulse {' '.join(args)}: {result.stderr}"
    return result.stdout


def _judged_sample(db: Path) -> int | None:
    """The id of a stored sample of FEATURE that carries a judge verdict, if any yet."""
    if not db.exists():
        return None
    out = _llmpulse(
        "triage", "--db", str(db), "--feature", FEATURE, "--include-audit", "--json", "--limit", "100"
    )
    cases = [json.loads(line) for line in out.splitlines() if line.strip()]
    return next((int(case["id"]) for case in cases if case["judge_verdict"]), None)


def _logs(tmp_path: Path) -> str:
    parts = []
    for path in sorted(tmp_path.rglob("*.log")) + sorted(tmp_path.glob("app.stderr")):
        parts.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:]))
    return "\n".join(parts)
