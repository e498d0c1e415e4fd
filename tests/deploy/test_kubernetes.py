"""deploy/kubernetes/: schema-valid offline, and wired to what llmpulse really reads.

No cluster here: every manifest is checked against the Kubernetes OpenAPI schemas with the
``kubernetes-validate`` linter (schemas inside the package, strict: unknown fields fail), and the
wiring against the project's own sources of truth: the collector's ConfigMap is the shipped
``otel-collector-kafka.yaml``, the processor's environment parses with its real settings, its
probes pass its real admin handler, Prometheus' config passes ``promtool``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from llmpulse.contract import environment_variables as E
from llmpulse.processor import engines, settings
from llmpulse.processor.admin.guard import AdminGuard
from llmpulse.processor.admin.handler import AdminHandler
from llmpulse.processor.http_server import Request
from llmpulse.stack import components, replicas

REPO = components.REPO_ROOT
DEPLOY = REPO / "deploy" / "kubernetes"
WORKLOADS = {"Deployment", "StatefulSet", "Job"}
# the oldest Kubernetes minor still common in managed clusters, and the linter's newest
VERSIONS = ("1.29.0", "latest")
LINTER_HINT = (
    "the offline Kubernetes schema linter is missing: `make setup` (or pip install -e '.[dev]') "
    "installs kubernetes-validate"
)


def manifests() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path, doc


@pytest.fixture(scope="module")
def resources() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> resource, over every manifest."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path, doc in manifests():
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in found, f"{path.name}: {key} defined twice"
        found[key] = doc
    return found


def image_env(target: str = "processor") -> dict[str, str]:
    """The ``LLMPULSE_*`` variables the Dockerfile's ``target`` stage sets (``ENV``): what a
    container starts with before the deployment's own environment."""
    stage = re.search(
        rf"^FROM \S+ AS {target}$(.*?)(?=^FROM |\Z)", (REPO / "Dockerfile").read_text(), re.M | re.S
    )
    assert stage, f"no stage {target} in the Dockerfile"
    block = re.search(r"^ENV ((?:.*\\\n)*.*)$", stage.group(1), re.M)
    pairs = re.findall(r"(\w+)=(\S+)", block.group(1)) if block else []
    return {k: v for k, v in pairs if k.startswith("LLMPULSE_")}


def _pod(resource: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = resource["spec"]["template"]
    return pod


def _container(resource: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    containers = _pod(resource)["spec"]["containers"]
    if name is None:
        (only,) = containers
        return dict(only)
    return dict(next(c for c in containers if c["name"] == name))


def _plain_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}


def _secret_value(resources: dict[tuple[str, str], dict[str, Any]], ref: dict[str, Any]) -> str:
    secret = resources[("Secret", ref["name"])]
    return str(secret["stringData"][ref["key"]])


def _env(resources: dict[tuple[str, str], dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The container's environment with secretKeyRef values read from the shipped Secret."""
    env = _plain_env(container)
    for entry in container.get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            env[entry["name"]] = _secret_value(resources, ref)
    return env


def _ports(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: int(p["containerPort"]) for p in container.get("ports", [])}


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("PLAINTEXT://").rpartition(":")
    return host, int(port)


def test_every_manifest_passes_the_schema_linter_offline() -> None:
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail(LINTER_HINT)
    latest = kubernetes_validate.latest_version()
    checked = 0
    for path, doc in manifests():
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(doc, latest if version == "latest" else version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(
                    f"{path.name}: {doc['kind']}/{doc['metadata']['name']} ({version}): {exc.message}"
                )
            checked += 1
    assert checked >= 2 * 12
    # the linter does reject what a cluster would: a misspelt field
    broken = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"selectr": {}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, latest, strict=True)


def test_the_kustomization_applies_every_manifest_in_one_namespace(
    resources: dict[tuple[str, str], dict[str, Any]],
) -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    files = sorted(p.name for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == files
    (namespace,) = [name for kind, name in resources if kind == "Namespace"]
    assert kustomization["namespace"] == namespace
    images = {
        c["image"].split(":")[0]
        for r in resources.values()
        if r["kind"] in WORKLOADS
        for c in _pod(r)["spec"]["containers"]
    }
    assert {i["name"] for i in kustomization["images"]} == {i for i in images if i.startswith("llmpulse-")}
    for resource in resources.values():
        assert "namespace" not in resource["metadata"], "the kustomization sets the namespace"


def kustomize_binary() -> Path:
    """``.cache/kustomize/bin/kustomize`` in this checkout, else ``kustomize`` on PATH."""
    built = REPO / ".cache" / "kustomize" / "bin" / "kustomize"
    found = built if built.is_file() and os.access(built, os.X_OK) else None
    on_path = shutil.which("kustomize")
    if found is None and on_path is None:
        pytest.fail(
            "kustomize is not built: run scripts/build_kustomize.sh (or `make setup`), which builds "
            "sigs.k8s.io/kustomize/kustomize/v5 into .cache/kustomize/bin"
        )
    return found or Path(str(on_path))


def test_kustomize_renders_every_resource_into_the_namespace_with_the_images(
    resources: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """What ``kubectl apply -k deploy/kubernetes`` sends, rendered by kustomize itself."""
    import kubernetes_validate

    done = subprocess.run(
        [str(kustomize_binary()), "build", str(DEPLOY)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    rendered = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(done.stdout) if d}
    assert set(rendered) == set(resources)
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    tags = {i["name"]: f"{i['name']}:{i['newTag']}" for i in kustomization["images"]}
    for key, doc in rendered.items():
        if key[0] != "Namespace":
            assert doc["metadata"]["namespace"] == kustomization["namespace"], key
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
        if key[0] in WORKLOADS:
            for container in _pod(doc)["spec"]["containers"]:
                name = container["image"].split(":")[0]
                assert container["image"] == tags.get(name, container["image"]), key
    config = rendered[("ConfigMap", "llmpulse-collector-config")]["data"]["otel-collector-kafka.yaml"]
    assert config == (REPO / "otel-collector-kafka.yaml").read_text()


def test_generated_config_maps_are_the_shipped_files(
    resources: dict[tuple[str, str], dict[str, Any]],
) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "render_kubernetes.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    collector = resources[("ConfigMap", "llmpulse-collector-config")]["data"]
    assert collector == {"otel-collector-kafka.yaml": (REPO / "otel-collector-kafka.yaml").read_text()}
    rules = resources[("ConfigMap", "llmpulse-prometheus-rules")]["data"]
    assert rules == {p.name: p.read_text() for p in (REPO / "alerting" / "rules").glob("*.yml")}


def test_workloads_select_their_pods_have_resources_and_services_reach_named_ports(
    resources: dict[tuple[str, str], dict[str, Any]],
) -> None:
    pods = {}
    for (kind, name), resource in resources.items():
        if kind not in WORKLOADS:
            continue
        labels = _pod(resource)["metadata"]["labels"]
        if kind != "Job":
            selector = resource["spec"]["selector"]["matchLabels"]
            assert selector.items() <= labels.items(), name
            pods[name] = resource
        for container in _pod(resource)["spec"]["containers"]:
            limits = container["resources"]
            assert limits["requests"]["cpu"] and limits["requests"]["memory"], (name, container["name"])
            assert limits["limits"]["memory"], (name, container["name"])
    for (kind, name), service in resources.items():
        if kind != "Service":
            continue
        targets = [
            r
            for r in pods.values()
            if service["spec"]["selector"].items() <= _pod(r)["metadata"]["labels"].items()
        ]
        assert len(targets) == 1, f"Service {name} selects {len(targets)} workloads"
        named = {n for c in _pod(targets[0])["spec"]["containers"] for n in _ports(c)}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in named, (name, port)
    for (kind, name), resource in resources.items():
        if kind == "StatefulSet":
            service = resources[("Service", resource["spec"]["serviceName"])]
            assert service["spec"]["clusterIP"] == "None", f"{name}: its serviceName must be headless"
            mounts = {m["name"]: m["mountPath"] for m in _container(resource)["volumeMounts"]}
            (claim,) = resource["spec"]["volumeClaimTemplates"]
            assert claim["metadata"]["name"] in mounts, name


def test_the_processor_replicas_read_kafka_and_the_shared_store_with_the_real_settings(
    resources: dict[tuple[str, str], dict[str, Any]],
) -> None:
    deployment = resources[("Deployment", "llmpulse-processor")]
    container = _container(deployment)
    names = [e["name"] for e in container["env"]]
    known = {field.env for field in settings.FIELDS} | {engines.ENV_STORE_URL}
    assert set(names) <= known, f"not llmpulse settings: {sorted(set(names) - known)}"
    store_ref = next(e for e in container["env"] if e["name"] == E.LLMPULSE_STORE_URL)["valueFrom"][
        "secretKeyRef"
    ]
    assert store_ref == {"name": "llmpulse-postgres", "key": "store-url"}
    env = _env(resources, container)
    resolved = settings.resolve(environ={**image_env(), **env})
    assert (resolved.kafka_topic, resolved.kafka_group, resolved.kafka_owner_topic) == (
        replicas.TOPIC,
        replicas.GROUP,
        replicas.OWNER_TOPIC,
    )
    host, port = _host_port(resolved.kafka_brokers or "")
    kafka_service = resources[("Service", host)]
    assert port in {p["port"] for p in kafka_service["spec"]["ports"]}
    # the admin port is the processor's default, the one the image exposes and Prometheus expects
    assert _ports(container) == {"admin": settings.Settings().admin_port} == {"admin": resolved.admin_port}
    assert "EXPOSE 4317 4318 9464" in (REPO / "Dockerfile").read_text()
    # distinct pod names are the replicas' identities (Kafka client id, router transactional id)
    assert "hostname" not in _pod(deployment)["spec"] and "subdomain" not in _pod(deployment)["spec"]
    assert deployment["spec"]["replicas"] >= 2
    assert _pod(deployment)["metadata"]["annotations"]["prometheus.io/scrape"] == "false"
    # the probes answer 200 through the real admin handler, Host being the pod's address
    guard = AdminGuard(
        bind_host=resolved.admin_host,
        auth_token=resolved.auth_token,
        allowed_hosts=resolved.admin_allowed_hosts,
    )
    handler = AdminHandler(lambda accept: (b"", "text/plain"), status=dict, ready=lambda: True, guard=guard)
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = container[probe]["httpGet"]
        assert (get["path"], get["port"]) == (path, "admin"), probe
        request = Request("GET", get["path"], "", {"host": f"10.42.0.7:{resolved.admin_port}"}, b"")
        response = asyncio.run(handler(request))
        assert response.status == 200, (probe, response.body)
    assert resolved.admin_host == "0.0.0.0"  # the kubelet and Prometheus reach the pod's address
    # and nothing reaches the OTLP receivers, over the image's LLMPULSE_HOST=0.0.0.0: spans come
    # through Kafka only
    assert (
        resolved.host == "127.0.0.1"
        and "ENV PATH=/opt/llmpulse/bin:$PATH" in (REPO / "Dockerfile").read_text()
    )


def test_the_store_secret_points_at_the_postgres_service_with_its_password(
    resources: dict[tuple[str, str], dict[str, Any]],
) -> None:
    secret = resources[("Secret", "llmpulse-postgres")]["stringData"]
    store_url = engines.quality_settings({}, {E.LLMPULSE_STORE_URL: secret["store-url"]}).store_url
    url = urlsplit(store_url or "")
    postgres = resources[("StatefulSet", "postgres")]
    pg = _container(postgres)
    pg_env = _env(resources, pg)
    service = resources[("Service", url.hostname or "")]
    assert url.port in {p["port"] for p in service["spec"]["ports"]}
    assert service["spec"]["selector"].items() <= _pod(postgres)["metadata"]["labels"].items()
    assert (url.username, url.password, url.path) == (
        pg_env["POSTGRES_USER"],
        pg_env["POSTGRES_PASSWORD"],
        f"/{pg_env['POSTGRES_DB']}",
    )
    mount = next(m["mountPath"] for m in pg["volumeMounts"] if m["name"] == "data")
    assert pg_env["PGDATA"].startswith(mount + "/"), "PGDATA must be a subdirectory of the volume"


def test_kafka_is_one_kraft_node_with_the_topics_the_replicas_read(
    resources: dict[tuple[str, str], dict[str, Any]],
) -> None:
    kafka = resources[("StatefulSet", "kafka")]
    env = _env(resources, _container(kafka))
    assert kafka["spec"]["replicas"] == 1 and env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    # the StorageTool takes a 16-byte id in unpadded base64url
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16
    assert not env["CLUSTER_ID"].startswith("-"), "the StorageTool would read it as an option"
    host, port = _host_port(env["KAFKA_ADVERTISED_LISTENERS"])
    assert host == f"{kafka['metadata']['name']}-0.{kafka['spec']['serviceName']}"
    assert port == _ports(_container(kafka))["kafka"]
    mount = next(m["mountPath"] for m in _container(kafka)["volumeMounts"] if m["name"] == "data")
    assert env["KAFKA_LOG_DIRS"].startswith(mount + "/")
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    job = resources[("Job", "llmpulse-kafka-topics")]
    (script,) = _container(job)["args"]
    loop = re.fullmatch(r"for topic in ([\w\- ]+); do (.+); done", script)
    assert loop and loop.group(1).split() == [replicas.TOPIC, replicas.OWNER_TOPIC], script
    assert "--bootstrap-server kafka:9092" in loop.group(2)
    partitions = int(re.search(r"--partitions (\d+)", loop.group(2)).group(1))  # type: ignore[union-attr]
    assert partitions >= replicas.partitions_for(
        resources[("Deployment", "llmpulse-processor")]["spec"]["replicas"]
    )
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["kafka"]
    assert compose["image"] == _container(kafka)["image"] == _container(job)["image"]


def test_the_collector_runs_the_shipped_kafka_pipeline(
    resources: dict[tuple[str, str], dict[str, Any]],
) -> None:
    deployment = resources[("Deployment", "llmpulse-collector")]
    container = _container(deployment)
    (config_arg,) = [a for a in container["args"] if a.startswith("--config=")]
    directory, _, key = config_arg.removeprefix("--config=").rpartition("/")
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == directory)
    volume = next(v for v in _pod(deployment)["spec"]["volumes"] if v["name"] == mount["name"])
    config_map = resources[("ConfigMap", volume["configMap"]["name"])]
    assert key in config_map["data"]
    env = _env(resources, container)
    referenced = set(re.findall(r"\$\{env:(LLMPULSE_[A-Z_]+)", config_map["data"][key]))
    assert set(env) <= referenced, f"set but not read by the pipeline: {sorted(set(env) - referenced)}"
    ports = _ports(container)
    for variable, name in (
        (E.LLMPULSE_COLLECTOR_GRPC_ENDPOINT, "otlp-grpc"),
        (E.LLMPULSE_COLLECTOR_HTTP_ENDPOINT, "otlp-http"),
        (E.LLMPULSE_COLLECTOR_HEALTH_ENDPOINT, "health"),
    ):
        host, port = _host_port(env[variable])
        assert host == "0.0.0.0" and ports[name] == port, variable
    assert ports["metrics"] == int(env[E.LLMPULSE_COLLECTOR_METRICS_PORT])
    assert container["readinessProbe"]["httpGet"]["port"] == "health"
    processor_env = _plain_env(_container(resources[("Deployment", "llmpulse-processor")]))
    assert env[E.LLMPULSE_KAFKA_BROKERS] == processor_env[E.LLMPULSE_KAFKA_BROKERS]
    assert env[E.LLMPULSE_KAFKA_TOPIC] == processor_env[E.LLMPULSE_KAFKA_TOPIC]
    done = subprocess.run(
        [str(components.find_collector()), "validate", f"--config={REPO / 'otel-collector-kafka.yaml'}"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), **env},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.prometheus3  # the Prometheus a cluster runs is likely 3.x
def test_prometheus_finds_every_pod_by_dns_in_the_jobs_the_rules_expect(
    resources: dict[tuple[str, str], dict[str, Any]], tmp_path: Path
) -> None:
    text = resources[("ConfigMap", "llmpulse-prometheus-config")]["data"]["prometheus.yml"]
    (tmp_path / "prometheus.yml").write_text(text)
    done = subprocess.run(
        [str(components.promtool_binary()), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    config = yaml.safe_load(text)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    rules = "\n".join(p.read_text() for p in (REPO / "alerting" / "rules").glob("*.yml"))
    for job in jobs:
        assert f'job="{job}"' in rules, f"no rule reads job {job}"
    (namespace,) = [name for kind, name in resources if kind == "Namespace"]
    for job, deployment in (
        ("llmpulse-processor", "llmpulse-processor"),
        ("otel-collector", "llmpulse-collector"),
    ):
        pod = _pod(resources[("Deployment", deployment)])
        (sd,) = jobs[job]["dns_sd_configs"]
        (name,) = sd["names"]
        service_name, service_namespace, svc = name.split(".")
        assert (service_namespace, svc, sd["type"]) == (namespace, "svc", "A"), job
        service = resources[("Service", service_name)]
        # one address per pod, and a crashing pod's too (so its `up` is 0, not absent)
        assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"], job
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items(), job
        (port,) = service["spec"]["ports"]
        assert sd["port"] == port["port"] == _ports(pod["spec"]["containers"][0])[port["targetPort"]], job
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
