/* Native benchmark: ns per in-place update through otel_thread_ctx_update (dlopen + dlsym, as a
 * runtime would call it) next to the minimal C writer in its own dlopen'ed library.
 *   bench LIBOTEL_THREAD_CTX.so MINIMAL_WRITER.so [CALLS] [ROUNDS]
 * Prints a Markdown table; the best round of each writer counts. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef int (*update_fn)(const uint8_t (*)[16], const uint8_t (*)[8], uint8_t);

static update_fn load(const char *path, const char *symbol) {
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
    exit(1);
  }
  update_fn f = (update_fn)dlsym(lib, symbol);
  if (f == NULL) {
    fprintf(stderr, "dlsym %s: %s\n", symbol, dlerror());
    exit(1);
  }
  return f;
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Best ns/update over `rounds` rounds of `calls` updates with changing ids. */
static double measure(update_fn update, long calls, int rounds) {
  uint8_t trace[16] = {0}, span[8] = {0};
  double best = 1e18;
  for (int r = 0; r < rounds; r++) {
    double start = now_ns();
    for (long i = 0; i < calls; i++) {
      trace[0] = (uint8_t)i;
      span[0] = (uint8_t)(i >> 8);
      if (update(&trace, &span, (uint8_t)(i & 1)) != 0) {
        fprintf(stderr, "update failed\n");
        exit(1);
      }
    }
    double per = (now_ns() - start) / (double)calls;
    if (per < best) best = per;
  }
  return best;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s LIBOTEL_THREAD_CTX.so MINIMAL_WRITER.so [CALLS] [ROUNDS]\n", argv[0]);
    return 2;
  }
  long calls = argc > 3 ? atol(argv[3]) : 20000000L;
  int rounds = argc > 4 ? atoi(argv[4]) : 5;
  update_fn library = load(argv[1], "otel_thread_ctx_update");
  update_fn minimal = load(argv[2], "bench_minimal_update");
  /* Warm up both (first call attaches a record), then interleave so drift hits both alike. */
  measure(library, calls / 10 + 1, 1);
  measure(minimal, calls / 10 + 1, 1);
  double lib_ns = 1e18, min_ns = 1e18;
  for (int r = 0; r < rounds; r++) {
    double l = measure(library, calls, 1), m = measure(minimal, calls, 1);
    if (l < lib_ns) lib_ns = l;
    if (m < min_ns) min_ns = m;
  }
  printf("| writer | ns per update (best of %d x %ld) |\n|---|---|\n", rounds, calls);
  printf("| minimal C writer (TLSDESC slot, fences) | %.2f |\n", min_ns);
  printf("| otel_thread_ctx_update via dlsym | %.2f |\n", lib_ns);
  printf("\nratio library / minimal: %.2f\n", lib_ns / min_ns);
  return 0;
}
