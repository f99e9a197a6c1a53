#!/usr/bin/env bash
# The demo: installs what it runs (scripts/setup.sh base), builds the library, otel-ctx-dump and
# the .NET sample service, runs the service under load and reads its threads from outside
# (scripts/sample-dotnet.sh), then, briefly, the C sample. Every process it starts is stopped on
# every exit path.
set -euo pipefail
. "$(dirname "$0")/common.sh"
setup base
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
two_threads() { [ "$(grep -c '"tid"' target/samples/demo.out)" -ge 2 ]; }
wait_for 5 two_threads || true
./target/debug/otel-ctx-dump "$pid" | sed -n '/^threads:/,$p'
wait "$pid"
trap - EXIT
