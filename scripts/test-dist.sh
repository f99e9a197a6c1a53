#!/usr/bin/env bash
# The static otel-ctx-dump binaries of target/dist/ (scripts/build-musl.sh --otel-ctx-dump): each a
# static executable of its machine that runs with no environment (--version; AArch64 under
# qemu-aarch64-static elsewhere), the x86-64 one reading a live glibc process (samples/c).
# Control: the glibc build fails the static check. Ends "dist: N passed, N failed".
set -uo pipefail
. "$(dirname "$0")/common.sh"
setup base musl cross

version="$(cargo_version)"

# What keeps FILE from being a static ARCH executable; silent when it is one.
static_exe_problems() {
  local elf
  elf="$(readelf -W -h -l -d "$1")" || { echo "not an ELF file"; return; }
  wrong_machine "$1" "$2"
  grep -q "Type: *EXEC" <<<"$elf" || echo "not a non-PIE executable: $(grep Type: <<<"$elf" | tr -s ' ')"
  ! grep -q "INTERP" <<<"$elf" || echo "has PT_INTERP ($(grep -o 'interpreter: [^]]*' <<<"$elf"))"
  ! grep -q "(NEEDED)" <<<"$elf" || echo "has NEEDED: $(sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' <<<"$elf" | tr '\n' ' ')"
}

# The glibc build, as the control and for the live target's library.
nice cargo build -q --release
problems="$(static_exe_problems target/release/otel-ctx-dump x86_64)"
grep -q "has PT_INTERP" <<<"$problems" && grep -q "has NEEDED" <<<"$problems" &&
  pass "control: the glibc otel-ctx-dump is caught (PT_INTERP, NEEDED)" ||
  fail "control: the static check did not flag target/release/otel-ctx-dump: '$problems'"

declare -A exe
for arch in x86_64 aarch64; do
  exe[$arch]="$(./scripts/build-musl.sh --target "$arch-unknown-linux-musl" --release --otel-ctx-dump | tail -n1)"
  problems="$(static_exe_problems "${exe[$arch]}" "$arch")"
  [ -z "$problems" ] && pass "static $arch otel-ctx-dump: ${exe[$arch]} (no PT_INTERP, no NEEDED)" ||
    fail "static $arch otel-ctx-dump ${exe[$arch]}: $problems"
  runner=""
  [ "$arch" = x86_64 ] || runner="$aarch64_runner"
  # env -i: no environment, as on a bare host.
  got="$(env -i ${runner:+"$runner"} "${exe[$arch]}" --version 2>&1)"
  [ "$got" = "otel-ctx-dump $version" ] && pass "$arch: --version prints '$got'${runner:+ (under $runner)}" ||
    fail "$arch: --version printed '$got', not 'otel-ctx-dump $version'"
done

# The x86-64 binary reads a live glibc process: the C sample's four workers, each holding a span.
live() {
  local out="$root/target/dist-test" pid
  make -s -C samples/c PROFILE=release OUT="$out" "$out/sample" || return 1
  "$out/sample" --threads 4 --hold 30 >"$out/sample.out" 2>"$out/sample.err" &
  pid=$!
  four() { [ "$(grep -c '"tid"' "$out/sample.out")" = 4 ]; }
  wait_for 10 four
  env -i "${exe[x86_64]}" --json "$pid" >"$out/dump.json"
  local rc=$?
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  ((rc == 0)) || { cat "$out/dump.json"; return 1; }
  python3 - "$out/sample.out" "$out/dump.json" <<'PY'
import json, sys
written = {l["tid"]: l for l in map(json.loads, open(sys.argv[1])) if "tid" in l}
dump = json.load(open(sys.argv[2]))
read = {t["tid"]: t for t in dump["threads"] if t.get("trace_id")}
assert len(written) == 4, written
for tid, w in written.items():
    assert tid in read, f"thread {tid} not read: {dump}"
    assert (read[tid]["trace_id"], read[tid]["span_id"]) == (w["trace_id"], w["span_id"]), (read[tid], w)
print(f"read the 4 workers' spans of process {dump.get('pid')}")
PY
}
check "x86_64: reads a live glibc process (samples/c, 4 threads)" live
tally dist
