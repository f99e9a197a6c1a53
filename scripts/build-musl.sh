#!/usr/bin/env bash
# Builds libotel_thread_ctx.so for x86_64-unknown-linux-musl, a shared library that musl's
# dynamic loader loads, at a stable path (printed on the last line of stdout):
#   target/x86_64-unknown-linux-musl/<profile>/libotel_thread_ctx.so
# Usage: scripts/build-musl.sh [--release] [--test-hooks] (debug by default, like cargo).
# --test-hooks builds with the crate's `test-hooks` feature (the functions only tests call, see
# native/test_hooks.rs) into a target directory of its own, so the shipped library never has them:
#   target/x86_64-unknown-linux-musl/test-hooks/x86_64-unknown-linux-musl/<profile>/libotel_thread_ctx.so
#
# Two ways, chosen automatically:
# - a rustup toolchain with the musl target installed (`rustup target add
#   x86_64-unknown-linux-musl`): a plain cross build;
# - otherwise Debian's rustc (/usr/bin/rustc, whose standard library is glibc-only) rebuilds the
#   standard library for musl from the sources in rust-web-src (-Zbuild-std). Its dependencies
#   come from the sources' vendor folder, the project's from Debian's crate registry, through
#   one folder of symlinks under target/ (generated; nothing is vendored into the repository).
#
# Either way musl-gcc links, with LLD, which merges rustc's version script with ours and keeps
# otel_thread_ctx_v1 global (build.rs). A musl cdylib links libc dynamically
# (-crt-static). Rust's std then asks for libgcc_s, which Debian ships only for glibc: gcc's static
# unwinder (libgcc_eh.a) is linked in instead, and an empty libgcc_s.so on the -L path satisfies
# the request, which --as-needed then drops. That unwinder looks frames up with glibc's
# _dl_find_object: native/musl/dl_find_object.c provides it (hidden) on top of musl's
# dl_iterate_phdr, and finds the library's frames through its .eh_frame_hdr table (rustc asks
# the linker for it; musl-gcc alone would not). The result needs libc.so (musl) only.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

triple=x86_64-unknown-linux-musl
profile=debug
# Extra cargo arguments: the profile, and for --test-hooks the feature and its target directory.
cargo_args=()
target_dir="$root/target"
for arg in "$@"; do
  case "$arg" in
    --release) profile=release; cargo_args+=(--release) ;;
    --test-hooks)
      target_dir="$root/target/$triple/test-hooks"
      cargo_args+=(--features test-hooks --target-dir "$target_dir")
      ;;
    *) echo "usage: $0 [--release] [--test-hooks]" >&2; exit 2 ;;
  esac
done

fail() { echo "build-musl: $*" >&2; exit 1; }
command -v musl-gcc >/dev/null || fail "musl-gcc not found (Debian package musl-tools; scripts/setup.sh installs it)"
command -v ld.lld >/dev/null || fail "ld.lld not found (Debian package lld; scripts/setup.sh installs it)"
libgcc_eh="$(gcc -print-file-name=libgcc_eh.a)"
[ -f "$libgcc_eh" ] || fail "gcc's libgcc_eh.a not found"

work="$root/target/$triple/musl-build"
mkdir -p "$work/lib"
# The empty stand-in for libgcc_s (see above).
if [ ! -f "$work/lib/libgcc_s.so" ]; then
  echo > "$work/lib/empty.c"
  musl-gcc -shared -fPIC -nostdlib "$work/lib/empty.c" -o "$work/lib/libgcc_s.so"
fi

musl-gcc -O2 -fPIC -Wall -Wextra -Werror -c native/musl/dl_find_object.c -o "$work/lib/dl_find_object.o"

rustflags="-C target-feature=-crt-static -C link-arg=-fuse-ld=lld -C link-arg=$work/lib/dl_find_object.o"
rustflags+=" -C link-arg=$libgcc_eh -L native=$work/lib"
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER=musl-gcc
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="$rustflags"

if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
  echo "build-musl: rustup's $triple target" >&2
  nice cargo build -q "${cargo_args[@]}" --target "$triple" -p otel-thread-ctx --lib
else
  rustc=/usr/bin/rustc
  [ -x "$rustc" ] || fail "no rustup $triple target and no Debian rustc at $rustc"
  sysroot="$("$rustc" --print sysroot)"
  library="$sysroot/lib/rustlib/src/rust/library"
  [ -f "$library/Cargo.lock" ] && [ -d "$library/vendor" ] ||
    fail "the standard library's sources are not at $library (Debian package rust-web-src)"
  cargo=/usr/bin/cargo
  [ -x "$cargo" ] || cargo=cargo
  echo "build-musl: Debian's rustc $("$rustc" --version | cut -d' ' -f2) rebuilding std for $triple (-Zbuild-std)" >&2

  # One directory source: std's vendored crates and Debian's registry, each crate a name-version
  # folder, so they do not collide (where both hold the same version, std's copy is kept).
  crates="$root/target/$triple/crates"
  rm -rf "$crates"
  mkdir -p "$crates"
  for dir in /usr/share/cargo/registry/*/ "$library"/vendor/*/; do
    ln -sfn "${dir%/}" "$crates/$(basename "$dir")"
  done
  # Its own lock file: the two sources hold newer versions of some crates (libc, memchr) than
  # Debian's registry, and the glibc build's Cargo.lock must not move to them.
  export RUSTC="$rustc" RUSTC_BOOTSTRAP=1
  nice "$cargo" build -q "${cargo_args[@]}" --target "$triple" -p otel-thread-ctx --lib \
    -Zbuild-std=std,panic_unwind -Zlockfile-path \
    --config "resolver.lockfile-path=\"$root/target/$triple/Cargo.lock\"" \
    --config 'source.crates-io.replace-with="musl-crates"' \
    --config "source.musl-crates.directory=\"$crates\"" \
    --config 'net.offline=true'
fi

so="$target_dir/$triple/$profile/libotel_thread_ctx.so"
[ -f "$so" ] || fail "cargo did not produce $so"
echo "$so"
