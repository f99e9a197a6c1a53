#!/usr/bin/env bash
# The demo: builds the library, otel-ctx-dump and the .NET sample service; runs the service under
# load (ASP.NET Core + the OpenTelemetry SDK + ActivityThreadContext, handlers hopping threads
# across awaits) and reads its threads from outside a few times, the way the eBPF profiler does,
# checking every span id read against the spans the service exported. Then, briefly, the C sample.
# Every process it starts is stopped on every exit path.
set -euo pipefail
. "$(dirname "$0")/common.sh"
./scripts/setup.sh
echo "--- building the library and otel-ctx-dump (cargo), the C sample, the .NET sample service"
cargo build -q --workspace
make -s -C samples/c all

echo
./scripts/sample-dotnet.sh

echo
echo "--- samples/c (the C API): two threads publish a span each; otel-ctx-dump reads them"
./target/samples/sample --threads 2 --hold 2 >target/samples/demo.out &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ "$(grep -c '"tid"' target/samples/demo.out)" -ge 2 ] && break; sleep 0.1; done
./target/debug/otel-ctx-dump "$pid" | sed -n '/^threads:/,$p'
wait "$pid"
trap - EXIT
