# Sourced by the scripts that build or test for another architecture than the machine's.
# `cross_env TRIPLE` exports what cargo needs to build (and run) for TRIPLE, or fails saying what
# is missing: a missing cross toolchain is an error, never a reason to skip.
#
#   aarch64-unknown-linux-gnu: linked by aarch64-linux-gnu-gcc; run by qemu-aarch64-static on a
#   machine that is not AArch64. The Rust standard library comes from rustup's aarch64 target when
#   it is installed, else from Debian's rustc-web with libstd-rust-web-dev:arm64 (/usr/bin/rustc;
#   rustup's rustdoc lacks the AArch64 std, so doc tests need the same choice of RUSTDOC).
#   scripts/setup.sh installs the Debian packages.

host_triple() {
  rustc -vV | sed -n 's/^host: //p'
}

cross_env() {
  local triple="$1" missing=()
  case "$triple" in
    aarch64-unknown-linux-gnu)
      command -v aarch64-linux-gnu-gcc >/dev/null || missing+=("aarch64-linux-gnu-gcc (gcc-aarch64-linux-gnu)")
      export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
      if [ "$(uname -m)" != aarch64 ]; then
        command -v qemu-aarch64-static >/dev/null || missing+=("qemu-aarch64-static (qemu-user-static)")
        [ -e /lib/ld-linux-aarch64.so.1 ] || missing+=("/lib/ld-linux-aarch64.so.1 (libc6:arm64, for qemu to run dynamically linked programs)")
        export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64-static
      fi
      if rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
        : # rustup's rustc and rustdoc have the target's std
      elif [ -x /usr/bin/rustc ] && [ -d "/usr/lib/rustlib/$triple/lib" ]; then
        export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
      else
        missing+=("a Rust standard library for $triple (rustup target add $triple, or Debian's rustc-web with libstd-rust-web-dev:arm64)")
      fi
      ;;
    *)
      echo "cross_env: no cross set-up for $triple" >&2
      return 1
      ;;
  esac
  if ((${#missing[@]})); then
    echo "cross toolchain for $triple incomplete (scripts/setup.sh installs it); missing:" >&2
    printf '  %s\n' "${missing[@]}" >&2
    return 1
  fi
}
