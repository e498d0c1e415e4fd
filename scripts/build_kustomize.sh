#!/usr/bin/env bash
# Build kustomize (sigs.k8s.io/kustomize/kustomize/v5) from the Go module proxy into
# .cache/kustomize/bin, idempotently: rebuilt only when the pinned version or the Go toolchain
# changes. tests/deploy/test_kubernetes.py renders deploy/kubernetes with it, as
# `kubectl apply -k` would (no cluster needed). v5.8.3 needs Go 1.27; v5.8.2 builds on 1.26.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/.cache/kustomize"
VERSION="v5.8.2"
MODULE="sigs.k8s.io/kustomize/kustomize/v5"

step() { printf '==> %s\n' "$*"; }
die() { printf 'build_kustomize: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "Go is needed to build kustomize; install it from your distribution or go.dev"
mkdir -p "$OUT/bin"
STAMP="$OUT/version"
want="kustomize $VERSION $(go env GOVERSION)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$OUT/bin/kustomize" ]; then
  step "kustomize $VERSION: up to date ($OUT/bin/kustomize)"
  exit 0
fi

start=$(date +%s)
step "Building kustomize $VERSION (go install from the Go module proxy)"
log="$OUT/build.log"
GOBIN="$OUT/bin" go install "$MODULE@$VERSION" >"$log" 2>&1 \
  || { tail -n 30 "$log" >&2; die "kustomize build failed (full log: $log)"; }
echo "$want" >"$STAMP"
step "kustomize built in $(( $(date +%s) - start ))s: $("$OUT/bin/kustomize" version 2>&1 | head -n1)"
