#!/usr/bin/env bash
# Runs every benchmark in one go, BenchmarkDotNet (dotnet/benchmarks) and the native harness
# (bench/), after installing what they need (scripts/setup.sh base), and writes docs/benchmarks.md
# from the results and docs/benchmarks-about.md (scripts/bench-report.py).
#   ./scripts/bench.sh            full run (about 9 minutes); rewrites docs/benchmarks.md
#   ./scripts/bench.sh --smoke    every benchmark once; the page goes to the results folder only
# Builds and results go to target/bench-dotnet/<full|smoke>/ (a private folder: this never races a
# build of the shared projects). OTEL_NATIVE_LIBRARY=/path/to.so benchmarks another library build.
set -euo pipefail
. "$(dirname "$0")/common.sh"
case "${1:-}" in
  "") mode=full calls="${CALLS:-20000000}" rounds="${ROUNDS:-5}" smoke=() ;;
  --smoke) mode=smoke calls=200000 rounds=1 smoke=(--smoke) ;;
  *) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac

setup base
lib="${OTEL_NATIVE_LIBRARY:-$root/target/release/libotel_thread_ctx.so}"
[ -n "${OTEL_NATIVE_LIBRARY:-}" ] || cargo build --release --quiet --lib
[ -f "$lib" ] || die "native library $lib not found"
work="$root/target/bench-dotnet/$mode"
results="$work/results"
rm -rf "$results"
mkdir -p "$results"
dotnet build dotnet/benchmarks/OtelThreadContext.Benchmarks.csproj -c Release -nologo -v quiet \
  --artifacts-path "$work/build" -p:OtelNativeLibrary="$lib"

# How busy the machine is, before and after BenchmarkDotNet: the load averages, the CPU time of
# all processes (/proc/stat) and this shell's children's (`times`, run in this shell).
snapshot() { { date -u +%Y-%m-%dT%H:%M:%SZ; cat /proc/loadavg; grep '^cpu ' /proc/stat; times; } >"$results/$1"; }
snapshot before

echo "=== BenchmarkDotNet ($mode)"
# --request-rounds: first the interleaved request comparison (TestServer); --socket-rounds: then
# the same over Kestrel and loopback sockets. The JIT's code for two writers goes to jit.txt (the
# page shows their final listings).
DOTNET_JitDisasm="DirectWrite RawStoresThreadStatic" DOTNET_JitStdOutFile="$results/jit.txt" \
  dotnet "$work/build/bin/OtelThreadContext.Benchmarks/release/OtelThreadContext.Benchmarks.dll" \
  --artifacts "$results/bdn" --request-rounds 12 20480 \
  --socket-rounds 12 8192 "${smoke[@]}" | tee "$results/bdn.log"
snapshot after

echo "=== native harness ($mode)"
make -s -C bench run LIB="$lib" CALLS="$calls" ROUNDS="$rounds" | tee "$results/native.md"

python3 scripts/bench-report.py "$results" "${lib#"$root"/}" >"$results/benchmarks.md"
if [ "$mode" = smoke ]; then
  echo "bench: smoke run passed ($results)"
else
  cp "$results/benchmarks.md" docs/benchmarks.md
  echo "bench: wrote docs/benchmarks.md"
fi
