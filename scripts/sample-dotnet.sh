#!/usr/bin/env bash
# Builds and runs the .NET sample service (samples/dotnet) under load for LOAD_SECONDS (default 12:
# the check and the reads below must end before it does), reads it from outside with
# `otel-ctx-dump check` (every rule must pass) and READS times (default 5), then checks every span
# a thread showed against the spans the service exported (scripts/check-sample-spans.py), and that
# the check can fail. The service is killed on every exit path.
set -euo pipefail
. "$(dirname "$0")/common.sh"
setup base
cargo build -q --workspace
lib="${OTEL_NATIVE_LIBRARY:-$root/target/debug/libotel_thread_ctx.so}" dump="$root/target/debug/otel-ctx-dump"
load_seconds="${LOAD_SECONDS:-12}" out="$root/target/dotnet-sample"
run="$out/run"

rm -rf "$run"
mkdir -p "$run"
# Its own artifacts folder, so this build never touches the solution's bin/obj folders.
dotnet build samples/dotnet/OtelSampleService.csproj -c Release --artifacts-path "$out/build" \
  -p:OtelNativeLibrary="$lib" -nologo -v q >"$out/build.log" 2>&1 || { cat "$out/build.log"; die "build failed"; }
pid=""
stop() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || return 0
  wait_for 5 eval '! kill -0 "$pid" 2>/dev/null' || kill -9 "$pid" 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

dotnet "$out/build/bin/OtelSampleService/release/OtelSampleService.dll" --spans "$run/spans.txt" \
  --resource "$run/resource.json" --load "$load_seconds" --concurrency 8 >"$run/service.out" 2>&1 &
pid=$!
listening() { grep -q '^listening ' "$run/service.out" || ! kill -0 "$pid" 2>/dev/null; }
wait_for 30 listening && grep -q '^listening ' "$run/service.out" || { cat "$run/service.out"; die "the service did not start"; }
echo "--- samples/dotnet: $(head -1 "$run/service.out"), serving its own load for ${load_seconds}s (8 clients on loopback)"
sleep 1

if [ "${SHOW_TABLE:-1}" = 1 ]; then
  echo "--- otel-ctx-dump $pid (one read as text; threads that never had a record left out):"
  "$dump" "$pid" | grep -v -e '(no context)' || true
fi
echo "--- otel-ctx-dump check --duration 1 $pid: every rule of the OTEPs a writer can break"
"$dump" check --duration 1 "$pid" >"$run/check.txt" ||
  { rc=$?; cat "$run/check.txt"; die "otel-ctx-dump check exited with $rc (7: warnings, 8: failures)"; }
tail -1 "$run/check.txt"
echo "--- otel-ctx-dump --json $pid, ${READS:-5} more reads while requests hop threads"
for i in $(seq "${READS:-5}"); do
  t0=$(date +%s.%N)
  "$dump" --json "$pid" >"$run/dump-$i.json" || die "otel-ctx-dump exited with $? (4: it needs to ptrace the service; see otel-ctx-dump/README.md)"
  echo "$t0 $(date +%s.%N)" >"$run/dump-$i.time"
  sleep 0.7
done

# The service stops after its load, flushing the exporter; the check needs every exported span.
wait_for $((load_seconds + 30)) eval '! kill -0 "$pid" 2>/dev/null' || die "the service did not stop"
wait "$pid" || svc_rc=$?
pid=""
tail -n +2 "$run/service.out"
[ "${svc_rc:-0}" -eq 0 ] || die "the service exited with $svc_rc"

echo "--- the check: span ids read from outside vs spans the service exported, and the process"
echo "    context read from outside vs the Resource the spans were exported with"
python3 scripts/check-sample-spans.py "$run"
