#!/usr/bin/env bash
# Developer commands, each after installing what it needs (scripts/setup.sh base):
#   lint            formatting and lints, as CI checks them
#   gen [--check]   regenerates include/otel_thread_ctx.h (cbindgen) and the .NET P/Invoke files
#                   (tools/gen-bindings) from native/; --check fails instead when one is stale
#   test-dotnet     packs (scripts/pack.sh), then runs the .NET tests (OTEL_NATIVE_LIBRARY and
#                   OTEL_TEST_NATIVE_LIBRARY: other library builds than the release ones)
#   bench-native    the native benchmark harness alone (CALLS, ROUNDS: 20000000 and 5)
set -euo pipefail
. "$(dirname "$0")/common.sh"

lint() {
  cargo fmt --all -- --check
  cargo clippy --workspace --all-targets -q -- -D warnings
  dotnet format dotnet/OtelThreadContext.sln --verify-no-changes
}

gen() {
  local mode="${1:-}" stale=0 tmp
  case "$mode" in "" | --check) ;; *) die "usage: $0 gen [--check]" ;; esac
  tmp="$(mktemp)"
  cbindgen --quiet --config cbindgen.toml --crate otel-thread-ctx --output "$tmp" .
  [ -n "$mode" ] || cp "$tmp" include/otel_thread_ctx.h
  diff -u include/otel_thread_ctx.h "$tmp" ||
    { echo "dev: include/otel_thread_ctx.h is stale: run scripts/dev.sh gen and commit the result" >&2; stale=1; }
  rm -f "$tmp"
  # A target directory of its own: tests/header.rs runs this inside `cargo test`, which holds target/'s lock.
  cargo run --quiet -p gen-bindings --target-dir target/gen-bindings -- \
    --root native/lib.rs --namespace OtelThreadContext --class NativeMethods --library LibraryName \
    --out dotnet/OtelThreadContext/NativeMethods.g.cs \
    --test-feature test-hooks --test-namespace OtelThreadContext.Tests --test-class TestNativeMethods \
    --test-library NativeMethods.LibraryName --test-out dotnet/OtelThreadContext.Tests/TestNativeMethods.g.cs \
    $mode || stale=1
  return "$stale"
}

test_dotnet() {
  ./scripts/pack.sh
  local lib="${OTEL_NATIVE_LIBRARY:-$root/target/release/libotel_thread_ctx.so}"
  local test_lib="${OTEL_TEST_NATIVE_LIBRARY:-$root/target/test-hooks/release/libotel_thread_ctx.so}"
  [ -n "${OTEL_TEST_NATIVE_LIBRARY:-}" ] ||
    cargo build --release --quiet --lib --features test-hooks --target-dir "$root/target/test-hooks"
  for f in "$lib" "$test_lib"; do [ -f "$f" ] || die "native library $f not found"; done
  # The tests read the process context with the inspector: target/debug/otel-ctx-dump, or OTEL_CTX_DUMP.
  [ -n "${OTEL_CTX_DUMP:-}" ] || cargo build --quiet -p otel-ctx-dump
  # Detailed console output shows each test's own report (stress counts, package layout).
  dotnet test dotnet/OtelThreadContext.sln -p:OtelNativeLibrary="$lib" -p:OtelTestNativeLibrary="$test_lib" \
    --logger "console;verbosity=detailed"
}

bench_native() {
  cargo build -q --release --lib
  make -s -C bench run CALLS="${CALLS:-20000000}" ROUNDS="${ROUNDS:-5}"
}

case "${1:-}" in
  lint | gen | test-dotnet | bench-native) ;;
  *) echo "usage: $0 COMMAND" >&2; sed -n 's/^#   /  /p' "$0" >&2; exit 2 ;;
esac
setup base
"${1//-/_}" "${@:2}"
