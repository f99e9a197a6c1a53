#!/usr/bin/env bash
# Runs every benchmark in one go and writes docs/benchmarks.md from the results:
#   - BenchmarkDotNet (dotnet/benchmarks): in-place writes against the raw-store floor and the
#     native update through P/Invoke, the cost of Activity tracking, a whole ASP.NET Core request
#     without and with AddThreadContext (also interleaved), and the AsyncLocal design experiments;
#   - the native harness (bench): otel_thread_ctx_update against a minimal C writer.
# A full run takes about 5 minutes (BenchmarkDotNet job in dotnet/benchmarks/Program.cs).
#
#   ./scripts/bench.sh            full run; rewrites docs/benchmarks.md
#   ./scripts/bench.sh --smoke    every benchmark once, to prove they run and that the report's
#                                 template renders from their results; writes no docs
#
# Build output and raw results go to target/bench-dotnet/<full|smoke>/ (results/ holds the
# BenchmarkDotNet CSV and Markdown exports, the native table and run.json, the run's facts);
# `python3 scripts/bench-report.py --render-from DIR` renders the report again from such a folder
# (e.g. after editing the prose in docs/benchmarks-template.md). OTEL_NATIVE_LIBRARY=/path/to.so
# benchmarks another build of the native library.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

mode=full
case "${1:-}" in
  "") ;;
  --smoke) mode=smoke ;;
  *) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac

./scripts/setup.sh
lib="${OTEL_NATIVE_LIBRARY:-}"
if [ -z "$lib" ]; then
  cargo build --release --quiet --lib
  lib="$root/target/release/libotel_thread_ctx.so"
fi
[ -f "$lib" ] || { echo "bench: native library $lib not found" >&2; exit 1; }

# A private build folder (bin and obj), so this never races a build of the shared projects.
work="$root/target/bench-dotnet/$mode"
results="$work/results"
rm -rf "$results"
mkdir -p "$results"
dotnet build dotnet/benchmarks/OtelThreadContext.Benchmarks.csproj -c Release -nologo -v quiet \
  --artifacts-path "$work/build" -p:OtelNativeLibrary="$lib"
exe="$work/build/bin/OtelThreadContext.Benchmarks/release/OtelThreadContext.Benchmarks.dll"

# How busy the machine is: load averages, and CPU time spent by all processes (/proc/stat:
# busy and total jiffies) against the benchmark's own CPU time, to tell what others used.
cpu_jiffies() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; print b, b+$5+$6}' /proc/stat; }
# `times` (run in this shell, not a subshell) prints this shell's and its children's CPU times.
child_seconds() { tail -1 "$1" | awk '{t=0; for(i=1;i<=2;i++){split($i,p,"m"); t+=p[1]*60+p[2]} print t}'; }
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
stat_before="$(cpu_jiffies)"
times >"$results/times.before"

echo "=== BenchmarkDotNet ($mode)"
# --request-rounds: first the interleaved request comparison (AspNetCoreRequestBenchmarks).
bdn_args=(--artifacts "$results/bdn" --request-rounds 12 20480)
[ "$mode" = smoke ] && bdn_args+=(--smoke)
# The JIT's final code for the writers goes to jit.txt (the report quotes DirectWrite's).
DOTNET_JitDisasm="DirectWrite RawStoresThreadStatic" DOTNET_JitStdOutFile="$results/jit.txt" \
  dotnet "$exe" "${bdn_args[@]}" | tee "$results/bdn.log"

stat_after="$(cpu_jiffies)"
times >"$results/times.after"

echo "=== native harness ($mode)"
if [ "$mode" = smoke ]; then calls=200000 rounds=1; else calls="${CALLS:-20000000}" rounds="${ROUNDS:-5}"; fi
make -s -C bench run LIB="$lib" CALLS="$calls" ROUNDS="$rounds" | tee "$results/native.md"

load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

report=(python3 scripts/bench-report.py --results "$results" --native-library "$lib"
  --started "$started" --load-before "$load_before" --load-after "$load_after"
  --cpu-before "$stat_before" --cpu-after "$stat_after" --own-cpu-seconds "$(echo "$(child_seconds "$results/times.before") $(child_seconds "$results/times.after")" | awk '{print $2-$1}')")
if [ "$mode" = smoke ]; then
  # Proves the report can be made from these results; the measurements mean nothing, so the
  # report goes next to them, never to docs/.
  "${report[@]}" --smoke >"$results/benchmarks.md"
  # The full report's template, rendered from these results (and the run.json the line above
  # saved): an unknown or unfilled placeholder in docs/benchmarks-template.md fails the smoke run.
  python3 scripts/bench-report.py --render-from "$results" >"$results/benchmarks-full.md"
  echo "bench: smoke run passed ($results)"
else
  "${report[@]}" >"$results/benchmarks.md"
  cp "$results/benchmarks.md" docs/benchmarks.md
  echo "bench: wrote docs/benchmarks.md"
fi
