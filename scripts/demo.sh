#!/usr/bin/env bash
# The demo: builds the library, the C sample and otel-ctx-dump; starts the sample holding its
# threads' contexts, and reads them from outside the way the eBPF profiler does.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
./scripts/setup.sh
cargo build -q --workspace
make -s -C samples/c all

echo "--- samples/c: what each thread published, as it reads it back through its own slot"
./target/samples/sample --threads 4 --hold 3 > target/samples/demo.out &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ "$(grep -c '"tid"' target/samples/demo.out)" -ge 4 ] && break; sleep 0.1; done
cat target/samples/demo.out

echo
echo "--- otel-ctx-dump $pid: the same, read from another process"
./target/debug/otel-ctx-dump "$pid"
wait "$pid"
trap - EXIT
