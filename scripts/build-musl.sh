#!/usr/bin/env bash
# Builds libotel_thread_ctx.so for x86_64-unknown-linux-musl and prints its path on the last line:
#   target/x86_64-unknown-linux-musl/<profile>/libotel_thread_ctx.so
# Usage: scripts/build-musl.sh [--release] [--test-hooks] (debug by default, like cargo).
# --test-hooks builds with the `test-hooks` feature, in a target directory of its own:
#   target/x86_64-unknown-linux-musl/test-hooks/x86_64-unknown-linux-musl/<profile>/libotel_thread_ctx.so
# With rustup's musl target a plain cross build; otherwise Debian's rustc rebuilds std for musl
# (-Zbuild-std) from rust-web-src. musl-gcc links with LLD (README, musl): gcc's static unwinder
# (libgcc_eh.a) with native/musl/dl_find_object.c stands in for libgcc_s, which Rust's std asks
# for and Debian ships for glibc only; an empty libgcc_s.so satisfies the request.
set -euo pipefail
. "$(dirname "$0")/common.sh"

triple=x86_64-unknown-linux-musl
profile=debug
cargo_args=(--target "$triple" -p otel-thread-ctx --lib)
target_dir="$root/target"
for arg in "$@"; do
  case "$arg" in
    --release) profile=release && cargo_args+=(--release) ;;
    --test-hooks)
      target_dir="$root/target/$triple/test-hooks"
      cargo_args+=(--features test-hooks --target-dir "$target_dir")
      ;;
    *) echo "usage: $0 [--release] [--test-hooks]" >&2; exit 2 ;;
  esac
done

command -v musl-gcc >/dev/null || die "musl-gcc not found (Debian package musl-tools; scripts/setup.sh installs it)"
command -v ld.lld >/dev/null || die "ld.lld not found (Debian package lld; scripts/setup.sh installs it)"
libgcc_eh="$(gcc -print-file-name=libgcc_eh.a)"
[ -f "$libgcc_eh" ] || die "gcc's libgcc_eh.a not found"

lib="$root/target/$triple/musl-build/lib"
mkdir -p "$lib"
[ -f "$lib/libgcc_s.so" ] || musl-gcc -shared -fPIC -nostdlib -x c /dev/null -o "$lib/libgcc_s.so"
musl-gcc -O2 -fPIC -Wall -Wextra -Werror -c native/musl/dl_find_object.c -o "$lib/dl_find_object.o"
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=musl-gcc
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C target-feature=-crt-static -C link-arg=-fuse-ld=lld \
-C link-arg=$lib/dl_find_object.o -C link-arg=$libgcc_eh -L native=$lib"

if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
  echo "build-musl: rustup's $triple target" >&2
  nice cargo build -q "${cargo_args[@]}"
else
  rustc=/usr/bin/rustc
  [ -x "$rustc" ] || die "no rustup $triple target and no Debian rustc at $rustc"
  library="$("$rustc" --print sysroot)/lib/rustlib/src/rust/library"
  [ -f "$library/Cargo.lock" ] && [ -d "$library/vendor" ] ||
    die "the standard library's sources are not at $library (Debian package rust-web-src)"
  cargo=/usr/bin/cargo
  [ -x "$cargo" ] || cargo=cargo
  echo "build-musl: Debian's rustc $("$rustc" --version | cut -d' ' -f2) rebuilding std for $triple (-Zbuild-std)" >&2
  # One directory source of name-version folders: Debian's registry and std's vendored crates
  # (std's copy wins where both hold a version). Its own lock file, so the glibc build's
  # Cargo.lock does not move to the newer versions these sources hold.
  crates="$root/target/$triple/crates"
  rm -rf "$crates"
  mkdir -p "$crates"
  for dir in /usr/share/cargo/registry/*/ "$library"/vendor/*/; do
    ln -sfn "${dir%/}" "$crates/$(basename "$dir")"
  done
  RUSTC="$rustc" RUSTC_BOOTSTRAP=1 nice "$cargo" build -q "${cargo_args[@]}" -Zbuild-std=std,panic_unwind \
    -Zlockfile-path --config "resolver.lockfile-path=\"$root/target/$triple/Cargo.lock\"" \
    --config 'source.crates-io.replace-with="musl-crates"' --config "source.musl-crates.directory=\"$crates\"" \
    --config 'net.offline=true'
fi

so="$target_dir/$triple/$profile/libotel_thread_ctx.so"
[ -f "$so" ] || die "cargo did not produce $so"
echo "$so"
