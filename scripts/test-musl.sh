#!/usr/bin/env bash
# The musl suite (README, musl): builds the library for x86_64-unknown-linux-musl, shipped and with
# the test hooks, checks their ELF, then builds the C sample and tests/musl with musl-gcc
# (tests/musl/Makefile) and runs them under musl's loader, linked at start-up (static TLS) and
# loaded with dlopen (dynamic TLS). A missing toolchain fails. Ends "musl: N passed, N failed".
set -uo pipefail
. "$(dirname "$0")/common.sh"

for tool in musl-gcc ld.lld readelf python3 /lib/ld-musl-x86_64.so.1; do
  command -v "$tool" >/dev/null || { fail "$tool is missing (scripts/setup.sh installs it)"; tally musl; }
done
so="$(./scripts/build-musl.sh --release | tail -n 1)"
hooks_so="$(./scripts/build-musl.sh --release --test-hooks | tail -n 1)"
if [ -f "$so" ] && [ -f "$hooks_so" ] && [ "$so" != "$hooks_so" ]; then
  pass "build: $so, and with the test hooks $hooks_so"
else
  fail "build: scripts/build-musl.sh --release [--test-hooks] printed '$so' and '$hooks_so'"
  tally musl
fi

# The ELF properties readers and musl's loader need. Prints what is wrong; silent when right. Each
# listing is read whole first: `readelf | grep -q` under pipefail fails when grep stops early.
elf_problems() {
  local dynsyms relocs versions segments needed tls
  dynsyms="$(readelf --dyn-syms -W "$1")"
  relocs="$(readelf -rW "$1")"
  versions="$(readelf -VW "$1")"
  segments="$(readelf -lW "$1")"
  needed="$(readelf -dW "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
  [ "$needed" = "libc.so " ] || echo "NEEDED is '$needed', not musl's libc.so alone"
  if grep -q GLIBC_ <<<"$versions" || grep -q '@GLIBC' <<<"$dynsyms"; then
    echo "glibc symbol versions: $(grep -o 'GLIBC_[0-9.]*' <<<"$versions" | sort -u | tr '\n' ' ')"
  fi
  awk '$8 == "otel_thread_ctx_v1" && $3 == 8 && $4 == "TLS" && $5 == "GLOBAL" && $6 == "DEFAULT" && $7 != "UND" {
    found = 1 } END { exit !found }' <<<"$dynsyms" || echo "otel_thread_ctx_v1 is not a defined 8-byte TLS GLOBAL DEFAULT"
  grep -q 'R_X86_64_TLSDESC .* otel_thread_ctx_v1' <<<"$relocs" || echo "no R_X86_64_TLSDESC for otel_thread_ctx_v1"
  ! grep -qw _dl_find_object <<<"$dynsyms" || echo "_dl_find_object is in .dynsym (it must stay hidden)"
  grep -q GNU_EH_FRAME <<<"$segments" || echo "no PT_GNU_EH_FRAME: the unwinder cannot find the library's frames"
  tls="$(awk '$1 == "TLS" { print $6 }' <<<"$segments")"
  { [ -n "$tls" ] && [ $((tls)) -le 128 ]; } || echo "PT_TLS is '$tls' bytes, not at most 128"
}
for f in "$so" "$hooks_so"; do
  problems="$(elf_problems "$f")"
  [ -z "$problems" ] && pass "ELF of $f: NEEDED libc.so only, no GLIBC_ versions, otel_thread_ctx_v1" \
    "TLS GLOBAL 8 bytes via TLSDESC, PT_TLS <= 128, PT_GNU_EH_FRAME" || fail "ELF of $f: $problems"
done
# Control: the glibc build fails the same checks, so they can fail.
nice cargo build -q --release --lib 2>/dev/null
problems="$(elf_problems target/release/libotel_thread_ctx.so)"
grep -q "NEEDED is" <<<"$problems" && grep -q "glibc symbol versions" <<<"$problems" &&
  pass "ELF control: the glibc build is caught (NEEDED libc.so.6, GLIBC_ versions)" ||
  fail "ELF control: the checks did not flag the glibc build"

# The functions only tests call (native/test_hooks.rs): the shipped library exports none, the
# test-hooks build (the control) every one.
hooks="otel_process_ctx_read_payload otel_thread_ctx_live_records otel_thread_ctx_read_current "
hooks+="otel_thread_ctx_test_vector_probe "
exported_hooks() {
  readelf --dyn-syms -W "$1" | awk '$7 != "UND" && NF >= 8 { sub(/@.*/, "", $8); print $8 }' |
    grep -xF -f <(tr ' ' '\n' <<<"$hooks") | sort -u | tr '\n' ' '
}
got="$(exported_hooks "$so")"
[ -z "$got" ] && pass "the shipped musl library exports no test hook" || fail "$so exports test hooks: $got"
got="$(exported_hooks "$hooks_so")"
[ "$got" = "$hooks" ] && pass "the test-hooks build exports every hook: $got" ||
  fail "$hooks_so exports '$got', not '$hooks'"

out="$root/target/x86_64-unknown-linux-musl/tests"
check "C sample and tests built with musl-gcc" make -B -s -C tests/musl OUT="$out" LIB="$(dirname "$so")" \
  HOOKS_LIB="$(dirname "$hooks_so")" || tally musl
for exe in samples/sample samples/sample-dlopen suite-exe suite-dlopen; do
  [[ "$(readelf -lW "$out/$exe")" == *"interpreter: /lib/ld-musl-x86_64.so.1]"* ]] &&
    pass "$exe is run by musl's loader" || fail "$exe is not run by /lib/ld-musl-x86_64.so.1"
done

# samples/c: each worker thread's record as the sample reads it back, and its self-check.
check_sample() {
  "$out/samples/$1" --threads 6 >"$out/$1.out" 2>"$out/$1.err" &&
    grep -q "^ok: .*x86_64-unknown-linux-musl.*$2" "$out/$1.err" || { cat "$out/$1.err"; return 1; }
  python3 - "$out/$1.out" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if '"tid"' in l]
assert len({l["tid"] for l in lines}) == len(lines) == 6, "one line per distinct thread"
for l in lines:
    i = int(l["attributes"]["worker_id"][1:])
    trace = bytes((0x10 + b + i * 7 + l["pid"]) & 0xff for b in range(16)).hex()
    span = bytes([(0xa0 + b + i) & 0xff for b in range(7)] + [3 * 16 + i]).hex()
    assert (l["trace_id"], l["span_id"], l["flags"]) == (trace, span, 1 - i % 2), l
    assert l["attributes"]["http_route"] == f"/orders/{i}", l
    assert l["attributes"]["http_method"] == ("GET" if i % 2 == 0 else "POST"), l
assert sorted(int(l["attributes"]["worker_id"][1:]) for l in lines) == list(range(6)), lines
PY
}
check "samples/c sample (linked at start-up, static TLS): 6 threads' records" check_sample sample "static TLS"
check "samples/c sample-dlopen (dlopen, dynamic TLS): 6 threads' records" check_sample sample-dlopen "dynamic TLS"
check "libgcc_eh.a unwinds through native/musl/dl_find_object.c" "$out/unwind"

# The static library in a musl executable (README, Linking the static library): GNU ld relaxes
# the TLSDESC access to initial-exec, LLD to local-exec; the slot is found by dlsym.
static_link() {
  local exe="$out/static-link-$1" result
  result="$("$exe" 2>&1)" && grep -q "^self_check 0 ok: $exe (the main executable.* reached by $2" <<<"$result" &&
    python3 -c '
import json, sys
w = json.loads(sys.argv[1].splitlines()[1])
assert w["slot"] == w["ensure_record"] == w["handle_record"], w
assert w["slot_address"] == w["dlsym_address"], w
assert (w["trace_id"], w["flags"], w["http_route"]) == ("404142434445464748494a4b4c4d4e4f", 1, "/static"), w
' "$result" || { echo "$result"; return 1; }
}
check "static library in a musl executable (GNU ld): initial-exec" static_link bfd initial-exec
check "static library in a musl executable (LLD): local-exec" static_link lld local-exec

for test in api signal-stress signal-stress-control thread-exit; do
  check "$test, static TLS" "$out/suite-exe" "$test" static
  check "$test, dynamic TLS" "$out/suite-dlopen" "$test" dynamic
done
tally musl
