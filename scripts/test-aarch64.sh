#!/usr/bin/env bash
# Builds for aarch64-unknown-linux-gnu and runs the tests there: under qemu-user on an x86-64
# machine (qemu-aarch64-static), natively on AArch64. A missing cross toolchain fails.
#
#   ./scripts/test-aarch64.sh rust     the crate's unit, integration and doc tests (ELF checks on
#                                      the AArch64 .so, self-check in static and dynamic TLS, the
#                                      C sample, signal stress, thread-exit leaks, static linking),
#                                      and otel-ctx-dump's unit tests
#   ./scripts/test-aarch64.sh dotnet   the .NET tests (OtelThreadContext.Tests and .ActivityTests),
#                                      published self-contained for linux-arm64, run as executables
#
# Not here, because qemu-user cannot be ptraced as an AArch64 guest: whatever needs otel-ctx-dump
# to read a live process (its own tests, the sample-service and static-link dump tests).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/cross-env.sh
. scripts/cross-env.sh
triple=aarch64-unknown-linux-gnu
cross_env "$triple"

run() {
  if [ -n "${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER:-}" ]; then
    "$CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER" "$@"
  else
    "$@"
  fi
}

rust() {
  # The ELF and sample tests read target/<triple>/debug/libotel_thread_ctx.so: build it first.
  nice cargo build --quiet --lib --target "$triple"
  nice cargo test --quiet --target "$triple" -p otel-thread-ctx
  # otel-ctx-dump's unit tests (ELF, AArch64 relocations, DTV arithmetic); not the one that reads
  # its own memory with process_vm_readv, which qemu-user does not implement.
  nice cargo test --quiet --target "$triple" -p otel-ctx-dump --lib -- \
    --skip maps::tests::reads_own_memory_and_fails_on_unmapped
}

dotnet_tests() {
  # The shipped build, and the release build with the test hooks the tests load (as on x64).
  nice cargo build --release --quiet --lib --target "$triple"
  nice cargo build --release --quiet --lib --target "$triple" --features test-hooks \
    --target-dir "$root/target/test-hooks"
  local lib="$root/target/$triple/release/libotel_thread_ctx.so" project out
  local test_lib="$root/target/test-hooks/$triple/release/libotel_thread_ctx.so"
  for project in OtelThreadContext.Tests OtelThreadContext.ActivityTests; do
    out="$root/target/$triple/dotnet/$project"
    rm -rf "$out"
    # OtelTestRuntime, not -r: the test project alone takes the RID (a global RID would make the
    # referenced library restore runtime packs for its net8.0 build as well).
    dotnet publish "dotnet/$project" -c Release -p:OtelTestRuntime=linux-arm64 \
      -p:OtelNativeLibrary="$lib" -p:OtelTestNativeLibrary="$test_lib" -o "$out" --nologo -v q
  done
  # DOTNET_EnableWriteXorExecute=0: with W^X the JIT writes code through a second mapping, which
  # qemu-user does not see as a write to the code it has translated; tests then crash at random
  # (SIGSEGV, NullReferenceException in freshly tiered code). Without W^X they do not.
  export DOTNET_EnableWriteXorExecute=0
  # Left out under qemu, each for a stated reason:
  #   PackageTests      packs and builds a consumer with the x64 SDK: the x64 run covers it,
  #                     and it checks the package's linux-arm64 library is an AArch64 ELF.
  #   RecordLayoutTests compiles a C program and starts it, which a qemu-user guest cannot
  #                     (no binfmt_misc); the record is byte-packed, its layout the same.
  run "$root/target/$triple/dotnet/OtelThreadContext.Tests/OtelThreadContext.Tests" \
    -class- OtelThreadContext.Tests.PackageTests \
    -class- OtelThreadContext.Tests.RecordLayoutTests
  run "$root/target/$triple/dotnet/OtelThreadContext.ActivityTests/OtelThreadContext.ActivityTests"
}

case "${1:-all}" in
  rust) rust ;;
  dotnet) dotnet_tests ;;
  all) rust && dotnet_tests ;;
  *) echo "usage: $0 [rust|dotnet|all]" >&2; exit 2 ;;
esac
