#!/usr/bin/env bash
# Build the Docker Compose v2 client (github.com/docker/compose/v5) from the Go module proxy into
# .cache/compose/docker-compose, idempotently: rebuilt only when the pinned version or the Go
# toolchain changes. tests/stack/test_compose.py runs `docker-compose config` with it to check
# docker-compose.yml's default and `replicas` profiles; `config` needs no Docker engine.
#
# `go install module@version` refuses this module (its go.mod has `exclude` directives), so the
# module is downloaded, copied out of the read-only module cache, and built in that copy.
# A cold build took ~4 min on this project's loaded 2-core machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/.cache/compose"
VERSION="v5.6.0"
MODULE="github.com/docker/compose/v5"

step() { printf '==> %s\n' "$*"; }
die() { printf 'build_compose: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "Go is needed to build Docker Compose; install it from your distribution or go.dev"
mkdir -p "$OUT"
BIN="$OUT/docker-compose"
STAMP="$OUT/version"
want="docker-compose $VERSION $(go env GOVERSION)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$BIN" ]; then
  step "Docker Compose $VERSION: up to date ($BIN)"
  exit 0
fi

start=$(date +%s)
step "Building Docker Compose $VERSION (go mod download + go build from the Go module proxy, ~4 min cold)"
log="$OUT/build.log"
src="$OUT/src"
{
  dir="$(cd "$OUT" && GOFLAGS=-mod=mod go mod download -json "$MODULE@$VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -n "$dir" ] || { echo "go mod download gave no module directory"; exit 1; }
  rm -rf "$src" && cp -r "$dir" "$src" && chmod -R u+w "$src"
  (cd "$src" && go build -trimpath -o "$BIN.new" \
    -ldflags "-s -w -X $MODULE/internal.Version=$VERSION" ./cmd)
  mv "$BIN.new" "$BIN"
} >"$log" 2>&1 || { tail -n 30 "$log" >&2; die "Docker Compose build failed (full log: $log)"; }
rm -rf "$src"
echo "$want" >"$STAMP"
step "Docker Compose built in $(( $(date +%s) - start ))s: $("$BIN" version 2>&1 | head -n1)"
