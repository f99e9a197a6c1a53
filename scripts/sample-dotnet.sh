#!/usr/bin/env bash
# Runs the .NET sample service (samples/dotnet) under load and reads it from outside with
# otel-ctx-dump a few times; then checks that every span a thread showed is a span the service
# exported, running at the time of the read (scripts/check-sample-spans.py). Exits non-zero when
# the check fails.
# Used by scripts/demo.sh and scripts/test.sh. Needs `cargo build --workspace` first (otel-ctx-dump
# and the library, target/debug), dotnet and python3. The service listens on 127.0.0.1 only and
# stops by itself after LOAD_SECONDS (default 8); it is killed on every exit path of this script.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

lib="${OTEL_NATIVE_LIBRARY:-$root/target/debug/libotel_thread_ctx.so}"
dump="$root/target/debug/otel-ctx-dump"
load_seconds="${LOAD_SECONDS:-8}"
reads="${READS:-5}"
out="$root/target/dotnet-sample"
for f in "$lib" "$dump"; do
  [ -f "$f" ] || { echo "sample-dotnet: $f not found: run cargo build --workspace first" >&2; exit 1; }
done

# Its own artifacts folder, so this build never touches the solution's bin/obj folders.
mkdir -p "$out"
if ! dotnet build samples/dotnet/OtelSampleService.csproj -c Release --artifacts-path "$out/build" \
  -p:OtelNativeLibrary="$lib" -nologo -v q >"$out/build.log" 2>&1; then
  cat "$out/build.log"
  echo "sample-dotnet: building samples/dotnet failed" >&2
  exit 1
fi
dll="$out/build/bin/OtelSampleService/release/OtelSampleService.dll"

run="$out/run"
rm -rf "$run"
mkdir -p "$run"
pid=""
stop() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
}
trap stop EXIT
trap 'exit 130' INT TERM

dotnet "$dll" --spans "$run/spans.txt" --resource "$run/resource.json" --load "$load_seconds" --concurrency 8 >"$run/service.out" 2>&1 &
pid=$!
for _ in $(seq 300); do
  grep -q '^listening ' "$run/service.out" && break
  kill -0 "$pid" 2>/dev/null || { echo "sample-dotnet: the service exited early:"; cat "$run/service.out"; exit 1; }
  sleep 0.1
done
grep -q '^listening ' "$run/service.out" || { echo "sample-dotnet: the service did not start in 30 s"; exit 1; }
echo "--- samples/dotnet: $(head -1 "$run/service.out"), serving its own load for ${load_seconds}s (8 clients on loopback)"
sleep 1

if [ "${SHOW_TABLE:-1}" = 1 ]; then
  echo "--- otel-ctx-dump $pid (one read as text; threads that never had a record left out):"
  "$dump" "$pid" | grep -v -e '(no context)' || true
fi
echo "--- otel-ctx-dump --json $pid, $reads more reads while requests hop threads"
for i in $(seq "$reads"); do
  rc=0
  t0=$(date +%s.%N)
  "$dump" --json "$pid" >"$run/dump-$i.json" || rc=$?
  echo "$t0 $(date +%s.%N)" >"$run/dump-$i.time"
  if [ "$rc" -ne 0 ]; then
    echo "sample-dotnet: otel-ctx-dump exited with $rc"
    [ "$rc" -eq 4 ] && echo "  (it needs to ptrace the service: see README, Permissions)"
    exit 1
  fi
  sleep 0.7
done

# The service stops after its load, flushing the exporter; the check needs every exported span.
for _ in $(seq $((load_seconds * 10 + 300))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then echo "sample-dotnet: the service did not stop"; exit 1; fi
svc_rc=0
wait "$pid" || svc_rc=$?
pid=""
tail -n +2 "$run/service.out"
[ "$svc_rc" -eq 0 ] || { echo "sample-dotnet: the service exited with $svc_rc"; exit 1; }

echo "--- the check: span ids read from outside vs spans the service exported, and the process"
echo "    context read from outside vs the Resource the spans were exported with"
python3 scripts/check-sample-spans.py --resource "$run/resource.json" "$run/spans.txt" "$run"/dump-*.json

# The check can fail: against a span log whose spans all ended 10 s earlier (what stale records
# would look like), and against an empty log, the same reads must be rejected.
awk '{ $4 -= 10; $5 -= 10; print }' OFMT='%.6f' CONVFMT='%.6f' "$run/spans.txt" >"$run/spans-shifted.txt"
: >"$run/spans-empty.txt"
for control in spans-shifted spans-empty; do
  if python3 scripts/check-sample-spans.py "$run/$control.txt" "$run"/dump-*.json >"$run/$control.out" 2>&1; then
    echo "sample-dotnet: the check accepted $control.txt; it must not"
    exit 1
  fi
done
# And the resource comparison can fail: against the exported resource with another
# service.instance.id (what a hand-made instance id looked like), the same reads are rejected.
python3 - "$run/resource.json" "$run/resource-other.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r["service.instance.id"] = "otel-thread-ctx-dotnet-sample-0"
json.dump(r, open(sys.argv[2], "w"))
PY
if python3 scripts/check-sample-spans.py --resource "$run/resource-other.json" "$run/spans.txt" "$run"/dump-*.json \
  >"$run/resource-other.out" 2>&1; then
  echo "sample-dotnet: the check accepted a resource with another service.instance.id; it must not"
  exit 1
fi
echo "controls: the same reads are rejected against a span log shifted 10 s back ($(grep -c 'MISMATCH: stale' "$run/spans-shifted.out") stale reads), against an empty one, and against the resource with another service.instance.id"
