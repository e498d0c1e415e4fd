"""Settings, admin endpoints, status, CLI and logs of the processor service."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from prometheus_client.metrics_core import GaugeMetricFamily

from llmpulse import cli
from llmpulse.contract import attributes as A
from llmpulse.processor.admin.status_client import render_table
from llmpulse.processor.cli import JsonFormatter
from llmpulse.processor.extension import Extension
from llmpulse.processor.http_server import Request, Response
from llmpulse.processor.metrics import names as M
from llmpulse.processor.settings import FIELDS, ConfigError, Settings, resolve
from llmpulse.stack import components
from llmpulse.testing.clock import FakeClock
from llmpulse.testing.otlp import llm_attributes, make_request, make_span
from llmpulse.testing.polling import wait_until, wait_until_async
from tests.processor.conftest import ServiceFactory, grpc_export

# --- settings -------------------------------------------------------------------------------


def test_precedence_flag_env_file_default(tmp_path: Path) -> None:
    config = tmp_path / "llmpulse.toml"
    config.write_text(
        '[processor]\ngrpc_port = 5000\nhttp_port = 5001\nadmin_port = 5002\nlog_format = "json"\n'
    )
    settings = resolve(
        {"config": str(config), "grpc_port": "6000"},
        {"LLMPULSE_HTTP_PORT": "7001", "LLMPULSE_AUTH_TOKEN": "tok"},
    )
    assert (settings.grpc_port, settings.http_port, settings.admin_port) == (6000, 7001, 5002)
    assert settings.log_format == "json"
    assert settings.auth_token == "tok"
    assert settings.queue_spans == Settings().queue_spans
    assert settings.redacted()["auth_token"] == "***"


def test_config_file_from_env(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[processor]\nqueue_spans = 10\n")
    assert resolve({}, {"LLMPULSE_CONFIG": str(config)}).queue_spans == 10


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        (
            {"grpc_port": "70000"},
            {},
            "grpc_port from flag --grpc-port: invalid value '70000': must be a TCP port",
        ),
        (
            {},
            {"LLMPULSE_QUEUE_SPANS": "lots"},
            "queue_spans from env LLMPULSE_QUEUE_SPANS: invalid value 'lots'",
        ),
        ({"drain_timeout": "-1"}, {}, "must be a positive number"),
        ({"log_format": "xml"}, {}, "must be 'text' or 'json'"),
        ({"tls_cert": "/nonexistent.pem"}, {}, "tls_cert and tls_key go together"),
        ({"tls_cert": "/nonexistent.pem", "tls_key": "/nonexistent.key"}, {}, "is not a readable file"),
        ({"config": "/nonexistent.toml"}, {}, "config file /nonexistent.toml does not exist"),
    ],
)
def test_bad_settings_fail_with_a_clear_message(
    flags: dict[str, str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve(flags, env)


def test_bad_config_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[processor\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        resolve({"config": str(broken)}, {})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[processor]\ngrcp_port = 1\n")
    with pytest.raises(ConfigError, match="unknown setting\\(s\\) grcp_port"):
        resolve({"config": str(unknown)}, {})


def test_misspelled_tables_and_loose_keys_are_errors_naming_the_valid_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    misspelled = tmp_path / "misspelled.toml"
    misspelled.write_text("[prcessor]\ngrpc_port = 1\n")
    with pytest.raises(
        ConfigError,
        match=r"unknown table\(s\) \[prcessor\]; valid: \[processor\], \[quality\], \[canary\], \[drift\]",
    ):
        resolve({"config": str(misspelled)}, {})
    loose = tmp_path / "loose.toml"
    loose.write_text("grpc_port = 1\n[processor]\nhttp_port = 2\n")
    with pytest.raises(ConfigError, match=r"key\(s\) grpc_port outside any table; put them under one of"):
        resolve({"config": str(loose)}, {})
    assert cli.main(["serve", "--config", str(misspelled)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("llmpulse serve: config file") and "[prcessor]" in err[0]


def test_settings_are_immutable() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.grpc_port = 1


def test_serve_help_documents_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    text = capsys.readouterr().out
    for field in FIELDS:
        assert field.flag in text and field.env in text


def test_serve_with_bad_config_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--grpc-port", "nope"]) == 2
    assert "llmpulse serve: grpc_port from flag --grpc-port: invalid value 'nope'" in capsys.readouterr().err


async def test_port_in_use_fails_fast(make_service: ServiceFactory) -> None:
    from llmpulse.processor.service import ProcessorService, StartupError

    first = await make_service()
    second = ProcessorService(Settings(grpc_port=0, http_port=first.http.port, admin_port=0))
    with pytest.raises(StartupError, match="cannot bind"):
        await second.startup()
    await second.shutdown()


# --- admin endpoints and status -------------------------------------------------------------


async def test_health_readiness_and_status(make_service: ServiceFactory) -> None:
    clock = FakeClock()
    service = await make_service(clock=clock, drain_timeout=5.0, queue_max_delay=60.0)
    spans = [make_span(llm_attributes(), span_id=bytes([i]) * 8, duration_s=i / 10) for i in range(1, 11)]
    await grpc_export(service.grpc.port, make_request(spans))
    admin = f"http://127.0.0.1:{service.admin.port}"
    async with httpx.AsyncClient(base_url=admin) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        status = (await client.get("/api/status")).json()
        text_metrics = await client.get("/metrics")
        assert (await client.get("/nope")).status_code == 404
        # while draining, /readyz says no
        service.pipeline.pause()
        pending = asyncio.create_task(grpc_export(service.grpc.port, make_request(spans[:1])))
        await wait_until_async(lambda: service.pipeline.queued_spans)
        stopping = asyncio.create_task(service.shutdown())
        await wait_until_async(lambda: service.state == "stopping")
        assert (await client.get("/readyz")).status_code == 503
        service.pipeline.resume()
        await stopping
        await pending
    assert text_metrics.headers["content-type"].startswith("text/plain")
    assert M.REQUESTS_TOTAL in text_metrics.text
    w = status["services"]["unknown_service"]["support"]["1m"]
    assert w["requests"] == 10
    assert w["latency_p50_s"] == pytest.approx(0.55)
    assert w["cost_usd_total"] == pytest.approx(0.025)
    assert status["spans"]["received"] == 10
    assert status["spans"]["accepted"]["llm"] == 10
    table = render_table(status, "1m")
    assert "support" in table and "550ms" in table and "0.0250" in table


async def test_status_command_against_a_running_processor(
    service: object, capsys: pytest.CaptureFixture[str]
) -> None:
    port = service.admin.port  # type: ignore[attr-defined]
    await grpc_export(service.grpc.port, make_request([make_span(llm_attributes())]))  # type: ignore[attr-defined]
    code = await asyncio.to_thread(
        cli.main, ["status", "--url", f"http://127.0.0.1:{port}", "--window", "1h"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "window 1h" in out and "support" in out and "500ms" in out
    code = await asyncio.to_thread(cli.main, ["status", "--url", f"http://127.0.0.1:{port}", "--json"])
    document = json.loads(capsys.readouterr().out)
    assert document["services"]["unknown_service"]["support"]["1h"]["requests"] == 1


def test_status_command_without_processor(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--url", "http://127.0.0.1:9"]) == 1
    assert "cannot reach the processor" in capsys.readouterr().err


def test_status_table_shows_cheap_costs_with_significant_digits() -> None:
    window = {
        "requests": 1000,
        "error_rate": 0.0,
        "refusal_rate": 0.0,
        "latency_p50_s": 0.3,
        "latency_p95_s": 0.5,
        "latency_p99_s": 0.6,
        "cost_usd_total": 0.0042,
        "cost_usd_mean": 0.0000042,
        "input_tokens_mean": 20.0,
        "output_tokens_mean": 10.0,
    }
    table = render_table({"services": {"app": {"cheap": {"5m": window}}}}, "5m")
    row = next(line for line in table.splitlines() if line.startswith("app"))
    assert row.split()[8:10] == ["0.0042", "4.2e-06"]
    assert "0.00000" not in table


def test_status_table_when_empty() -> None:
    assert "(no LLM calls seen yet)" in render_table({"services": {}}, "5m")


def test_json_log_lines() -> None:
    record = logging.LogRecord("llmpulse.processor", logging.INFO, __file__, 1, "event=x n=%d", (3,), None)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line)["msg"] == "event=x n=3"


def test_serve_runs_until_sigterm_and_stops_cleanly(tmp_path: Path) -> None:
    ports = components.distinct_free_ports(3)
    config = tmp_path / "serve.toml"
    config.write_text(
        f"[processor]\ngrpc_port = {ports[0]}\nhttp_port = {ports[1]}\nadmin_port = {ports[2]}\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "llmpulse.cli", "serve", "--config", str(config), "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{ports[2]}/readyz").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, timeout=30, message="llmpulse serve never answered /readyz with 200")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    events = [json.loads(line)["msg"].split()[0] for line in err.splitlines() if line.startswith("{")]
    assert "event=processor_started" in events and "event=processor_stopped" in events


def test_docs_describe_every_setting_and_metric() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "processor.md").read_text()
    for field in FIELDS:
        assert f"`{field.flag}" in text and field.env in text, field.name
    for spec in M.METRICS:
        assert f"`{spec.name}`" in text, spec.name


def test_status_table_marks_sampled_percentiles() -> None:
    window = {
        "requests": 5000,
        "error_rate": 0.0,
        "refusal_rate": 0.0,
        "latency_p50_s": 0.25,
        "latency_p95_s": 1.5,
        "latency_p99_s": 2.0,
        "latency_exact": False,
        "cost_usd_total": 1.0,
        "cost_usd_mean": 0.0002,
        "input_tokens_mean": 10.0,
        "output_tokens_mean": 5.0,
    }
    table = render_table({"services": {"app": {"qa": {"1m": window, "5m": window, "1h": window}}}}, "1m")
    assert "~250ms" in table and "~1.50s" in table and "uniform sample" in table


class _Recorder:
    """A record listener that keeps what it is given; fails on demand."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str | None]] = []
        self.feedback: list[str] = []
        self.feedback_features: list[str] = []
        self.fail = fail

    def on_call(self, call: Any, span: Any | None) -> None:
        if self.fail:
            raise RuntimeError("listener bug")
        self.calls.append((call.feature, None if span is None else span.name))

    def on_feedback(self, feedback: Any, span: Any | None) -> None:
        self.feedback.append(feedback.kind)
        self.feedback_features.append(feedback.feature)


class _ExtraCollector:
    def collect(self) -> Any:
        yield GaugeMetricFamily("llmpulse_extra_probe", "test family", value=7)


async def test_extension_points_listeners_collectors_admin_routes(make_service: ServiceFactory) -> None:
    recorder, broken = _Recorder(), _Recorder(fail=True)

    async def drift_route(request: Request) -> Response:
        return Response(200, b'{"drift": true}', "application/json")

    extension = Extension(
        "quality",
        listeners=[broken, recorder],
        collectors=[_ExtraCollector()],
        admin_routes={"/api/drift": drift_route},
        status=lambda: {"judge": "closed"},
    )
    service = await make_service(extensions=[extension])
    spans = [
        make_span(llm_attributes(), name="chat gpt-4o", span_id=b"\x01" * 8),
        make_span({A.SPAN_KIND: A.SPAN_KIND_FEEDBACK, A.FEEDBACK_KIND: "thumbs", A.FEEDBACK_VALUE: 1}),
        make_span({"http.route": "/"}),
    ]
    await grpc_export(service.grpc.port, make_request(spans))
    assert recorder.calls == [("support", "chat gpt-4o")]
    assert recorder.feedback == ["thumbs"]
    assert service.registry.get_sample_value(M.SPANS_ACCEPTED_TOTAL, {"kind": "llm"}) == 1
    assert service.registry.get_sample_value("llmpulse_extra_probe") == 7
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.admin.port}") as client:
        assert (await client.get("/api/drift?feature=x")).json() == {"drift": True}
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/api/status")).json()["quality"] == {"judge": "closed"}


async def test_listeners_get_the_capped_feature_label(make_service: ServiceFactory) -> None:
    """A client sending endless feature names cannot grow the engines' per-feature state."""
    recorder = _Recorder()
    service = await make_service(extensions=[Extension("recorder", listeners=[recorder])], max_label_values=3)
    spans = [
        make_span(llm_attributes(**{A.FEATURE: f"feature-{i}"}), span_id=bytes([1, i]) * 4) for i in range(6)
    ]
    spans.append(
        make_span(
            {
                A.SPAN_KIND: A.SPAN_KIND_FEEDBACK,
                A.FEATURE: "feature-9",
                A.FEEDBACK_KIND: "thumbs",
                A.FEEDBACK_VALUE: 1,
            }
        )
    )
    spans.append(make_span(llm_attributes(**{A.FEATURE: "x" * 500}), span_id=b"\x07" * 8))
    await grpc_export(service.grpc.port, make_request(spans))
    features = [feature for feature, _ in recorder.calls]
    assert features == ["feature-0", "feature-1", "feature-2", *[M.OVERFLOW_VALUE] * 4]
    assert recorder.feedback_features == [M.OVERFLOW_VALUE]
    overflow = service.registry.get_sample_value(M.LABEL_OVERFLOW_TOTAL, {"label": M.FEATURE})
    assert overflow == 5  # counted once per folded call or feedback, where the metrics fold it


def test_status_sections_cannot_shadow_the_processor_status() -> None:
    from llmpulse.processor.service import ProcessorService

    with pytest.raises(ValueError, match="taken by the processor"):
        ProcessorService(Settings(), extensions=[Extension("services", status=dict)])


async def test_head_requests_get_headers_only(service: Any) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.admin.port}") as client:
        head = await client.head("/healthz")
        get = await client.get("/healthz")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(get.content)) == "3"


async def test_a_full_queue_is_logged_once_per_interval(
    make_service: ServiceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    service = await make_service(queue_spans=1, queue_max_delay=60.0)  # the paused one waits
    service.pipeline.pause()
    one = make_request([make_span(llm_attributes())])
    first = asyncio.create_task(grpc_export(service.grpc.port, one))
    await wait_until_async(lambda: service.pipeline.queued_spans)
    with caplog.at_level(logging.WARNING, logger="llmpulse.processor.pipeline.queue"):
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await grpc_export(service.grpc.port, one)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    warnings = [r.getMessage() for r in caplog.records if "event=queue_full" in r.getMessage()]
    assert len(warnings) == 1 and "capacity=1" in warnings[0]
    service.pipeline.resume()
    await first
