#!/usr/bin/env bash
# Formatting and lints, as CI checks them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
dotnet format dotnet/OtelThreadContext.sln --verify-no-changes
