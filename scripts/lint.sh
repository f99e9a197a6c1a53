#!/usr/bin/env bash
# Formatting and lints, as CI checks them.
set -euo pipefail
. "$(dirname "$0")/common.sh"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
dotnet format dotnet/OtelThreadContext.sln --verify-no-changes
