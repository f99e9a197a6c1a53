#!/usr/bin/env bash
# Runs every test of the project, after installing what they need (scripts/setup.sh).
# Prints one line per suite and a closing "suites: N passed, N failed"; exits non-zero on failure.
set -uo pipefail
. "$(dirname "$0")/common.sh"
setup

suite() {
  printf '\n=== %s\n' "$1"
  if "${@:2}"; then pass "$1"; else fail "$1"; fi
}
suite "format and lints" ./scripts/dev.sh lint
suite "native build" cargo build --workspace -q
suite "rust tests (API, ELF, header, C sample, signal stress)" cargo test --workspace -q
suite "musl build and tests (x86_64- and aarch64-unknown-linux-musl, the latter under qemu-user)" ./scripts/test-musl.sh
suite "static otel-ctx-dump for any host (x86-64 reads a live process, AArch64 under qemu-user)" ./scripts/test-dist.sh
suite ".NET tests (and the package, scripts/pack.sh)" ./scripts/dev.sh test-dotnet
suite "aarch64 rust tests (ELF, self-check in static and dynamic TLS, C sample, signal stress, thread exit)" \
  ./scripts/test-aarch64.sh rust
suite "aarch64 .NET tests (published for linux-arm64)" ./scripts/test-aarch64.sh dotnet
suite ".NET sample service read by otel-ctx-dump" env SHOW_TABLE=0 ./scripts/sample-dotnet.sh
suite "benchmark smoke run (BenchmarkDotNet and the native harness)" ./scripts/bench.sh --smoke

echo
for f in "${failures[@]}"; do echo "FAILED: $f"; done
tally suites
