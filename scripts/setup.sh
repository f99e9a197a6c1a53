#!/usr/bin/env bash
# Installs what the scripts need on a Debian machine, by part, each Debian package only when it
# is missing (a second run installs nothing):
#   base   compilers, cbindgen and the Rust crates the workspace builds with (Debian's)
#   musl   the musl builds (scripts/build-musl.sh): musl-gcc, LLD, Debian's rustc and std sources
#   cross  AArch64: the cross compiler, qemu-user, and the arm64 C libraries qemu runs programs
#          and the published .NET tests with (glibc; musl's loader and specs file)
# No part named: all three. Every part also points cargo at Debian's crate registry when
# crates.io cannot be reached (an untracked .cargo/config.toml; nothing changes where it can).
set -euo pipefail
. "$(dirname "$0")/common.sh"

debs=()
for part in ${*:-base musl cross}; do
  case "$part" in
    base) debs+=(gcc make cbindgen python3 unzip librust-libc-dev librust-object-dev librust-prost-dev
                 librust-prost-derive-dev librust-proptest-dev librust-tempfile-dev librust-serde-dev
                 librust-serde-derive-dev librust-serde-json-dev librust-clap-dev librust-clap-derive-dev
                 librust-syn-dev) ;;
    # Debian's rustc with the standard library's sources rebuilds std where rustup has no musl target.
    musl) debs+=(musl-tools lld rustc-web cargo-web rust-web-src) ;;
    # Not musl-tools:arm64 (it would replace the x86-64 musl-gcc): musl-dev:arm64's specs file.
    cross) debs+=(gcc-aarch64-linux-gnu lld qemu-user-static libc6:arm64 libstdc++6:arm64 libssl3:arm64
                  libicu72:arm64 musl:arm64 musl-dev:arm64)
      # Where rustup has no aarch64 target, rustc-web's AArch64 std builds the library.
      rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu ||
        debs+=(rustc-web libstd-rust-web-dev:arm64) ;;
    *) die "usage: $0 [base|musl|cross]..." ;;
  esac
done
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
if [[ " ${debs[*]} " == *:arm64* ]] && [ "$(dpkg --print-architecture)" != arm64 ] &&
  ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "setup: enabling the arm64 architecture in dpkg"
  $sudo dpkg --add-architecture arm64
fi
installed=" $(dpkg-query -W -f='${binary:Package} ${db:Status-Abbrev}\n' "${debs[@]}" 2>/dev/null |
  awk '$2 == "ii" { print $1 }' | sed "s/:$(dpkg --print-architecture)\$//" | tr '\n' ' ') "
missing=()
for p in "${debs[@]}"; do [[ "$installed" == *" $p "* ]] || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -f .cargo/config.toml ] && { [ "${OTEL_CTX_FORCE_DEBIAN_CRATES:-}" = 1 ] ||
  ! timeout 8 curl -fsS -o /dev/null https://index.crates.io/config.json 2>/dev/null; }; then
  echo "setup: crates.io unreachable; using Debian's crates in /usr/share/cargo/registry"
  mkdir -p .cargo
  printf '%s\n' "# Written by scripts/setup.sh because crates.io was unreachable. Delete to use crates.io." \
    '[source.crates-io]' 'replace-with = "debian"' '[source.debian]' 'directory = "/usr/share/cargo/registry"' \
    '[net]' 'offline = true' >.cargo/config.toml
fi
