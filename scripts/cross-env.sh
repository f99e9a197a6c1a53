# Sourced by the scripts that build or test for another architecture than the machine's (README,
# AArch64). `cross_env TRIPLE` exports what cargo needs to build and run for TRIPLE, or fails
# naming what is missing: a missing cross toolchain is an error, never a reason to skip.

host_triple() {
  rustc -vV | sed -n 's/^host: //p'
}

cross_env() {
  local triple="$1" missing=()
  [ "$triple" = aarch64-unknown-linux-gnu ] || { echo "cross_env: no cross set-up for $triple" >&2; return 1; }
  command -v aarch64-linux-gnu-gcc >/dev/null || missing+=("aarch64-linux-gnu-gcc (gcc-aarch64-linux-gnu)")
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
  if [ "$(uname -m)" != aarch64 ]; then
    command -v qemu-aarch64-static >/dev/null || missing+=("qemu-aarch64-static (qemu-user-static)")
    [ -e /lib/ld-linux-aarch64.so.1 ] || missing+=("/lib/ld-linux-aarch64.so.1 (libc6:arm64, for qemu)")
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64-static
  fi
  # rustup's aarch64 target, else Debian's rustc-web with its AArch64 std (rustup's rustdoc lacks
  # that std, so doc tests take Debian's rustdoc too).
  if ! rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
    if [ -x /usr/bin/rustc ] && [ -d "/usr/lib/rustlib/$triple/lib" ]; then
      export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
    else
      missing+=("a Rust standard library for $triple (rustup target add $triple, or libstd-rust-web-dev:arm64)")
    fi
  fi
  ((${#missing[@]} == 0)) && return
  echo "cross toolchain for $triple incomplete (scripts/setup.sh installs it); missing:" >&2
  printf '  %s\n' "${missing[@]}" >&2
  return 1
}
