#!/usr/bin/env bash
# Install or build everything llmpulse needs on this machine, idempotently.
#
#   1. Prometheus and Alertmanager (Debian packages `prometheus`, `prometheus-alertmanager`)
#   1b. PostgreSQL 15 (Debian package `postgresql`), for the shared-state store's tests and
#      `[quality] store_url`; only its binaries are used (tests start throwaway clusters)
#   1c. the Apache Kafka 4.4 broker's jars (org.apache.kafka:kafka_2.13 + kafka-tools from Maven
#      Central, scripts/kafka/pom.xml, into .cache/kafka/lib; run on the machine's Java 17) for the
#      Kafka source's tests and benchmarks (tests start throwaway single-node KRaft brokers)
#   2. the OpenTelemetry Collector Builder (Go module) and our collector, built from
#      collector/builder-config.yaml into .cache/collector/ (rebuilt only when the
#      manifest or the builder version changes)
#   2b. Prometheus 3.16 and Alertmanager 0.35 (with promtool and amtool) from the Go module proxy
#      into .cache/prometheus3/bin (scripts/build_prometheus3.sh; service discovery left out, ~7 min
#      cold): `make test` runs the rule tests and the tests marked prometheus3 on them too
#   2c. VictoriaMetrics single-node v1.151.0 from the Go module proxy into .cache/victoriametrics/bin
#      (scripts/build_victoriametrics.sh; ~1-2 min cold), the remote-write store of docs/kafka.md
#   2d. the Docker Compose v2 client (github.com/docker/compose/v5 v5.6.0) from the Go module proxy
#      into .cache/compose (scripts/build_compose.sh; ~4 min cold): tests/stack/test_compose_replicas.py
#      runs `docker-compose config` on docker-compose.yml's profiles (no Docker engine needed)
#   2e. kustomize v5.8.2 from the Go module proxy into .cache/kustomize/bin (scripts/build_kustomize.sh):
#      tests/deploy/test_kubernetes.py renders deploy/kubernetes with it, as `kubectl apply -k` would
#   3. Debian's `chromium` for the console's browser tests (Playwright drives /usr/bin/chromium;
#      it never downloads a browser of its own)
#   4. the Python virtualenv .venv with llmpulse installed editable, extras processor+demo+console+dev
#      (reinstalled only when pyproject.toml, the build hooks or the C reader change; an
#      editable install builds the C reader processor/pipeline/_otlp.c in place)
#
# Each step prints one line saying what it did. Called by `make setup`, which the
# README's run and test commands both go through.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
BUILDER_VERSION="v0.165.0"
GO_MIN_MINOR=25
PYTHON="${PYTHON:-python3}"

step() { printf '==> %s\n' "$*"; }
die() { printf 'bootstrap: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

# --- 1. Prometheus and Alertmanager ------------------------------------------------------
missing=()
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
if [ ${#missing[@]} -eq 0 ]; then
  step "Prometheus and Alertmanager: already installed ($(prometheus --version 2>&1 | head -n1 | awk '{print $3}'), alertmanager $(prometheus-alertmanager --version 2>&1 | head -n1 | awk '{print $3}'))"
else
  step "Installing Debian packages: ${missing[*]} (apt-get)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packages start system services on install where an init system runs; llmpulse
  # starts its own instances on loopback ports, so stop those to keep 9090/9093 free.
  for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
    as_root systemctl stop "$svc" >/dev/null 2>&1 || true
  done
  step "Installed: $(prometheus --version 2>&1 | head -n1)"
fi

# --- 1b. PostgreSQL ------------------------------------------------------------------------
PG_BIN="${LLMPULSE_PG_BIN:-/usr/lib/postgresql/15/bin}"
if [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/postgres" ] && [ -x "$PG_BIN/pg_ctl" ]; then
  step "PostgreSQL: already installed ($("$PG_BIN/postgres" --version))"
else
  step "Installing Debian package: postgresql (apt-get)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  # The package may start its default cluster where an init system runs; llmpulse starts its own.
  as_root systemctl stop postgresql >/dev/null 2>&1 || true
  step "Installed: $("$PG_BIN/postgres" --version)"
fi

# --- 1c. Apache Kafka broker jars ---------------------------------------------------------
KAFKA_POM="$ROOT/scripts/kafka/pom.xml"
KAFKA_LIB="$CACHE/kafka/lib"
KAFKA_STAMP="$CACHE/kafka/pom.sha256"
want_kafka="$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)"
if [ -f "$KAFKA_STAMP" ] && [ "$(cat "$KAFKA_STAMP")" = "$want_kafka" ] && ls "$KAFKA_LIB"/kafka_2.13-*.jar >/dev/null 2>&1; then
  step "Kafka broker jars: up to date ($KAFKA_LIB, $(ls "$KAFKA_LIB" | wc -l) jars)"
else
  kafka_pkgs=()
  command -v java >/dev/null 2>&1 || kafka_pkgs+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null 2>&1 || kafka_pkgs+=(maven)
  if [ ${#kafka_pkgs[@]} -gt 0 ]; then
    step "Installing Debian packages: ${kafka_pkgs[*]} (apt-get; Java runs the Kafka broker, Maven fetches it)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${kafka_pkgs[@]}" >/dev/null
  fi
  step "Fetching the Kafka broker's jars from Maven Central (mvn dependency:copy-dependencies, ~10-30 s)"
  rm -rf "$KAFKA_LIB" && mkdir -p "$KAFKA_LIB"
  mvnlog="$CACHE/kafka/mvn.log"
  mvn -B -q -f "$KAFKA_POM" dependency:copy-dependencies -DoutputDirectory="$KAFKA_LIB" >"$mvnlog" 2>&1 \
    || { tail -n 30 "$mvnlog" >&2; die "fetching the Kafka jars failed (full log: $mvnlog)"; }
  echo "$want_kafka" >"$KAFKA_STAMP"
  step "Kafka broker jars: $(ls "$KAFKA_LIB" | wc -l) jars in $KAFKA_LIB"
fi

# --- 2. The collector --------------------------------------------------------------------
command -v go >/dev/null 2>&1 || die "Go >= 1.$GO_MIN_MINOR is needed to build the collector; install it from your distribution or go.dev"
go_minor="$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')"
[ "$go_minor" -ge "$GO_MIN_MINOR" ] || die "Go $(go env GOVERSION) is too old: the collector builder needs go1.$GO_MIN_MINOR or newer"

mkdir -p "$CACHE/go-bin" "$CACHE/collector"
BUILDER="$CACHE/go-bin/builder"
if [ -x "$BUILDER" ] && "$BUILDER" version 2>&1 | grep -q "${BUILDER_VERSION#v}"; then
  step "OpenTelemetry Collector Builder $BUILDER_VERSION: already installed"
else
  step "Installing OpenTelemetry Collector Builder $BUILDER_VERSION (go install)"
  GOBIN="$CACHE/go-bin" go install "go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION"
fi

MANIFEST="$ROOT/collector/builder-config.yaml"
COLLECTOR="$CACHE/collector/llmpulse-otelcol"
STAMP="$CACHE/collector/manifest.sha256"
want="$( (cat "$MANIFEST"; echo "$BUILDER_VERSION"; go env GOVERSION) | sha256sum | cut -d' ' -f1)"
if [ -x "$COLLECTOR" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  step "Collector: up to date ($COLLECTOR)"
else
  step "Building the collector from collector/builder-config.yaml (first build downloads Go modules, ~1-3 min)"
  work="$CACHE/collector/src"
  rm -rf "$work" && mkdir -p "$work"
  sed "s#^\(\s*output_path:\).*#\1 $work#" "$MANIFEST" >"$work/builder-config.yaml"
  start=$(date +%s)
  (cd "$work" && "$BUILDER" --config builder-config.yaml >"$work/build.log" 2>&1) \
    || { tail -n 30 "$work/build.log" >&2; die "collector build failed (full log: $work/build.log)"; }
  cp "$work/llmpulse-otelcol" "$COLLECTOR"
  echo "$want" >"$STAMP"
  step "Collector built in $(( $(date +%s) - start ))s: $COLLECTOR"
fi

# --- 2b. Prometheus 3 and a current Alertmanager (beside Debian's 2.42 and 0.25) -----------
bash "$ROOT/scripts/build_prometheus3.sh"

# --- 2c. VictoriaMetrics (the remote-write store of docs/kafka.md's tested snippet) ---------
bash "$ROOT/scripts/build_victoriametrics.sh"

# --- 2d. Docker Compose (checks docker-compose.yml's profiles with `docker-compose config`) --
bash "$ROOT/scripts/build_compose.sh"

# --- 2e. kustomize (renders deploy/kubernetes in the tests) ----------------------------------
bash "$ROOT/scripts/build_kustomize.sh"

# --- 3. Chromium for the browser tests ---------------------------------------------------
if [ -x /usr/bin/chromium ]; then
  step "Chromium: already installed ($(/usr/bin/chromium --version 2>/dev/null | head -n1))"
else
  step "Installing Debian package: chromium (apt-get; the console's browser tests drive it)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  step "Installed: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
fi

# --- 4. Python virtualenv ---------------------------------------------------------------
VENV="$ROOT/.venv"
PYSTAMP="$VENV/.llmpulse-pyproject.sha256"
want_py="$(sha256sum "$ROOT/pyproject.toml" "$ROOT/setup_hooks.py" "$ROOT/processor/pipeline/_otlp.c" | sha256sum | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && [ -f "$PYSTAMP" ] && [ "$(cat "$PYSTAMP")" = "$want_py" ]; then
  step "Python environment: up to date ($VENV)"
else
  step "Installing llmpulse with extras processor,demo,console,dev into $VENV (pip)"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  mkdir -p "$CACHE"
  piplog="$CACHE/pip-install.log"
  { "$VENV/bin/python" -m pip install --upgrade pip \
      && "$VENV/bin/python" -m pip install -e "$ROOT[processor,demo,console,dev]"; } >"$piplog" 2>&1 \
    || { tail -n 30 "$piplog" >&2; die "pip install failed (full log: $piplog)"; }
  echo "$want_py" >"$PYSTAMP"
  step "Python environment ready: $("$VENV/bin/python" --version), llmpulse $("$VENV/bin/python" -c 'import llmpulse; print(llmpulse.__version__)')"
fi
