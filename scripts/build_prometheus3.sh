#!/usr/bin/env bash
# Build Prometheus 3 (server and promtool) and a current Alertmanager (and amtool) from the Go
# module proxy into .cache/prometheus3/bin, idempotently: rebuilt only when a pinned version, the
# build tags or the Go toolchain change. scripts/bootstrap.sh runs it on every setup, like the
# collector build, so `make test` runs the rule tests on Debian's promtool 2.42 and this one, and
# the stack tests marked `prometheus3` on these binaries too (the Makefile's pytest target).
#
# Prometheus is built with `-tags remove_all_sd,enable_dns_sd`: its plugins/plugin_*.go files
# (`//go:build !remove_all_sd || enable_X_sd`) then leave out every service discovery but file
# and HTTP (plugins/minimum.go, always in) and DNS (deploy/kubernetes' prometheus.yml uses
# dns_sd_configs, which tests/deploy checks with promtool); static_configs, which llmpulse's own
# configs use, are no discovery plugin. That drops the cloud discovery clients (AWS EC2, Azure
# compute and network, Google Compute, ...: 237 of 1,527 packages, the slowest to compile): from
# empty Go module and build caches, Prometheus and promtool took 372 s on this project's loaded
# 2-core machine (676 s in the same hour with every discovery; 33 min on a more loaded day),
# Alertmanager and amtool 61 s more; 2 s with warm Go caches (figures in docs/stack.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/.cache/prometheus3"
# Prometheus 3.x is published as Go module versions v0.3XX.Y for release 3.XX.Y.
PROMETHEUS_MODULE_VERSION="v0.316.0"
PROMETHEUS_RELEASE="3.16.0"
ALERTMANAGER_VERSION="v0.35.0"
PROMETHEUS_TAGS="remove_all_sd,enable_dns_sd"

step() { printf '==> %s\n' "$*"; }
die() { printf 'build_prometheus3: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "Go is needed to build Prometheus 3; install it from your distribution or go.dev"
mkdir -p "$OUT/bin"
STAMP="$OUT/versions"
want="prometheus $PROMETHEUS_MODULE_VERSION tags $PROMETHEUS_TAGS alertmanager $ALERTMANAGER_VERSION $(go env GOVERSION)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
  && [ -x "$OUT/bin/prometheus" ] && [ -x "$OUT/bin/promtool" ] \
  && [ -x "$OUT/bin/alertmanager" ] && [ -x "$OUT/bin/amtool" ]; then
  step "Prometheus $PROMETHEUS_RELEASE and Alertmanager $ALERTMANAGER_VERSION: up to date ($OUT/bin)"
  exit 0
fi

start=$(date +%s)
version_flag() { echo "-X github.com/prometheus/common/version.Version=$1"; }
log="$OUT/build.log"
fail() { tail -n 30 "$log" >&2; die "$1 build failed (full log: $log)"; }
step "Building Prometheus $PROMETHEUS_RELEASE (module $PROMETHEUS_MODULE_VERSION, tags $PROMETHEUS_TAGS) and promtool (go install; cold: minutes)"
GOBIN="$OUT/bin" go install -tags "$PROMETHEUS_TAGS" -ldflags "$(version_flag "$PROMETHEUS_RELEASE")" \
  "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_MODULE_VERSION" \
  "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_MODULE_VERSION" >"$log" 2>&1 \
  || fail Prometheus

# The Alertmanager module carries no built web UI, yet embeds ui/app/dist: build a copy of the
# module with an empty UI (llmpulse uses its API and amtool only).
step "Building Alertmanager $ALERTMANAGER_VERSION and amtool (go build; its web UI left empty)"
src="$(go mod download -json "github.com/prometheus/alertmanager@$ALERTMANAGER_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[ -d "$src" ] || die "go mod download found no source for github.com/prometheus/alertmanager@$ALERTMANAGER_VERSION"
work="$OUT/alertmanager-src"
rm -rf "$work" && cp -r "$src" "$work" && chmod -R u+w "$work"
for ui in elm mantine; do
  mkdir -p "$work/ui/app/dist/$ui"
  echo '<!doctype html><title>Alertmanager</title><p>Web UI not built; the API is at /api/v2.' \
    >"$work/ui/app/dist/$ui/index.html"
done
(cd "$work" && go build -ldflags "$(version_flag "${ALERTMANAGER_VERSION#v}")" -o "$OUT/bin/" \
  ./cmd/alertmanager ./cmd/amtool) >>"$log" 2>&1 || fail Alertmanager
rm -rf "$work"

# Debian's names, so that a PATH with this directory first finds these binaries everywhere.
ln -sf alertmanager "$OUT/bin/prometheus-alertmanager"
echo "$want" >"$STAMP"
step "Built in $(( $(date +%s) - start ))s: $("$OUT/bin/prometheus" --version 2>&1 | head -n1); alertmanager $("$OUT/bin/alertmanager" --version 2>&1 | head -n1 | awk '{print $3}')"
