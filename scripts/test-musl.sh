#!/usr/bin/env bash
# The musl suite, for x86_64 and aarch64 (or the one named: scripts/test-musl.sh [x86_64|aarch64]):
# the musl library's ELF (shipped and with the test hooks), then samples/c and tests/musl built with
# the musl C compiler and run under musl's loader, linked at start-up and loaded with dlopen
# (AArch64 under qemu-aarch64-static elsewhere). What each check covers: docs/PLATFORMS.md, musl.
# A missing toolchain fails. Ends "musl: N passed, N failed".
set -uo pipefail
. "$(dirname "$0")/common.sh"
setup base musl cross

arches="${*:-x86_64 aarch64}"
[[ " $arches " =~ ^( (x86_64|aarch64))+\ $ ]] || { echo "usage: $0 [x86_64|aarch64]" >&2; exit 2; }

# What keeps FILE from having the ELF properties readers and musl's loader need, on ARCH. The
# listing is read whole first: `readelf | grep -q` under pipefail fails when grep stops early.
elf_problems() {
  local file="$1" arch="$2" elf needed tls reloc="R_${2^^}_TLSDESC"
  wrong_machine "$file" "$arch"
  elf="$(readelf -W -d -r --dyn-syms -V -l "$file")"
  needed="$(sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' <<<"$elf" | tr '\n' ' ')"
  [ "$needed" = "libc.so " ] || echo "NEEDED is '$needed', not musl's libc.so alone"
  ! grep -q GLIBC_ <<<"$elf" || echo "glibc symbol versions: $(grep -o 'GLIBC_[0-9.]*' <<<"$elf" | sort -u | tr '\n' ' ')"
  awk '$8 == "otel_thread_ctx_v1" && $3 == 8 && $4 == "TLS" && $5 == "GLOBAL" && $6 == "DEFAULT" && $7 != "UND" {
    found = 1 } END { exit !found }' <<<"$elf" || echo "otel_thread_ctx_v1 is not a defined 8-byte TLS GLOBAL DEFAULT"
  grep -q "$reloc .* otel_thread_ctx_v1" <<<"$elf" || echo "no $reloc for otel_thread_ctx_v1"
  ! grep -qw _dl_find_object <<<"$elf" || echo "_dl_find_object is in .dynsym (it must stay hidden)"
  grep -q GNU_EH_FRAME <<<"$elf" || echo "no PT_GNU_EH_FRAME: the unwinder cannot find the library's frames"
  tls="$(awk '$1 == "TLS" { print $6 }' <<<"$elf")"
  { [ -n "$tls" ] && [ $((tls)) -le 128 ]; } || echo "PT_TLS is '$tls' bytes, not at most 128"
}

# Control: the glibc build of the machine (x86-64) fails the same checks, so they can fail.
nice cargo build -q --release --lib 2>/dev/null
problems="$(elf_problems target/release/libotel_thread_ctx.so x86_64)"
grep -q "NEEDED is" <<<"$problems" && grep -q "glibc symbol versions" <<<"$problems" &&
  pass "ELF control: the glibc build is caught (NEEDED libc.so.6, GLIBC_ versions)" ||
  fail "ELF control: the checks did not flag the glibc build"
problems="$(elf_problems target/release/libotel_thread_ctx.so aarch64)"
grep -q "not an aarch64 ELF" <<<"$problems" && grep -q "no R_AARCH64_TLSDESC" <<<"$problems" &&
  pass "ELF control: an x86-64 library is caught by the aarch64 checks (machine, relocation)" ||
  fail "ELF control: the aarch64 checks did not flag an x86-64 library"

# The functions only tests call (native/test_hooks.rs): the shipped library exports none, the
# test-hooks build (the control) every one.
hooks="otel_process_ctx_forget_key_map otel_process_ctx_read_payload "
hooks+="otel_thread_ctx_live_records otel_thread_ctx_read_current otel_thread_ctx_test_vector_probe "
exported_hooks() {
  readelf --dyn-syms -W "$1" | awk '$7 != "UND" && NF >= 8 { sub(/@.*/, "", $8); print $8 }' |
    grep -xF -f <(tr ' ' '\n' <<<"$hooks") | sort -u | tr '\n' ' '
}

# samples/c: each worker thread's record as the sample reads it back, and its self-check.
check_sample() {
  ${runner:+"$runner"} "$out/samples/$1" --threads 6 >"$out/$1.out" 2>"$out/$1.err" &&
    grep -q "^ok: .*$triple.*$2" "$out/$1.err" || { cat "$out/$1.err"; return 1; }
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

# The static library in a musl executable (docs/PLATFORMS.md, Linking the static library): GNU ld relaxes
# the TLSDESC access to initial-exec on x86-64, LLD to local-exec; the slot is found by dlsym.
static_link() {
  local exe="$out/static-link-$1" result
  result="$(${runner:+"$runner"} "$exe" 2>&1)" &&
    grep -q "^self_check 0 ok: $exe (the main executable.* reached by $2" <<<"$result" &&
    python3 -c '
import json, sys
w = json.loads(sys.argv[1].splitlines()[1])
assert w["slot"] == w["ensure_record"] == w["handle_record"], w
assert w["slot_address"] == w["dlsym_address"], w
assert (w["trace_id"], w["flags"], w["http_route"]) == ("404142434445464748494a4b4c4d4e4f", 1, "/static"), w
' "$result" || { echo "$result"; return 1; }
}

# The whole suite for one architecture; its checks are named "[TRIPLE] ...".
musl_suite() {
  local arch="$1" loader="/lib/ld-musl-$1.so.1" cc musl_build libgcc_eh exe f problems got test bfd_model=initial-exec
  triple="$arch-unknown-linux-musl" runner="" out="$root/target/$arch-unknown-linux-musl/tests"
  local t="[$triple]"
  echo "--- $triple"
  if [ "$arch" = aarch64 ] && [ -n "$aarch64_runner" ]; then
    # Signals cost far more under qemu-user: the sampler's 20 us period would starve the writer.
    runner="$aarch64_runner"
    local -x SUITE_SAMPLER_PERIOD_NS=200000
  fi
  so="$(./scripts/build-musl.sh --target "$triple" --release | tail -n 1)"
  hooks_so="$(./scripts/build-musl.sh --target "$triple" --release --test-hooks | tail -n 1)"
  if [ -f "$so" ] && [ -f "$hooks_so" ] && [ "$so" != "$hooks_so" ]; then
    pass "$t build: $so, and with the test hooks $hooks_so"
  else
    fail "$t build: scripts/build-musl.sh --target $triple --release [--test-hooks] printed '$so' and '$hooks_so'"
    return 1
  fi
  for f in "$so" "$hooks_so"; do
    problems="$(elf_problems "$f" "$arch")"
    [ -z "$problems" ] && pass "$t ELF of $f: $arch, NEEDED libc.so only, no GLIBC_ versions," \
      "otel_thread_ctx_v1 TLS GLOBAL 8 bytes via TLSDESC, PT_TLS <= 128, PT_GNU_EH_FRAME" || fail "$t ELF of $f: $problems"
  done
  got="$(exported_hooks "$so")"
  [ -z "$got" ] && pass "$t the shipped musl library exports no test hook" || fail "$t $so exports test hooks: $got"
  got="$(exported_hooks "$hooks_so")"
  [ "$got" = "$hooks" ] && pass "$t the test-hooks build exports every hook: $got" ||
    fail "$t $hooks_so exports '$got', not '$hooks'"

  { read -r cc && read -r musl_build && read -r libgcc_eh; } < <(./scripts/build-musl.sh --target "$triple" --print-cc)
  check "$t C sample and tests built with $(basename "$cc")" make -B -s -C tests/musl OUT="$out" CC="$cc" \
    MUSL_BUILD="$musl_build" LIBGCC_EH="$libgcc_eh" LIB="$(dirname "$so")" HOOKS_LIB="$(dirname "$hooks_so")" ||
    return 1
  for exe in samples/sample samples/sample-dlopen suite-exe suite-dlopen unwind static-link-bfd static-link-lld; do
    [[ "$(readelf -lW "$out/$exe")" == *"interpreter: $loader]"* ]] &&
      pass "$t $exe is run by musl's loader" || fail "$t $exe is not run by $loader"
  done

  check "$t samples/c sample (linked at start-up, static TLS): 6 threads' records" check_sample sample "static TLS"
  check "$t samples/c sample-dlopen (dlopen, dynamic TLS): 6 threads' records" check_sample sample-dlopen "dynamic TLS"
  check "$t libgcc_eh.a unwinds through native/musl/dl_find_object.c" ${runner:+"$runner"} "$out/unwind"
  # GNU ld for AArch64 relaxes it to local-exec too (as with glibc, tests/static_link.rs).
  [ "$arch" = aarch64 ] && bfd_model=local-exec
  check "$t static library in a musl executable (GNU ld): $bfd_model" static_link bfd "$bfd_model"
  check "$t static library in a musl executable (LLD): local-exec" static_link lld local-exec

  for test in api signal-stress signal-stress-control thread-exit; do
    check "$t $test, static TLS" ${runner:+"$runner"} "$out/suite-exe" "$test" static
    check "$t $test, dynamic TLS" ${runner:+"$runner"} "$out/suite-dlopen" "$test" dynamic
  done
}

for arch in $arches; do
  musl_suite "$arch"
done
tally musl
