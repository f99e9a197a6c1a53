#!/usr/bin/env bash
# Runs the .NET solution's tests (dotnet/OtelThreadContext.sln): bindings drift and exports,
# record layout, ThreadContext and ThreadContextHandle behaviour, the signal-sampled stress test,
# 10,000 exiting threads, and the NuGet package in a fresh consumer. Needs dotnet, gcc, readelf,
# and the AArch64 cross toolchain (scripts/pack.sh builds the linux-arm64 library too).
#
# The package and the tests use the release native library (the build that ships); it is built
# here first (a no-op when it is current). Override with OTEL_NATIVE_LIBRARY=/path/to/.so.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# The package test restores what scripts/pack.sh writes (both runtimes, release): pack first. It
# also builds target/release/libotel_thread_ctx.so, which the other tests load.
./scripts/pack.sh
lib="${OTEL_NATIVE_LIBRARY:-$root/target/release/libotel_thread_ctx.so}"
[ -f "$lib" ] || { echo "test-dotnet: native library $lib not found" >&2; exit 1; }

# Detailed console output shows each test's own report (stress counts, package layout).
dotnet test dotnet/OtelThreadContext.sln -p:OtelNativeLibrary="$lib" \
  --logger "console;verbosity=detailed"
