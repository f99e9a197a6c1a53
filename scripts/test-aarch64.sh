#!/usr/bin/env bash
# The tests for aarch64-unknown-linux-gnu, under qemu-user on x86-64 (natively on AArch64); a
# missing cross toolchain fails. `rust`: the crate's tests and otel-ctx-dump's unit tests;
# `dotnet`: the .NET tests published self-contained for linux-arm64; no argument: both.
set -euo pipefail
. "$(dirname "$0")/common.sh"
setup base cross
triple=aarch64-unknown-linux-gnu
cross_env

rust() {
  # The ELF and sample tests read target/<triple>/debug/libotel_thread_ctx.so: build it first.
  nice cargo build --quiet --lib --target "$triple"
  nice cargo test --quiet --target "$triple" -p otel-thread-ctx
  # Not the test that reads its own memory with process_vm_readv, which qemu-user lacks.
  nice cargo test --quiet --target "$triple" -p otel-ctx-dump --lib -- \
    --skip maps::tests::reads_own_memory_and_fails_on_unmapped
}

dotnet_tests() {
  # The shipped build, and the release build with the test hooks the tests load (as on x64).
  nice cargo build --release --quiet --lib --target "$triple"
  nice cargo build --release --quiet --lib --target "$triple" --features test-hooks \
    --target-dir "$root/target/test-hooks"
  # The process-context tests run the inspector on the test process: this machine's build (under
  # qemu-user the guest's memory is the emulator's, at the same addresses).
  nice cargo build --quiet -p otel-ctx-dump
  local project out="$root/target/$triple/dotnet"
  for project in OtelThreadContext.Tests OtelThreadContext.ActivityTests; do
    rm -rf "${out:?}/$project"
    # OtelTestRuntime, not -r: a global RID would make the referenced library restore runtime
    # packs for its net8.0 build as well.
    dotnet publish "dotnet/$project" -c Release -p:OtelTestRuntime=linux-arm64 -o "$out/$project" --nologo -v q \
      -p:OtelNativeLibrary="$root/target/$triple/release/libotel_thread_ctx.so" \
      -p:OtelTestNativeLibrary="$root/target/test-hooks/$triple/release/libotel_thread_ctx.so"
  done
  # With W^X the JIT writes code through a second mapping, which qemu-user does not see as a write
  # to code it has translated: tests crash at random. PackageTests (packs with the x64 SDK) and
  # RecordLayoutTests (starts a C program, which a qemu guest cannot) are left out.
  export DOTNET_EnableWriteXorExecute=0
  ${aarch64_runner:+"$aarch64_runner"} "$out/OtelThreadContext.Tests/OtelThreadContext.Tests" \
    -class- OtelThreadContext.Tests.PackageTests -class- OtelThreadContext.Tests.RecordLayoutTests
  ${aarch64_runner:+"$aarch64_runner"} "$out/OtelThreadContext.ActivityTests/OtelThreadContext.ActivityTests"
}

case "${1:-all}" in
  rust) rust ;;
  dotnet) dotnet_tests ;;
  all) rust && dotnet_tests ;;
  *) echo "usage: $0 [rust|dotnet|all]" >&2; exit 2 ;;
esac
