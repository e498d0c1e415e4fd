"""Re-freezing over HTTP: the admin routes on a real server, driven by `llmpulse drift ...`."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from prometheus_client import CollectorRegistry

from llmpulse.contract.attributes import UNKNOWN_SERVICE
from llmpulse.processor.drift import cli as drift_cli
from llmpulse.processor.drift.admin import DriftAdmin
from llmpulse.processor.drift.engine import DriftEngine
from llmpulse.processor.drift.synthetic import SyntheticStream
from llmpulse.processor.http_server import HttpServer

Feed = Callable[..., None]


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="llmpulse")
    drift_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


@pytest.fixture
async def admin_url(engine: DriftEngine) -> AsyncIterator[str]:
    server = HttpServer(DriftAdmin(engine), host="127.0.0.1", port=0, max_body_bytes=1024, name="admin")
    await server.startup()
    yield f"http://127.0.0.1:{server.port}"
    await server.shutdown()


async def test_refreeze_command_over_http(
    engine: DriftEngine,
    registry: CollectorRegistry,
    feed: Feed,
    admin_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = SyntheticStream(11)
    feed(stream, 200)
    feed(stream, 200, shift=0.5)
    assert (
        registry.get_sample_value(
            "llmpulse_drift_drifted", {"service": UNKNOWN_SERVICE, "feature": "support", "signal": "input"}
        )
        == 1
    )

    code = await asyncio.to_thread(run_cli, "drift", "refreeze", "--url", admin_url, "--feature", "support")
    assert code == 0
    assert "feature support: reference re-frozen (collecting_reference, 0 samples)" in capsys.readouterr().out
    assert engine.status("support")["state"] == "collecting_reference"
    assert (
        registry.get_sample_value(
            "llmpulse_drift_drifted", {"service": UNKNOWN_SERVICE, "feature": "support", "signal": "input"}
        )
        == 0
    )

    code = await asyncio.to_thread(run_cli, "drift", "status", "--url", admin_url, "--feature", "support")
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert document["state"] == "collecting_reference" and document["similarity_mean"] is None


async def test_admin_errors_are_clear(engine: DriftEngine, feed: Feed, admin_url: str) -> None:
    feed(SyntheticStream(12), 250)
    async with httpx.AsyncClient(base_url=admin_url) as client:
        unknown = await client.post(
            "/api/drift/refreeze", params={"service": UNKNOWN_SERVICE, "feature": "nope"}
        )
        assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
        too_small = await client.post(
            "/api/drift/refreeze",
            params={"service": UNKNOWN_SERVICE, "feature": "support", "from": "current"},
        )
        assert too_small.status_code == 409
        assert "100 are needed" in too_small.json()["error"]
        missing = await client.post("/api/drift/refreeze")
        assert missing.status_code == 400
        wrong_method = await client.get(
            "/api/drift/refreeze", params={"service": UNKNOWN_SERVICE, "feature": "support"}
        )
        assert wrong_method.status_code == 405
        everything = await client.get("/api/drift")
        assert everything.status_code == 200
        assert [f["feature"] for f in everything.json()["features"]] == ["support"]


async def test_cli_reports_an_unreachable_processor(capsys: pytest.CaptureFixture[str]) -> None:
    code = await asyncio.to_thread(
        run_cli, "drift", "refreeze", "--url", "http://127.0.0.1:9", "--feature", "support"
    )
    assert code == 1
    assert "cannot reach the processor" in capsys.readouterr().err
