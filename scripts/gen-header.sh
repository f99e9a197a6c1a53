#!/usr/bin/env bash
# Regenerates include/otel_thread_ctx.h from the Rust sources; with --check, fails instead when
# the committed header differs from what cbindgen generates now.
set -euo pipefail
. "$(dirname "$0")/common.sh"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
cbindgen --quiet --config cbindgen.toml --crate otel-thread-ctx --output "$tmp" .
if [ "${1:-}" != --check ]; then
  cp "$tmp" include/otel_thread_ctx.h
elif ! diff -u include/otel_thread_ctx.h "$tmp"; then
  die "include/otel_thread_ctx.h is stale: run scripts/gen-header.sh and commit the result"
fi
