/*
 * Test support (tests/lifecycle.rs): vector registers live across a thread's first access to
 * the slot must survive it, also when the library's TLS is in dynamic (DTV) placement (run with
 * GLIBC_TUNABLES=glibc.rtld.optional_static_tls=0), where glibc < 2.40's TLSDESC resolver
 * clobbers them (bug 31372).
 *
 * argv[1] is a library built with the test-hooks feature. Prints the self-check and
 * "probe: N of THREADS threads saw a changed vector register"; exits 0 when N is 0.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#define THREADS 20

typedef uint32_t (*probe_fn)(uint64_t);
typedef int (*self_check_fn)(char *, size_t);

static probe_fn probe;

static void *worker(void *arg) {
  /* The first call into the library on this thread: the slot's first access is inside. */
  return (void *)(uintptr_t)probe((uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ULL);
}

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 2;
  }
  probe = (probe_fn)dlsym(lib, "otel_thread_ctx_test_vector_probe");
  self_check_fn self_check = (self_check_fn)dlsym(lib, "otel_thread_ctx_self_check");
  if (!probe || !self_check) {
    fprintf(stderr, "missing symbol: build the library with --features test-hooks\n");
    return 2;
  }
  char msg[512];
  int status = self_check(msg, sizeof msg);
  printf("self-check %d: %s\n", status, msg);
  int bad = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_t t;
    void *changed;
    pthread_create(&t, NULL, worker, (void *)(uintptr_t)(i + 1));
    pthread_join(t, &changed);
    if (changed) bad++;
  }
  printf("probe: %d of %d threads saw a changed vector register\n", bad, THREADS);
  return bad == 0 ? 0 : 1;
}
