#!/usr/bin/env bash
# Regenerates include/otel_thread_ctx.h from the Rust sources (or, with --check, fails when the
# committed header differs from what cbindgen generates now).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/include/otel_thread_ctx.h"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
(cd "$root" && cbindgen --quiet --config cbindgen.toml --crate otel-thread-ctx --output "$tmp" .)
if [ "${1:-}" = "--check" ]; then
  if ! diff -u "$out" "$tmp"; then
    echo "include/otel_thread_ctx.h is stale: run scripts/gen-header.sh and commit the result" >&2
    exit 1
  fi
else
  cp "$tmp" "$out"
fi
