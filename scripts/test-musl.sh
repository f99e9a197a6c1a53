#!/usr/bin/env bash
# The musl suite: builds libotel_thread_ctx.so for x86_64-unknown-linux-musl
# (scripts/build-musl.sh --release), and the same with the test hooks (--test-hooks, in a target
# directory of its own), checks their ELF (the shipped one exports no hook), then builds the C
# sample (against the shipped library) and the C test programs (tests/musl/suite.c: C API, signal
# stress, thread exit; against the test-hooks library, whose hooks they call) with musl-gcc and
# runs them under musl's loader, linked at start-up (static TLS) and loaded with dlopen (dynamic
# TLS).
# A missing toolchain fails the suite. Prints one line per check and "musl: N passed, N failed".
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

passed=0
failed=0
pass() { echo "ok   $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
finish() {
  echo "musl: $passed passed, $failed failed"
  [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
  exit
}

for tool in musl-gcc ld.lld readelf python3; do
  command -v "$tool" >/dev/null || { fail "$tool is not installed (scripts/setup.sh installs it)"; finish; }
done
[ -x /lib/ld-musl-x86_64.so.1 ] || { fail "musl's loader /lib/ld-musl-x86_64.so.1 is missing"; finish; }

so="$(./scripts/build-musl.sh --release | tail -n 1)"
if [ -z "$so" ] || [ ! -f "$so" ]; then
  fail "build: scripts/build-musl.sh --release"
  finish
fi
pass "build: $so"
lib="$(dirname "$so")"
hooks_so="$(./scripts/build-musl.sh --release --test-hooks | tail -n 1)"
if [ -z "$hooks_so" ] || [ ! -f "$hooks_so" ] || [ "$hooks_so" = "$so" ]; then
  fail "build: scripts/build-musl.sh --release --test-hooks (got '$hooks_so')"
  finish
fi
pass "build with the test hooks: $hooks_so"
hooks_lib="$(dirname "$hooks_so")"

# The ELF properties readers and musl's loader need. Prints what is wrong; silent when right.
elf_problems() {
  # Each readelf listing is read whole first: `readelf | grep -q` under pipefail fails when grep
  # stops at an early match and readelf then dies of SIGPIPE.
  local f="$1" needed dynsyms relocs versions segments
  dynsyms="$(readelf --dyn-syms -W "$f")"
  relocs="$(readelf -rW "$f")"
  versions="$(readelf -VW "$f")"
  segments="$(readelf -lW "$f")"
  needed="$(readelf -dW "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
  [ "$needed" = "libc.so " ] || echo "NEEDED is '$needed', not musl's libc.so alone"
  if grep -q GLIBC_ <<<"$versions" || grep -q '@GLIBC' <<<"$dynsyms"; then
    echo "glibc symbol versions: $(grep -o 'GLIBC_[0-9.]*' <<<"$versions" | sort -u | tr '\n' ' ')"
  fi
  awk '$8 == "otel_thread_ctx_v1" && $3 == 8 && $4 == "TLS" && $5 == "GLOBAL" && $6 == "DEFAULT" && $7 != "UND" { found = 1 } END { exit !found }' <<<"$dynsyms" ||
    echo "otel_thread_ctx_v1 is not in .dynsym as a defined 8-byte TLS GLOBAL DEFAULT symbol"
  grep -q 'R_X86_64_TLSDESC .* otel_thread_ctx_v1' <<<"$relocs" ||
    echo "no R_X86_64_TLSDESC relocation for otel_thread_ctx_v1"
  ! grep -qw _dl_find_object <<<"$dynsyms" ||
    echo "_dl_find_object is in .dynsym (it must stay hidden)"
  grep -q GNU_EH_FRAME <<<"$segments" ||
    echo "no PT_GNU_EH_FRAME: the unwinder cannot find the library's frames (panics abort)"
  local tls
  tls="$(awk '$1 == "TLS" { print $6 }' <<<"$segments")"
  { [ -n "$tls" ] && [ $((tls)) -le 128 ]; } || echo "PT_TLS is '$tls' bytes, not at most 128"
}

problems="$(elf_problems "$so")"
if [ -z "$problems" ]; then
  pass "ELF: NEEDED libc.so only, no GLIBC_ versions, otel_thread_ctx_v1 TLS GLOBAL 8 bytes via TLSDESC, PT_TLS <= 128, PT_GNU_EH_FRAME"
else
  fail "ELF of $so: $problems"
fi
problems="$(elf_problems "$hooks_so")"
[ -z "$problems" ] && pass "ELF of the test-hooks build: the same properties" ||
  fail "ELF of $hooks_so: $problems"

# The functions only tests call (native/test_hooks.rs): the shipped library must not export them,
# the test-hooks build (the control, so the check can fail) must export every one.
test_hooks=(otel_thread_ctx_read_current otel_thread_ctx_live_records otel_process_ctx_read_payload
  otel_thread_ctx_test_vector_probe)
exported_hooks() {
  readelf --dyn-syms -W "$1" | awk '$7 != "UND" && NF >= 8 { sub(/@.*/, "", $8); print $8 }' |
    grep -xF -f <(printf '%s\n' "${test_hooks[@]}") | sort -u | tr '\n' ' '
}
shipped_hooks="$(exported_hooks "$so")"
[ -z "$shipped_hooks" ] && pass "the shipped musl library exports no test hook" ||
  fail "the shipped musl library $so exports test hooks: $shipped_hooks"
want_hooks="$(printf '%s\n' "${test_hooks[@]}" | sort | tr '\n' ' ')"
got_hooks="$(exported_hooks "$hooks_so")"
[ "$got_hooks" = "$want_hooks" ] && pass "the test-hooks build exports every hook: $got_hooks" ||
  fail "the test-hooks build $hooks_so exports '$got_hooks', not '$want_hooks'"
# Control: the glibc build fails the same checks, so they can fail.
if nice cargo build -q --release -p otel-thread-ctx --lib 2>/dev/null &&
  glibc_problems="$(elf_problems target/release/libotel_thread_ctx.so)" &&
  grep -q "NEEDED is" <<<"$glibc_problems" && grep -q "glibc symbol versions" <<<"$glibc_problems"; then
  pass "ELF control: the glibc build is caught (NEEDED libc.so.6, GLIBC_ versions)"
else
  fail "ELF control: the checks did not flag the glibc build"
fi

out="$root/target/x86_64-unknown-linux-musl/tests"
mkdir -p "$out"
cflags=(-std=c11 -O2 -g -Wall -Wextra -Werror -I "$root/include")
build() {
  if "$@" 2>"$out/build.log"; then return 0; fi
  cat "$out/build.log"
  return 1
}
if build make -s -C samples/c CC=musl-gcc LIBDIR="$lib" OUT="$out/samples" &&
  build musl-gcc "${cflags[@]}" -shared -fPIC -mtls-dialect=gnu2 tests/support/sampler.c \
    -L "$hooks_lib" -lotel_thread_ctx -Wl,-rpath,"$hooks_lib" -o "$out/libsampler.so" &&
  build musl-gcc "${cflags[@]}" -pthread tests/musl/suite.c -o "$out/suite-exe" \
    -L "$out" -lsampler -L "$hooks_lib" -lotel_thread_ctx -Wl,-rpath,"$out" -Wl,-rpath,"$hooks_lib" &&
  build musl-gcc "${cflags[@]}" -DSUITE_AS_LIBRARY -shared -fPIC -pthread tests/musl/suite.c -o "$out/libsuite.so" \
    -L "$out" -lsampler -L "$hooks_lib" -lotel_thread_ctx -Wl,-rpath,"$out" -Wl,-rpath,"$hooks_lib" &&
  build musl-gcc "${cflags[@]}" tests/musl/dlopen_main.c -o "$out/suite-dlopen" &&
  build musl-gcc "${cflags[@]}" -O0 -fasynchronous-unwind-tables -Wl,--eh-frame-hdr tests/musl/unwind.c \
    native/musl/dl_find_object.c "$(gcc -print-file-name=libgcc_eh.a)" -o "$out/unwind"; then
  pass "C sample and tests built with musl-gcc"
else
  fail "C sample and tests built with musl-gcc"
  finish
fi

interp_ok=1
for exe in "$out/samples/sample" "$out/samples/sample-dlopen" "$out/suite-exe" "$out/suite-dlopen"; do
  interp="$(readelf -lW "$exe" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')"
  [ "$interp" = /lib/ld-musl-x86_64.so.1 ] || { interp_ok=0; echo "$exe: interpreter '$interp'"; }
done
((interp_ok)) && pass "every test program's interpreter is /lib/ld-musl-x86_64.so.1" ||
  fail "a test program is not run by musl's loader"

# samples/c: each worker thread's record as the sample reads it back, and the self-check.
check_sample() {
  local program="$1" placement="$2" stdout stderr
  stdout="$("$out/samples/$program" --threads 6 2>"$out/$program.err")" || {
    cat "$out/$program.err"
    return 1
  }
  stderr="$(cat "$out/$program.err")"
  grep -q "^ok: .*x86_64-unknown-linux-musl.*$placement" <<<"$stderr" || {
    echo "self-check: $stderr"
    return 1
  }
  python3 - "$stdout" <<'PY'
import json, sys
lines = [json.loads(l) for l in sys.argv[1].splitlines() if '"tid"' in l]
assert len(lines) == 6, lines
assert len({l["tid"] for l in lines}) == 6, "one line per distinct thread"
seen = []
for l in lines:
    i = int(l["attributes"]["worker_id"][1:])
    seen.append(i)
    trace = bytes((0x10 + b + i * 7 + l["pid"]) & 0xff for b in range(16)).hex()
    span = bytes([(0xa0 + b + i) & 0xff for b in range(7)] + [3 * 16 + i]).hex()
    assert (l["trace_id"], l["span_id"], l["flags"]) == (trace, span, 1 - i % 2), l
    assert l["attributes"]["http_route"] == f"/orders/{i}", l
    assert l["attributes"]["http_method"] == ("GET" if i % 2 == 0 else "POST"), l
assert sorted(seen) == list(range(6)), seen
PY
}
check_sample sample "static TLS" && pass "samples/c sample (linked at start-up, static TLS): 6 threads' records" ||
  fail "samples/c sample (static TLS)"
check_sample sample-dlopen "dynamic TLS" && pass "samples/c sample-dlopen (dlopen, dynamic TLS): 6 threads' records" ||
  fail "samples/c sample-dlopen (dynamic TLS)"

if result="$("$out/unwind" 2>&1)"; then
  pass "libgcc_eh.a unwinds through native/musl/dl_find_object.c: $result"
else
  fail "libgcc_eh.a cannot unwind with native/musl/dl_find_object.c: $result"
fi

# The static library linked into a musl executable, which exports the slot (README, Linking the
# static library): GNU ld relaxes the TLSDESC access to initial-exec, LLD to local-exec.
musl_lib="$root/target/x86_64-unknown-linux-musl/musl-build/lib"
for run in "bfd initial-exec" "lld local-exec"; do
  read -r linker access <<<"$run"
  result=""
  exe="$out/static-link-$linker"
  if build musl-gcc "${cflags[@]}" -mtls-dialect=gnu2 -pthread tests/support/static_link.c -o "$exe" \
    -fuse-ld="$linker" -Wl,--export-dynamic-symbol=otel_thread_ctx_v1 -Wl,--eh-frame-hdr \
    "$lib/libotel_thread_ctx.a" "$musl_lib/dl_find_object.o" "$(gcc -print-file-name=libgcc_eh.a)" -L "$musl_lib" &&
    result="$("$exe" 2>&1)" &&
    grep -q "^self_check 0 ok: $exe (the main executable.* reached by $access" <<<"$result" &&
    python3 -c '
import json, sys
w = json.loads(sys.argv[1].splitlines()[1])
assert w["slot"] == w["ensure_record"] == w["handle_record"], w
assert w["slot_address"] == w["dlsym_address"], w
assert (w["trace_id"], w["flags"], w["http_route"]) == ("404142434445464748494a4b4c4d4e4f", 1, "/static"), w
' "$result"; then
    pass "static library in a musl executable ($linker): self-check ok, $access, slot found by dlsym"
  else
    fail "static library in a musl executable ($linker): ${result:-build failed}"
  fi
done

for test in api signal-stress signal-stress-control thread-exit; do
  for run in "suite-exe static" "suite-dlopen dynamic"; do
    read -r program placement <<<"$run"
    if result="$("$out/$program" "$test" "$placement" 2>&1)"; then
      pass "$test, $placement TLS: $(grep -v '^PASS\|^self-check' <<<"$result" | tr '\n' ' ')"
    else
      fail "$test, $placement TLS: $result"
    fi
  done
done
finish
