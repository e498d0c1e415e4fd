#!/usr/bin/env bash
# Type-check the llmpulse package as it is laid out once installed.
#
# The source folders core/, instrumentation/, processor/ and console/ become one package
# `llmpulse` only through the build backend's mapping, which mypy cannot follow.
# So this script lays out that package as symlinks under .cache/typecheck/ and
# runs mypy (configured in pyproject.toml) on it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TREE="$ROOT/.cache/typecheck"
rm -rf "$TREE" && mkdir -p "$TREE/llmpulse"
for entry in "$ROOT"/core/*; do
  ln -s "$entry" "$TREE/llmpulse/$(basename "$entry")"
done
ln -s "$ROOT/instrumentation" "$TREE/llmpulse/instrumentation"
ln -s "$ROOT/processor" "$TREE/llmpulse/processor"
ln -s "$ROOT/console" "$TREE/llmpulse/console"
cd "$ROOT"
exec "${MYPY:-$ROOT/.venv/bin/mypy}" --config-file pyproject.toml --cache-dir "$ROOT/.cache/mypy" "$TREE/llmpulse"
