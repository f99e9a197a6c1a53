#!/usr/bin/env bash
# Builds libotel_thread_ctx.so for musl and prints its path on the last line:
#   scripts/build-musl.sh [--target TRIPLE] [--release] [--test-hooks | --otel-ctx-dump | --print-cc]
# TRIPLE: x86_64-unknown-linux-musl (default) or aarch64-unknown-linux-musl. --test-hooks: with the
# `test-hooks` feature, in target/<triple>/test-hooks/. --otel-ctx-dump: the inspector instead, a
# static executable (no PT_INTERP, no NEEDED), in target/<triple>/static-exe/. --print-cc: builds
# nothing, prints the musl C compiler, the folder of the linking helpers and libgcc_eh.a, one a line
# (tests/musl/Makefile links with them). How it links: docs/PLATFORMS.md, musl.
set -euo pipefail
. "$(dirname "$0")/common.sh"

usage() { sed -n 3p "$0" >&2; exit 2; }
triple=x86_64-unknown-linux-musl profile=debug hooks=0 print_cc=0 exe=0
while (($#)); do
  case "$1" in
    --target) (($# >= 2)) || usage; triple="$2"; shift ;;
    --target=*) triple="${1#--target=}" ;;
    --release) profile=release ;;
    --test-hooks) hooks=1 ;;
    --otel-ctx-dump) exe=1 ;;
    --print-cc) print_cc=1 ;;
    *) usage ;;
  esac
  shift
done
((hooks + exe + print_cc <= 1)) || usage
setup musl
[[ "$triple" != aarch64-* ]] || setup cross

lib="$root/target/$triple/musl-build/lib"
case "$triple" in
  x86_64-unknown-linux-musl) gcc=gcc cc=musl-gcc ;;
  aarch64-unknown-linux-musl)
    gcc=aarch64-linux-gnu-gcc cc="$root/target/$triple/musl-build/bin/aarch64-linux-musl-gcc"
    specs=/usr/lib/aarch64-linux-musl/musl-gcc.specs lld_dir="$root/target/$triple/musl-build/lld"
    # A cross gcc finds `ld.lld` (for -fuse-ld=lld) only in its -B folders: one holding just that.
    mkdir -p "$(dirname "$cc")" "$lld_dir"
    ln -sfn "$(command -v ld.lld)" "$lld_dir/ld.lld"
    printf '#!/bin/sh\n# musl-gcc for AArch64, written by scripts/build-musl.sh.\nexec %s -B%s "$@" -specs %s\n' \
      "$gcc" "$lld_dir" "$specs" >"$cc.tmp"
    chmod +x "$cc.tmp" && mv "$cc.tmp" "$cc"
    ;;
  *) echo "build-musl: no musl build for '$triple'" >&2; usage ;;
esac
libgcc_eh="$("$gcc" -print-file-name=libgcc_eh.a)"
[ -f "$libgcc_eh" ] || die "$gcc's libgcc_eh.a not found"
mkdir -p "$lib"
[ -f "$lib/libgcc_s.so" ] || "$cc" -shared -fPIC -nostdlib -x c /dev/null -o "$lib/libgcc_s.so"
"$cc" -O2 -fPIC -Wall -Wextra -Werror -c native/musl/dl_find_object.c -o "$lib/dl_find_object.o"
if ((print_cc)); then
  printf '%s\n' "$cc" "$lib" "$libgcc_eh"
  exit
fi

cargo_args=(--target "$triple" -p otel-thread-ctx --lib) target_dir="$root/target"
[ "$profile" = debug ] || cargo_args+=(--release)
((hooks)) && target_dir="$root/target/$triple/test-hooks" && cargo_args+=(--features test-hooks)
((exe)) && target_dir="$root/target/$triple/static-exe" && cargo_args[3]=otel-ctx-dump cargo_args[4]="--bin=otel-ctx-dump"
cargo_args+=(--target-dir "$target_dir")
env_triple="$(tr 'a-z-' 'A-Z_' <<<"$triple")"
export "CARGO_TARGET_${env_triple}_LINKER=$cc"
if ((exe)); then
  # Static and not position-independent (`-static`, which the specs file passes on: it has no
  # rule for -static-pie), the C start files from the specs file rather than Rust's own, and
  # gcc's unwinder under the name std asks a static musl program for (libunwind.a).
  mkdir -p "$lib/static"
  ln -sfn "$libgcc_eh" "$lib/static/libunwind.a"
  export "CARGO_TARGET_${env_triple}_RUSTFLAGS=-C target-feature=+crt-static -C relocation-model=static \
-C link-self-contained=no -C link-arg=$lib/dl_find_object.o -L native=$lib/static"
else
  export "CARGO_TARGET_${env_triple}_RUSTFLAGS=-C target-feature=-crt-static -C link-arg=-fuse-ld=lld \
-C link-arg=$lib/dl_find_object.o -C link-arg=$libgcc_eh -L native=$lib"
fi

if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
  echo "build-musl: rustup's $triple target" >&2
  if ((exe)); then
    # rustup's musl target links statically with its own start files and unwinder.
    unset "CARGO_TARGET_${env_triple}_RUSTFLAGS"
    export "CARGO_TARGET_${env_triple}_LINKER=$gcc"
  fi
  nice cargo build -q "${cargo_args[@]}"
else
  rustc=/usr/bin/rustc
  library="$("$rustc" --print sysroot)/lib/rustlib/src/rust/library"
  [ -f "$library/Cargo.lock" ] && [ -d "$library/vendor" ] ||
    die "no rustup $triple target, and the standard library's sources are not at $library (Debian packages rustc-web, rust-web-src)"
  echo "build-musl: Debian's rustc $("$rustc" --version | cut -d' ' -f2) rebuilding std for $triple (-Zbuild-std)" >&2
  # One directory source of name-version folders: Debian's registry and std's vendored crates
  # (std's copy wins where both hold a version). Its own lock file, so the glibc build's
  # Cargo.lock does not move to the newer versions these sources hold.
  crates="$root/target/$triple/crates"
  rm -rf "$crates"
  mkdir -p "$crates"
  ln -s /usr/share/cargo/registry/*/ "$crates/"
  ln -sf "$library"/vendor/*/ "$crates/"
  RUSTC="$rustc" RUSTC_BOOTSTRAP=1 nice /usr/bin/cargo build -q "${cargo_args[@]}" -Zbuild-std=std,panic_unwind \
    -Zlockfile-path --config "resolver.lockfile-path=\"$root/target/$triple/Cargo.lock\"" \
    --config 'source.crates-io.replace-with="musl-crates"' --config "source.musl-crates.directory=\"$crates\"" \
    --config 'net.offline=true'
fi

out="$target_dir/$triple/$profile/libotel_thread_ctx.so"
((exe)) && out="$target_dir/$triple/$profile/otel-ctx-dump"
[ -f "$out" ] || die "cargo did not produce $out"
echo "$out"
