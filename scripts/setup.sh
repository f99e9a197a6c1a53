#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine, and points cargo at
# Debian's crate registry when crates.io cannot be reached. Safe to run again.
set -euo pipefail
. "$(dirname "$0")/common.sh"

debs=(gcc make cbindgen python3 unzip
      librust-libc-dev librust-object-dev librust-prost-dev librust-prost-derive-dev
      librust-proptest-dev librust-tempfile-dev
      librust-serde-dev librust-serde-derive-dev librust-serde-json-dev
      librust-clap-dev librust-clap-derive-dev
      # The musl build (scripts/build-musl.sh): musl-gcc, LLD (links the AArch64 build too), and
      # Debian's rustc with the standard library's sources, rebuilt for musl where rustup has no musl target.
      musl-tools lld rustc-web cargo-web rust-web-src
      # linux-arm64: cross compiler, qemu-user, and the AArch64 runtime libraries qemu runs
      # programs and the published .NET tests with.
      gcc-aarch64-linux-gnu qemu-user-static libc6:arm64 libstdc++6:arm64 libssl3:arm64 libicu72:arm64
      # linux-musl-arm64: musl's AArch64 loader and libc, headers and gcc specs file, which the cross
      # compiler builds with (not musl-tools:arm64: it would replace the x86-64 musl-gcc).
      musl:arm64 musl-dev:arm64)
# Where rustup has no aarch64 target, rustc-web's AArch64 std builds the library.
rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu || debs+=(libstd-rust-web-dev:arm64)
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
# The :arm64 packages need the architecture enabled in dpkg.
if [ "$(dpkg --print-architecture)" != arm64 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "setup: enabling the arm64 architecture in dpkg"
  $sudo dpkg --add-architecture arm64
fi
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Cargo source replacement, only where crates.io is out of reach. The file is untracked, so a
# machine that reaches crates.io builds with the Cargo.toml as it is.
if [ ! -f .cargo/config.toml ] && { [ "${OTEL_CTX_FORCE_DEBIAN_CRATES:-}" = 1 ] ||
  ! timeout 8 curl -fsS -o /dev/null https://index.crates.io/config.json 2>/dev/null; }; then
  echo "setup: crates.io unreachable; using Debian's crates in /usr/share/cargo/registry"
  mkdir -p .cargo
  cat >.cargo/config.toml <<'TOML'
# Written by scripts/setup.sh because crates.io was unreachable. Delete to use crates.io.
[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "/usr/share/cargo/registry"

[net]
offline = true
TOML
fi
