#!/usr/bin/env bash
# Native benchmark: otel_thread_ctx_update (release build, via dlsym) against a minimal C writer.
# CALLS and ROUNDS may be set in the environment (defaults 20000000 and 5).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
./scripts/setup.sh
cargo build -q --release -p otel-thread-ctx
make -s -C bench run CALLS="${CALLS:-20000000}" ROUNDS="${ROUNDS:-5}"
