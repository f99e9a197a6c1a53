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
