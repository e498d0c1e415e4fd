"""docker-compose.yml's profiles as Docker Compose itself reads them (``docker-compose config``).

No Docker engine runs here, but ``config`` needs none: the real Compose v2 client
(``scripts/build_compose.sh`` builds it into ``.cache/compose``) resolves the file, its anchors,
profiles and ``${...}`` defaults into what ``up`` would create. The default profile is the
one-processor stack, unchanged by the ``replicas`` profile; the ``replicas`` profile wires Kafka,
PostgreSQL, the kafka collector and three replicas the way ``llmpulse up --replicas`` does.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from llmpulse.processor import engines, settings
from llmpulse.stack import components, replicas
from tests.deploy.test_kubernetes import image_env

REPO = components.REPO_ROOT
COMPOSE_HINT = (
    "the Docker Compose v2 client is not built: run scripts/build_compose.sh (or `make setup`), "
    "which builds github.com/docker/compose/v5 into .cache/compose/docker-compose"
)
REPLICAS = ("processor-1", "processor-2", "processor-3")


def compose_binary() -> Path:
    """``.cache/compose/docker-compose`` in this checkout, else ``docker-compose`` on PATH."""
    built = REPO / ".cache" / "compose" / "docker-compose"
    if built.is_file() and os.access(built, os.X_OK):
        return built
    on_path = shutil.which("docker-compose")
    if on_path:
        return Path(on_path)
    pytest.fail(COMPOSE_HINT)


def compose_config(tmp_path: Path, *profiles: str) -> dict[str, Any]:
    """``docker-compose config`` of the repository's file with ``profiles`` on, as a dict.

    An empty env file and an environment without COMPOSE_*/LLMPULSE_* variables: the file's
    own defaults, not this machine's settings, are what is checked."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "LLMPULSE_", "DOCKER_"))}
    env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
    argv = [str(compose_binary()), "--project-directory", str(REPO), "-f", str(REPO / "docker-compose.yml")]
    argv += ["--env-file", str(env_file)]
    for profile in profiles:
        argv += ["--profile", profile]
    done = subprocess.run(
        [*argv, "config", "--format", "json"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, f"docker-compose config failed: {done.stderr.strip()}"
    config: dict[str, Any] = json.loads(done.stdout)
    return config


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return compose_config(tmp_path_factory.mktemp("compose-default"))


@pytest.fixture(scope="module")
def with_replicas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return compose_config(tmp_path_factory.mktemp("compose-replicas"), "replicas")


def _published(config: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(host address, host port, protocol, service) of every published port."""
    return [
        (port.get("host_ip", "0.0.0.0"), str(port["published"]), port["protocol"], name)
        for name, service in config["services"].items()
        for port in service.get("ports", [])
    ]


def _exposed(service: dict[str, Any]) -> set[int]:
    ports = {int(p) for p in service.get("expose", [])}
    return ports | {int(p["target"]) for p in service.get("ports", [])}


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def _mounts(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {volume["target"]: volume for volume in service.get("volumes", [])}


def test_default_profile_is_the_one_processor_stack_and_the_profile_only_adds(
    default: dict[str, Any], with_replicas: dict[str, Any]
) -> None:
    from tests.stack.test_compose import REPLICA_SERVICES, SERVICES

    assert set(default["services"]) == SERVICES
    assert not any("profiles" in service for service in default["services"].values())
    assert set(with_replicas["services"]) == SERVICES | REPLICA_SERVICES
    for name in SERVICES:  # turning the profile on changes none of the default services
        assert with_replicas["services"][name] == default["services"][name], name
    for name in REPLICA_SERVICES:
        assert with_replicas["services"][name]["profiles"] == ["replicas"], name
    assert (
        default["services"]["processor"]["environment"]
        .keys()
        .isdisjoint({"LLMPULSE_KAFKA_BROKERS", "LLMPULSE_STORE_URL"})
    )


def test_published_ports_do_not_clash(default: dict[str, Any], with_replicas: dict[str, Any]) -> None:
    for config in (default, with_replicas):
        seen: dict[tuple[str, str], str] = {}
        # one port per protocol, whatever the address: 0.0.0.0 takes it on 127.0.0.1 too
        for _, port, protocol, name in _published(config):
            assert (port, protocol) not in seen, (
                f"host port {port}/{protocol}: {seen[port, protocol]} and {name}"
            )
            seen[port, protocol] = name
    replica_ports = {
        port for _, port, _, name in _published(with_replicas) if name not in default["services"]
    }
    assert replica_ports == {"14317", "14318", "19090", "19470", "13000"}


def test_volumes_are_declared_used_and_not_shared_between_stores(
    default: dict[str, Any], with_replicas: dict[str, Any]
) -> None:
    for config in (default, with_replicas):
        used: dict[str, set[str]] = {}
        for name, service in config["services"].items():
            for volume in service.get("volumes", []):
                if volume["type"] == "volume":
                    used.setdefault(volume["source"], set()).add(name)
                else:
                    assert volume["type"] == "bind" and Path(volume["source"]).exists(), (name, volume)
        assert set(used) == set(config["volumes"]), "declared and used volumes differ"
    used = {
        v["source"]: name
        for name, s in with_replicas["services"].items()
        for v in s.get("volumes", [])
        if v["type"] == "volume"
    }
    assert used["kafka-data"] == "kafka" and used["postgres-data"] == "postgres"
    assert _mounts(with_replicas["services"]["kafka"])["/var/lib/kafka/data"]["source"] == "kafka-data"
    kafka_env = with_replicas["services"]["kafka"]["environment"]
    assert kafka_env["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"  # the image's volume, owned by its user
    # the StorageTool formats the volume with a 16-byte id in unpadded base64url, or refuses
    assert len(base64.urlsafe_b64decode(kafka_env["CLUSTER_ID"] + "==")) == 16
    assert not kafka_env["CLUSTER_ID"].startswith("-"), "the StorageTool would read it as an option"
    assert "/var/lib/postgresql/data" in _mounts(with_replicas["services"]["postgres"])
    for name in REPLICAS:  # the replicas keep nothing of their own: their state is in PostgreSQL
        assert "volumes" not in with_replicas["services"][name], name


def _replica_settings(service: dict[str, Any]) -> tuple[settings.Settings, str | None]:
    env = {k: str(v) for k, v in service["environment"].items()}
    known = {field.env for field in settings.FIELDS} | {engines.ENV_STORE_URL}
    assert set(env) <= known, f"not llmpulse settings: {sorted(set(env) - known)}"
    # on top of what the image's ENV sets
    return settings.resolve(environ={**image_env(), **env}), engines.quality_settings({}, env).store_url


def test_every_replica_reads_the_one_topic_in_one_group_with_the_shared_store(
    with_replicas: dict[str, Any],
) -> None:
    services = with_replicas["services"]
    replica_names = sorted(n for n, s in services.items() if s.get("image") == "llmpulse-processor:local")
    assert replica_names == sorted([*REPLICAS, "processor", "webhook-sink"])
    kafka_env = services["kafka"]["environment"]
    (advertised,) = kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    postgres_env = services["postgres"]["environment"]
    resolved = {name: _replica_settings(services[name]) for name in REPLICAS}
    hostnames = [services[name]["hostname"] for name in REPLICAS]
    assert hostnames == list(REPLICAS), "every replica needs its own host name (Kafka client and router ids)"
    for name, (replica, store_url) in resolved.items():
        assert replica.kafka_brokers == advertised.removeprefix("PLAINTEXT://"), name
        host, port = _host_port(replica.kafka_brokers)
        assert host == "kafka" and port in _exposed(services["kafka"]), name
        # the names `llmpulse up --replicas` uses, so the docs hold for both
        assert (replica.kafka_topic, replica.kafka_group, replica.kafka_owner_topic) == (
            replicas.TOPIC,
            replicas.GROUP,
            replicas.OWNER_TOPIC,
        ), name
        assert replica.admin_host == "0.0.0.0" and replica.admin_port in _exposed(services[name]), name
        assert replica.host == "127.0.0.1", f"{name}: spans must come through Kafka only"
        health = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{replica.admin_port}/readyz" in health, name
        assert store_url is not None, name
        url = urlsplit(store_url)
        assert (url.hostname, url.port) == ("postgres", 5432) and 5432 in _exposed(services["postgres"])
        assert (url.username, url.password, url.path) == (
            postgres_env["POSTGRES_USER"],
            postgres_env["POSTGRES_PASSWORD"],
            f"/{postgres_env['POSTGRES_DB']}",
        ), name
        depends = services[name]["depends_on"]
        assert depends["kafka-topics"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
    assert len({(r.kafka_group, s) for r, s in resolved.values()}) == 1
    assert postgres_env["POSTGRES_PASSWORD"] == "llmpulse"  # ${LLMPULSE_POSTGRES_PASSWORD:-llmpulse}


def test_the_topics_job_creates_what_the_collector_writes_and_the_replicas_read(
    with_replicas: dict[str, Any],
) -> None:
    services = with_replicas["services"]
    job = services["kafka-topics"]
    assert job["restart"] == "no" and job["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "CMD-SHELL" in services["kafka"]["healthcheck"]["test"]
    (script,) = job["command"]
    loop = re.fullmatch(r"for topic in ([\w\- ]+); do (.+); done", script)
    assert loop, script
    topics = loop.group(1).split()
    assert topics == [replicas.TOPIC, replicas.OWNER_TOPIC]
    create = loop.group(2)
    assert "--bootstrap-server kafka:9092 --create --if-not-exists --topic $$topic" in create
    partitions = int(re.search(r"--partitions (\d+)", create).group(1))  # type: ignore[union-attr]
    assert partitions == replicas.partitions_for(len(REPLICAS))
    assert services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    collector = services["collector-kafka"]
    env = collector["environment"]
    assert env["LLMPULSE_KAFKA_TOPIC"] == replicas.TOPIC
    assert env["LLMPULSE_KAFKA_BROKERS"] == services["processor-1"]["environment"]["LLMPULSE_KAFKA_BROKERS"]
    assert collector["depends_on"]["kafka-topics"]["condition"] == "service_completed_successfully"


def test_the_kafka_collector_runs_the_shipped_pipeline(with_replicas: dict[str, Any]) -> None:
    collector = with_replicas["services"]["collector-kafka"]
    config_arg = next(a for a in collector["command"] if a.startswith("--config="))
    mount = _mounts(collector)[config_arg.removeprefix("--config=")]
    assert Path(mount["source"]) == REPO / "otel-collector-kafka.yaml" and mount["read_only"]
    env = {k: str(v) for k, v in collector["environment"].items()}
    published = {int(p["target"]) for p in collector["ports"]}
    for key in ("LLMPULSE_COLLECTOR_GRPC_ENDPOINT", "LLMPULSE_COLLECTOR_HTTP_ENDPOINT"):
        host, port = _host_port(env[key])
        assert host == "0.0.0.0" and port in published, key
    pipeline = yaml.safe_load((REPO / "otel-collector-kafka.yaml").read_text())
    assert pipeline["service"]["pipelines"]["traces"]["exporters"] == ["kafka"]
    # the collector itself accepts the file with the container's environment
    done = subprocess.run(
        [str(components.find_collector()), "validate", f"--config={REPO / 'otel-collector-kafka.yaml'}"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), **env},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_prometheus_scrapes_every_replica_and_the_console_reads_the_shared_store(
    with_replicas: dict[str, Any],
) -> None:
    services = with_replicas["services"]
    prometheus = services["prometheus-replicas"]
    config_path = next(a for a in prometheus["command"] if a.startswith("--config.file=")).split("=", 1)[1]
    source = Path(_mounts(prometheus)[config_path]["source"])
    assert source == REPO / "alerting" / "prometheus-replicas.yml"
    assert Path(_mounts(prometheus)["/etc/prometheus/rules"]["source"]) == REPO / "alerting" / "rules"
    config = yaml.safe_load(source.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for sc in jobs["llmpulse-processor"]["static_configs"] for t in sc["targets"]]
    expected = [
        f"{services[n]['hostname']}:{services[n]['environment']['LLMPULSE_ADMIN_PORT']}" for n in REPLICAS
    ]
    assert targets == expected
    (collector_target,) = [t for sc in jobs["otel-collector"]["static_configs"] for t in sc["targets"]]
    metrics_port = services["collector-kafka"]["environment"]["LLMPULSE_COLLECTOR_METRICS_PORT"]
    assert collector_target == f"collector-kafka:{metrics_port}"
    # the replicas' one scraper: the default Prometheus does not scrape them
    default_config = yaml.safe_load((REPO / "alerting" / "prometheus.yml").read_text())
    default_targets = {
        t for job in default_config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    assert default_targets.isdisjoint(targets)
    done = subprocess.run(
        [str(components.promtool_binary()), "check", "config", str(source)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    console = services["console-replicas"]
    console_env = console["environment"]
    assert console_env["LLMPULSE_STORE_URL"] == services["processor-1"]["environment"]["LLMPULSE_STORE_URL"]
    assert _host_port(console_env["LLMPULSE_PROMETHEUS_URL"].removeprefix("http://")) == (
        "prometheus-replicas",
        9090,
    )
    (published,) = console["ports"]
    assert console_env["LLMPULSE_CONSOLE_URL"] == f"http://localhost:{published['published']}"
    assert config["global"]["external_labels"]["console_url"] == console_env["LLMPULSE_CONSOLE_URL"]


def test_grafana_of_the_replicas_shows_the_dashboards_from_their_prometheus(
    default: dict[str, Any], with_replicas: dict[str, Any]
) -> None:
    grafana, replica_grafana = default["services"]["grafana"], with_replicas["services"]["grafana-replicas"]
    mounts, replica_mounts = _mounts(grafana), _mounts(replica_grafana)
    assert set(mounts) == set(replica_mounts)
    target = "/etc/grafana/provisioning/datasources"
    for path in mounts:  # the same dashboards and providers; only the data sources differ
        if path != target and mounts[path]["type"] == "bind":
            assert mounts[path]["source"] == replica_mounts[path]["source"], path
    shipped = yaml.safe_load((Path(mounts[target]["source"]) / "llmpulse.yml").read_text())["datasources"]
    replicated = yaml.safe_load((Path(replica_mounts[target]["source"]) / "llmpulse.yml").read_text())[
        "datasources"
    ]
    by_uid = {d["uid"]: d for d in replicated}
    for source in shipped:  # same uids and settings, so dashboards and exemplar links hold
        assert {k: v for k, v in by_uid[source["uid"]].items() if k not in ("name", "url")} == {
            k: v for k, v in source.items() if k not in ("name", "url")
        }
    prometheus = by_uid["llmpulse-prometheus"]
    host, port = _host_port(prometheus["url"].removeprefix("http://"))
    assert host == "prometheus-replicas" and port in _exposed(with_replicas["services"][host])
    assert replica_grafana["environment"] == grafana["environment"]
