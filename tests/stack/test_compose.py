"""docker-compose.yml cannot run here (no Docker engine): check that it is consistent instead.

It parses; every file it mounts exists; every service has a health check and a memory limit;
and the names and ports it gives each service are the ones the configs it mounts expect.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmpulse.processor import settings
from llmpulse.processor.quality.settings import QualitySettings as ProcessorQuality
from llmpulse.stack import components

REPO = components.REPO_ROOT
SERVICES = {
    "collector",
    "processor",
    "prometheus",
    "alertmanager",
    "webhook-sink",
    "console",
    "grafana",
    "jaeger",
}
# docker-compose.yml's `replicas` profile (tests/stack/test_compose_replicas.py checks its wiring)
REPLICA_SERVICES = {
    "kafka",
    "kafka-topics",
    "postgres",
    "collector-kafka",
    "processor-1",
    "processor-2",
    "processor-3",
    "prometheus-replicas",
    "console-replicas",
    "grafana-replicas",
}
REPLICA_VOLUMES = {
    "kafka-data",
    "postgres-data",
    "prometheus-replicas-data",
    "console-replicas-state",
    "grafana-replicas-data",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    return compose["services"][name]


def _bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """container path -> host path of the service's bind mounts (./...)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (REPO / source).resolve()
    return mounts


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.removeprefix("http://"), int(port.split("/")[0])


def _exposed(service: dict[str, Any]) -> set[int]:
    ports = {int(p) for p in service.get("expose", [])}
    ports |= {int(str(p).split(":")[-1]) for p in service.get("ports", [])}
    return ports


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items()}


def test_services_health_checks_limits_and_volumes(compose: dict[str, Any]) -> None:
    default = {name for name, service in compose["services"].items() if "profiles" not in service}
    assert default == SERVICES
    assert set(compose["services"]) - default == REPLICA_SERVICES
    for name, service in compose["services"].items():
        # a one-shot job (restart "no") has nothing to check once it has exited
        if service.get("restart") != "no":
            assert service.get("healthcheck", {}).get("test"), f"{name}: no health check"
        assert re.fullmatch(r"\d+[mg]", str(service.get("mem_limit", ""))), f"{name}: no memory limit"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith("."):
                assert source in compose["volumes"], f"{name}: volume {source} is not declared"
    assert set(compose["volumes"]) == {
        "llmpulse-state",
        "collector-queue",
        "prometheus-data",
        "alertmanager-data",
        "grafana-data",
        "webhook-data",
        *REPLICA_VOLUMES,
    }


def test_every_mounted_file_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for target, source in _bind_mounts(service).items():
            assert source.exists(), f"{name}: mounts {source} at {target}, which does not exist"


def test_build_targets_exist_in_the_dockerfile(compose: dict[str, Any]) -> None:
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", (REPO / "Dockerfile").read_text(), re.MULTILINE))
    for name, service in compose["services"].items():
        if "build" in service:
            assert service["build"]["target"] in stages, name
    dockerfile = (REPO / "Dockerfile").read_text()
    builder_version = re.search(
        r'BUILDER_VERSION="(v[\d.]+)"', (REPO / "scripts" / "bootstrap.sh").read_text()
    )
    assert builder_version, "scripts/bootstrap.sh no longer pins BUILDER_VERSION"
    assert f"ARG BUILDER_VERSION={builder_version.group(1)}" in dockerfile


def test_processor_settings_are_real_and_its_ports_exposed(compose: dict[str, Any]) -> None:
    processor = _service(compose, "processor")
    env = _env(processor)
    known = {field.env for field in settings.FIELDS}
    assert set(env) <= known, f"unknown processor settings: {sorted(set(env) - known)}"
    assert {int(env["LLMPULSE_GRPC_PORT"]), int(env["LLMPULSE_ADMIN_PORT"])} <= _exposed(processor)
    assert env["LLMPULSE_HOST"] == env["LLMPULSE_ADMIN_HOST"] == "0.0.0.0"
    assert f"127.0.0.1:{env['LLMPULSE_ADMIN_PORT']}/readyz" in " ".join(processor["healthcheck"]["test"])


def test_collector_sends_to_the_processor_and_the_trace_backend(compose: dict[str, Any]) -> None:
    collector_env = _env(_service(compose, "collector"))
    processor_env = _env(_service(compose, "processor"))
    assert collector_env["LLMPULSE_PROCESSOR_ENDPOINT"] == f"processor:{processor_env['LLMPULSE_GRPC_PORT']}"
    host, port = _host_port(collector_env["LLMPULSE_TRACE_BACKEND_ENDPOINT"])
    assert host in compose["services"] and port in _exposed(_service(compose, host))
    collector_config = yaml.safe_load((REPO / "otel-collector.yaml").read_text())
    assert collector_env["LLMPULSE_TRACE_EXPORTER"] in collector_config["exporters"]
    mounts = _bind_mounts(_service(compose, "collector"))
    config_arg = next(a for a in _service(compose, "collector")["command"] if a.startswith("--config="))
    assert mounts[config_arg.removeprefix("--config=")] == REPO / "otel-collector.yaml"
    published = {int(str(p).split(":")[-1]) for p in _service(compose, "collector")["ports"]}
    for key in ("LLMPULSE_COLLECTOR_GRPC_ENDPOINT", "LLMPULSE_COLLECTOR_HTTP_ENDPOINT"):
        host, port = _host_port(collector_env[key])
        assert host == "0.0.0.0" and port in published, key


def test_prometheus_scrapes_the_processor_and_loads_our_rules(compose: dict[str, Any]) -> None:
    prometheus = _service(compose, "prometheus")
    assert "--enable-feature=exemplar-storage" in prometheus["command"]
    mounts = _bind_mounts(prometheus)
    config_path = next(a for a in prometheus["command"] if a.startswith("--config.file=")).split("=", 1)[1]
    config = yaml.safe_load(mounts[config_path].read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for sc in jobs["llmpulse-processor"]["static_configs"] for t in sc["targets"]]
    admin_port = _env(_service(compose, "processor"))["LLMPULSE_ADMIN_PORT"]
    assert targets == [f"processor:{admin_port}"]
    am_targets = [
        t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]
    ]
    assert am_targets == ["alertmanager:9093"] and 9093 in _exposed(_service(compose, "alertmanager"))
    for pattern in config["rule_files"]:
        directory, _, glob = pattern.rpartition("/")
        assert directory in mounts, f"rule files {pattern} are not mounted"
        assert sorted(mounts[directory].glob(glob)) == sorted((REPO / "alerting" / "rules").glob("*.yml"))


def test_alertmanager_posts_to_the_webhook_sink(compose: dict[str, Any]) -> None:
    alertmanager = _service(compose, "alertmanager")
    shipped = yaml.safe_load((REPO / "alerting" / "alertmanager.yml").read_text())
    default_urls = {h["url"] for r in shipped["receivers"] for h in r.get("webhook_configs", [])}
    script = " ".join(alertmanager["command"])
    (default_url,) = default_urls
    assert f"s|{default_url}|$${{LLMPULSE_ALERT_WEBHOOK_URL}}|g" in script
    assert "/etc/alertmanager/alertmanager.yml" in _bind_mounts(alertmanager)
    url = _env(alertmanager)["LLMPULSE_ALERT_WEBHOOK_URL"]
    fallback = re.fullmatch(r"\$\{LLMPULSE_ALERT_WEBHOOK_URL:-(.+)\}", url)
    assert fallback, url
    host, port = _host_port(fallback.group(1))
    sink = _service(compose, host)
    assert port in _exposed(sink) and str(port) in sink["command"]


def test_grafana_is_provisioned_with_prometheus_exemplar_links_and_dashboards(
    compose: dict[str, Any],
) -> None:
    grafana = _service(compose, "grafana")
    mounts = _bind_mounts(grafana)
    datasources = yaml.safe_load(
        (mounts["/etc/grafana/provisioning/datasources"] / "llmpulse.yml").read_text()
    )["datasources"]
    by_type = {d["type"]: d for d in datasources}
    prometheus, jaeger = by_type["prometheus"], by_type["jaeger"]
    assert _host_port(prometheus["url"]) == ("prometheus", 9090) and 9090 in _exposed(
        _service(compose, "prometheus")
    )
    assert _host_port(jaeger["url"]) == ("jaeger", 16686) and 16686 in _exposed(_service(compose, "jaeger"))
    (destination,) = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    assert destination == {**destination, "name": "trace_id", "datasourceUid": jaeger["uid"]}
    providers = yaml.safe_load((mounts["/etc/grafana/provisioning/dashboards"] / "llmpulse.yml").read_text())[
        "providers"
    ]
    (provider,) = providers
    assert mounts[provider["options"]["path"]] == REPO / "dashboards" / "generated"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    directory, _, file_name = home.rpartition("/")
    assert (mounts[directory] / file_name).is_file()


def test_console_command_parses_and_reads_what_the_processor_writes(
    compose: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console's start script runs ``llmpulse console`` with arguments the real parser and
    settings accept; its store is the file the processor writes in the volume they share."""
    from llmpulse.cli import build_parser
    from llmpulse.console.cli import settings_from
    from llmpulse.contract import environment_variables as E

    console, processor = _service(compose, "console"), _service(compose, "processor")
    (script,) = console["command"]
    assert console["entrypoint"] == ["/bin/sh", "-c"]
    token_file = "/var/lib/llmpulse/console-token"
    assert script.startswith(f"test -s {token_file} || (umask 077 && python -c ")
    command = script.split("&& exec ", 1)[1].split()
    assert command[0] == "llmpulse"
    env = _env(console)
    assert set(env) <= {v for k, v in vars(E).items() if k.startswith("LLMPULSE_")}, env
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(E.LLMPULSE_CONSOLE_URL, "http://localhost:9470")
    token = tmp_path / "console-token"
    token.write_text("s3cret\n")
    args = build_parser().parse_args([a if a != token_file else str(token) for a in command[1:]])
    assert args.command == "console"
    settings = settings_from(args)
    assert (settings.host, settings.token) == ("0.0.0.0", "s3cret")
    assert console["ports"] == [f"127.0.0.1:{settings.port}:{settings.port}"]
    assert f"127.0.0.1:{settings.port}/healthz" in " ".join(console["healthcheck"]["test"])
    for url in (settings.prometheus_url, settings.alertmanager_url):
        host, port = _host_port(url)
        assert host in compose["services"] and port in _exposed(_service(compose, host)), url
    # the processor writes its default relative quality.db_path in its working directory
    assert settings.db_path == f"{processor['working_dir']}/{ProcessorQuality().db_path}"
    state = {v.split(":")[1]: v.split(":")[0] for v in processor["volumes"]}
    assert state[processor["working_dir"]] in {v.split(":")[0] for v in console["volumes"]}
    assert token_file.startswith(processor["working_dir"] + "/")
    # alert links (the rules' console_url) open the console from the Docker host
    prometheus = yaml.safe_load((REPO / "alerting" / "prometheus.yml").read_text())
    assert prometheus["global"]["external_labels"]["console_url"] == settings.base_url
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY console console" in dockerfile and '".[processor,kafka,store,console]"' in dockerfile
