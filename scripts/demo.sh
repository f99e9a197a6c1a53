#!/usr/bin/env bash
# The demo: builds the library and the C sample, then runs the sample: four threads publish a
# span and attributes each, and print what an outside reader finds through their TLS slot.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
./scripts/setup.sh
cargo build -q -p otel-thread-ctx
make -s -C samples/c all
echo "--- samples/c: each thread's published context, read back through otel_thread_ctx_v1"
./target/samples/sample --threads 4
