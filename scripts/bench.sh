#!/usr/bin/env bash
# Runs every benchmark in one go, BenchmarkDotNet (dotnet/benchmarks) and the native harness
# (bench/), after installing what they need (scripts/setup.sh base), and writes docs/benchmarks.md
# from the results and docs/benchmarks-about.md (scripts/bench-report.py).
#   ./scripts/bench.sh            full run (about 5 minutes); rewrites docs/benchmarks.md
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

./scripts/setup.sh base
lib="${OTEL_NATIVE_LIBRARY:-$root/target/release/libotel_thread_ctx.so}"
[ -n "${OTEL_NATIVE_LIBRARY:-}" ] || cargo build --release --quiet --lib
[ -f "$lib" ] || die "native library $lib not found"
work="$root/target/bench-dotnet/$mode"
results="$work/results"
rm -rf "$results"
mkdir -p "$results"
dotnet build dotnet/benchmarks/OtelThreadContext.Benchmarks.csproj -c Release -nologo -v quiet \
  --artifacts-path "$work/build" -p:OtelNativeLibrary="$lib"

# How busy the machine is: load averages, and the CPU time all processes spent (/proc/stat: busy
# and total jiffies) against the benchmark's own (`times` in this shell, not a subshell: its
# children's CPU times).
cpu_jiffies() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; print b, b+$5+$6}' /proc/stat; }
child_seconds() { tail -1 "$1" | awk '{t=0; for(i=1;i<=2;i++){split($i,p,"m"); t+=p[1]*60+p[2]} print t}'; }
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
cpu_before="$(cpu_jiffies)"
times >"$results/times.before"

echo "=== BenchmarkDotNet ($mode)"
# --request-rounds: first the interleaved request comparison. The JIT's code for two writers goes
# to jit.txt (the page shows their final listings).
DOTNET_JitDisasm="DirectWrite RawStoresThreadStatic" DOTNET_JitStdOutFile="$results/jit.txt" \
  dotnet "$work/build/bin/OtelThreadContext.Benchmarks/release/OtelThreadContext.Benchmarks.dll" \
  --artifacts "$results/bdn" --request-rounds 12 20480 "${smoke[@]}" | tee "$results/bdn.log"
cpu_after="$(cpu_jiffies)"
times >"$results/times.after"
own_seconds="$(echo "$(child_seconds "$results/times.before") $(child_seconds "$results/times.after")" |
  awk '{print $2 - $1}')"

echo "=== native harness ($mode)"
make -s -C bench run LIB="$lib" CALLS="$calls" ROUNDS="$rounds" | tee "$results/native.md"

python3 scripts/bench-report.py "$results" started="$started" native_library="${lib#"$root"/}" \
  load_before="$load_before" load_after="$(cut -d' ' -f1-3 /proc/loadavg)" cpu_before="$cpu_before" \
  cpu_after="$cpu_after" own_cpu_seconds="$own_seconds" >"$results/benchmarks.md"
if [ "$mode" = smoke ]; then
  echo "bench: smoke run passed ($results)"
else
  cp "$results/benchmarks.md" docs/benchmarks.md
  echo "bench: wrote docs/benchmarks.md"
fi
