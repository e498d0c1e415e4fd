"""The admin port's guard on a running processor: Host check against DNS rebinding, the token on
state-changing endpoints, cross-site refusals, the token from a file, the non-loopback warning."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from llmpulse.errors import ConfigError
from llmpulse.processor.engines import build_engines
from llmpulse.processor.settings import Settings, resolve
from tests.processor.conftest import ServiceFactory

REFREEZE = "/api/drift/refreeze?feature=support"


async def _drift_service(make_service: ServiceFactory, **overrides: object):  # type: ignore[no-untyped-def]
    extensions = build_engines({"quality": {"enabled": False}, "drift": {}}, {})
    return await make_service(extensions=extensions, **overrides)


async def test_a_rebound_host_name_cannot_read_the_status(make_service: ServiceFactory) -> None:
    service = await make_service()
    base = f"http://127.0.0.1:{service.admin.port}"
    async with httpx.AsyncClient() as client:
        assert (await client.get(base + "/api/status")).status_code == 200
        assert (
            await client.get(base + "/api/status", headers={"Host": f"localhost:{service.admin.port}"})
        ).status_code == 200
        assert (await client.get(base + "/metrics", headers={"Host": "[::1]"})).status_code == 200
        rebound = await client.get(
            base + "/api/status", headers={"Host": f"attacker.example:{service.admin.port}"}
        )
    assert rebound.status_code == 421
    assert "attacker.example" in rebound.json()["error"]


async def test_allowed_hosts_when_the_admin_port_binds_beyond_loopback(make_service: ServiceFactory) -> None:
    service = await make_service(admin_host="0.0.0.0", admin_allowed_hosts=("processor",))
    base = f"http://127.0.0.1:{service.admin.port}"
    async with httpx.AsyncClient() as client:
        assert (await client.get(base + "/metrics", headers={"Host": "processor:9464"})).status_code == 200
        assert (await client.get(base + "/metrics", headers={"Host": "other:9464"})).status_code == 421


async def test_state_changes_need_the_token(make_service: ServiceFactory) -> None:
    service = await _drift_service(make_service, auth_token="s3cret")
    base = f"http://127.0.0.1:{service.admin.port}"
    async with httpx.AsyncClient() as client:
        anonymous = await client.post(base + REFREEZE)
        wrong = await client.post(base + REFREEZE, headers={"Authorization": "Bearer nope"})
        right = await client.post(base + REFREEZE, headers={"Authorization": "Bearer s3cret"})
        reading = await client.get(base + "/api/drift")
    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert right.status_code == 404  # through the guard: no such feature yet
    assert reading.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
    ],
)
async def test_cross_site_state_changes_are_refused(
    make_service: ServiceFactory, headers: dict[str, str]
) -> None:
    service = await _drift_service(make_service)
    base = f"http://127.0.0.1:{service.admin.port}"
    async with httpx.AsyncClient() as client:
        refused = await client.post(base + REFREEZE, headers=headers, content=b"")
        same_origin = await client.post(
            base + REFREEZE, headers={"Origin": f"http://127.0.0.1:{service.admin.port}"}
        )
    assert refused.status_code in (403, 415)
    assert same_origin.status_code == 404


def test_the_token_comes_from_a_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file\n")
    assert resolve({}, {"LLMPULSE_AUTH_TOKEN_FILE": str(token_file)}).auth_token == "from-a-file"
    with pytest.raises(ConfigError, match="set one of them"):
        Settings(auth_token="x", auth_token_file=token_file)
    with pytest.raises(ConfigError, match="cannot be read"):
        Settings(auth_token_file=tmp_path / "missing")
    assert resolve({}, {"LLMPULSE_ADMIN_ALLOWED_HOSTS": "a, b"}).admin_allowed_hosts == ("a", "b")


async def test_binding_the_admin_port_beyond_loopback_warns(
    make_service: ServiceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="llmpulse"):
        await make_service(admin_host="0.0.0.0")
    [warning] = [r.getMessage() for r in caplog.records if "admin_port_not_loopback" in r.getMessage()]
    assert "admin_host=0.0.0.0" in warning and "LLMPULSE_AUTH_TOKEN" in warning
