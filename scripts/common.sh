# Sourced by the scripts: moves to the repository's root ($root) and defines what they share.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" || exit 1

die() {
  echo "$(basename "$0" .sh): $*" >&2
  exit 1
}

# Test scripts: pass/fail count one check each; check NAME COMMAND... runs COMMAND as one check
# (NAME, then its output: in full on failure, without PASS/self-check lines on success); tally
# LABEL prints "LABEL: N passed, N failed" and exits, non-zero unless every check passed.
passed=0 failed=0 failures=()
pass() { echo "ok   $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); failures+=("$1"); }
check() {
  local check_out summary
  check_out="$("${@:2}" 2>&1)" || { fail "$1" "$check_out"; return 1; }
  summary="$(grep -v '^PASS \|^self-check' <<<"$check_out" | paste -sd ' ')"
  pass "$1${summary:+: $summary}"
}
tally() {
  echo "$1: $passed passed, $failed failed"
  [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
  exit
}

# Installs PARTS (scripts/setup.sh base|musl|cross; none: all) once per run: the scripts this one
# starts skip the parts it set up.
setup() {
  local part todo=()
  for part in ${*:-base musl cross}; do [[ " ${OTEL_CTX_SET_UP:-} " == *" $part "* ]] || todo+=("$part"); done
  ((${#todo[@]} == 0)) || "$root/scripts/setup.sh" "${todo[@]}" || die "setup failed"
  export OTEL_CTX_SET_UP="${OTEL_CTX_SET_UP:-} ${todo[*]}"
}

# The product's version: the root Cargo.toml's [workspace.package] version.
cargo_version() { sed -n '/^\[workspace\.package\]/,/^\[/{s/^version *= *"\([^"]*\)".*/\1/p}' Cargo.toml | head -1; }

# Runs COMMAND every 0.1 s until it succeeds (true) or SECONDS have passed (false).
wait_for() {
  local i
  for ((i = 0; i < $1 * 10; i++)); do "${@:2}" && return; sleep 0.1; done
  return 1
}

# What keeps ELF FILE from being one of ARCH's (x86_64 or aarch64); silent when it is one.
wrong_machine() {
  local machine=AArch64 header
  [ "$2" = aarch64 ] || machine="Advanced Micro Devices X86-64"
  header="$(readelf -hW "$1")" || { echo "not an ELF file"; return; }
  grep -q "Machine: *$machine\$" <<<"$header" || echo "not an $2 ELF: $(grep Machine: <<<"$header" | tr -s ' ')"
}

# How an AArch64 program runs here: under qemu-user, or natively on an AArch64 machine.
aarch64_runner=""
[ "$(uname -m)" = aarch64 ] || aarch64_runner=qemu-aarch64-static

# Exports what cargo needs to build and run for aarch64-unknown-linux-gnu (the only glibc cross
# build), which scripts/setup.sh cross installs.
cross_env() {
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
  [ -z "$aarch64_runner" ] || export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$aarch64_runner"
  # rustup's aarch64 target, else Debian's rustc-web with its AArch64 std (rustup's rustdoc lacks
  # that std, so doc tests take Debian's rustdoc too).
  rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu ||
    export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
}
