#!/usr/bin/env bash
# Runs every test of the project, after installing what they need (scripts/setup.sh).
# Prints one line per suite and a closing "N passed, N failed" line; exits non-zero on failure.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
./scripts/setup.sh || { echo "setup failed"; exit 1; }

passed=0
failed=0
failures=()
suite() {
  local name="$1"
  shift
  echo
  echo "=== $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

suite "format and lints" ./scripts/lint.sh
suite "native build" cargo build --workspace -q
suite "rust tests (API, ELF, header, C sample, signal stress)" cargo test --workspace -q
suite "musl build and tests (x86_64-unknown-linux-musl)" ./scripts/test-musl.sh
suite "native benchmark smoke run" env CALLS=200000 ROUNDS=1 ./scripts/bench-native.sh
suite ".NET tests (and the package, scripts/pack.sh)" ./scripts/test-dotnet.sh
# linux-arm64 under qemu-user (natively on an AArch64 machine); a missing cross toolchain fails.
suite "aarch64 rust tests (ELF, self-check in static and dynamic TLS, C sample, signal stress, thread exit)" \
  ./scripts/test-aarch64.sh rust
suite "aarch64 .NET tests (published for linux-arm64)" ./scripts/test-aarch64.sh dotnet
suite ".NET sample service read by otel-ctx-dump" env SHOW_TABLE=0 LOAD_SECONDS=6 ./scripts/sample-dotnet.sh
suite ".NET benchmark smoke run" ./scripts/bench.sh --smoke

echo
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
