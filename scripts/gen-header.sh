#!/usr/bin/env bash
# Regenerates what is generated from the Rust sources under native/: include/otel_thread_ctx.h
# (cbindgen) and the .NET P/Invoke declarations (tools/gen-bindings):
# dotnet/OtelThreadContext/NativeMethods.g.cs, and dotnet/OtelThreadContext.Tests/TestNativeMethods.g.cs
# for the test hooks. With --check, fails instead when a committed file differs from what is
# generated now (tests/header.rs runs that).
set -euo pipefail
. "$(dirname "$0")/common.sh"
mode="${1:-}"
case "$mode" in "" | --check) ;; *) die "usage: $0 [--check]" ;; esac
stale=0
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
cbindgen --quiet --config cbindgen.toml --crate otel-thread-ctx --output "$tmp" .
if [ -z "$mode" ]; then
  cp "$tmp" include/otel_thread_ctx.h
elif ! diff -u include/otel_thread_ctx.h "$tmp"; then
  echo "gen-header: include/otel_thread_ctx.h is stale: run scripts/gen-header.sh and commit the result" >&2
  stale=1
fi
# A target directory of its own: tests/header.rs runs this inside `cargo test`, which holds target/'s lock.
cargo run --quiet -p gen-bindings --target-dir target/gen-bindings -- \
  --root native/lib.rs --namespace OtelThreadContext --class NativeMethods --library LibraryName \
  --out dotnet/OtelThreadContext/NativeMethods.g.cs \
  --test-feature test-hooks --test-namespace OtelThreadContext.Tests --test-class TestNativeMethods \
  --test-library NativeMethods.LibraryName --test-out dotnet/OtelThreadContext.Tests/TestNativeMethods.g.cs \
  $mode || stale=1
exit "$stale"
