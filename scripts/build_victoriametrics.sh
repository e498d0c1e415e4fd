#!/usr/bin/env bash
# Build VictoriaMetrics single-node (the remote-write store of docs/kafka.md, "Remote write to a
# horizontally scalable store") from the Go module proxy into .cache/victoriametrics/bin,
# idempotently: rebuilt only when the pinned version or the Go toolchain changes.
# A cold build (empty Go module and build caches) took 72 s on this project's loaded 2-core
# machine, so scripts/bootstrap.sh runs it on every setup, like the collector build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/.cache/victoriametrics"
VERSION="v1.151.0"
MODULE="github.com/VictoriaMetrics/VictoriaMetrics"

step() { printf '==> %s\n' "$*"; }
die() { printf 'build_victoriametrics: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "Go is needed to build VictoriaMetrics; install it from your distribution or go.dev"
mkdir -p "$OUT/bin"
STAMP="$OUT/version"
want="victoriametrics $VERSION $(go env GOVERSION)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$OUT/bin/victoria-metrics" ]; then
  step "VictoriaMetrics $VERSION: up to date ($OUT/bin/victoria-metrics)"
  exit 0
fi

start=$(date +%s)
step "Building VictoriaMetrics $VERSION single-node (go install from the Go module proxy)"
log="$OUT/build.log"
GOBIN="$OUT/bin" go install \
  -ldflags "-X $MODULE/lib/buildinfo.Version=victoria-metrics-$VERSION" \
  "$MODULE/app/victoria-metrics@$VERSION" >"$log" 2>&1 \
  || { tail -n 30 "$log" >&2; die "VictoriaMetrics build failed (full log: $log)"; }
echo "$want" >"$STAMP"
step "VictoriaMetrics built in $(( $(date +%s) - start ))s: $("$OUT/bin/victoria-metrics" -version 2>&1 | head -n1)"
