#!/usr/bin/env bash
# Runs the .NET solution's tests (README, .NET tests). The package test restores what
# scripts/pack.sh writes, so this packs first (which builds target/release/libotel_thread_ctx.so).
# The tests load the release build with the test hooks (target/test-hooks). Override with
# OTEL_NATIVE_LIBRARY=/path/to/.so and OTEL_TEST_NATIVE_LIBRARY=/path/to/.so.
set -euo pipefail
. "$(dirname "$0")/common.sh"

./scripts/pack.sh
lib="${OTEL_NATIVE_LIBRARY:-$root/target/release/libotel_thread_ctx.so}"
test_lib="${OTEL_TEST_NATIVE_LIBRARY:-$root/target/test-hooks/release/libotel_thread_ctx.so}"
[ -n "${OTEL_TEST_NATIVE_LIBRARY:-}" ] ||
  cargo build --release --quiet --lib --features test-hooks --target-dir "$root/target/test-hooks"
for f in "$lib" "$test_lib"; do [ -f "$f" ] || die "native library $f not found"; done
# The tests read the process context with the inspector: target/debug/otel-ctx-dump, or OTEL_CTX_DUMP.
[ -n "${OTEL_CTX_DUMP:-}" ] || cargo build --quiet -p otel-ctx-dump

# Detailed console output shows each test's own report (stress counts, package layout).
dotnet test dotnet/OtelThreadContext.sln -p:OtelNativeLibrary="$lib" -p:OtelTestNativeLibrary="$test_lib" \
  --logger "console;verbosity=detailed"
