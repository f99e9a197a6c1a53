#!/usr/bin/env bash
# Native benchmark (bench/): otel_thread_ctx_update, release build via dlsym, against a minimal C
# writer. CALLS and ROUNDS may be set in the environment (defaults 20000000 and 5).
set -euo pipefail
. "$(dirname "$0")/common.sh"
./scripts/setup.sh
cargo build -q --release --lib
make -s -C bench run CALLS="${CALLS:-20000000}" ROUNDS="${ROUNDS:-5}"
