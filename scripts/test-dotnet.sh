#!/usr/bin/env bash
# Runs the .NET solution's tests (dotnet/OtelThreadContext.sln): bindings drift and exports,
# record layout, ThreadContext and ThreadContextHandle behaviour, the signal-sampled stress test,
# 10,000 exiting threads, and the NuGet package in a fresh consumer. Needs dotnet, gcc, readelf,
# and the AArch64 cross toolchain (scripts/pack.sh builds the linux-arm64 library too).
#
# The package uses the release native library (the build that ships); the tests load the same
# release build with the test hooks (cargo feature test-hooks, in target/test-hooks). Both are
# built here first (no-ops when current). Override with OTEL_NATIVE_LIBRARY=/path/to/.so and
# OTEL_TEST_NATIVE_LIBRARY=/path/to/.so.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# The package test restores what scripts/pack.sh writes (both runtimes, release): pack first. It
# also builds target/release/libotel_thread_ctx.so, which the other tests load.
./scripts/pack.sh
lib="${OTEL_NATIVE_LIBRARY:-$root/target/release/libotel_thread_ctx.so}"
[ -f "$lib" ] || { echo "test-dotnet: native library $lib not found" >&2; exit 1; }
test_lib="${OTEL_TEST_NATIVE_LIBRARY:-}"
if [ -z "$test_lib" ]; then
  cargo build --release --quiet --lib --features test-hooks --target-dir "$root/target/test-hooks"
  test_lib="$root/target/test-hooks/release/libotel_thread_ctx.so"
fi
[ -f "$test_lib" ] || { echo "test-dotnet: test native library $test_lib not found" >&2; exit 1; }

# Detailed console output shows each test's own report (stress counts, package layout).
dotnet test dotnet/OtelThreadContext.sln -p:OtelNativeLibrary="$lib" -p:OtelTestNativeLibrary="$test_lib" \
  --logger "console;verbosity=detailed"
