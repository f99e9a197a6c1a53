/*
 * Test support for tests/other_writers.rs (not part of the shipped library).
 *
 * A program linked with libotel_thread_ctx.so that loads each shared object named on its command
 * line with dlopen, then prints what otel_thread_ctx_self_check says:
 *   other_writers [LIBRARY...]
 *   self_check <status> <message>
 * Built with -DREFERENCE_SLOT it also declares the slot `extern __thread` and reads it, as
 * samples/c once did: its .dynsym then holds an undefined otel_thread_ctx_v1.
 * Exit status 0 when every library loaded, 1 otherwise.
 */
#define _GNU_SOURCE
#include "otel_thread_ctx.h"

#include <dlfcn.h>
#include <stdio.h>

#ifdef REFERENCE_SLOT
extern __thread void *otel_thread_ctx_v1;
#endif

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (dlopen(argv[i], RTLD_NOW | RTLD_LOCAL) == NULL) {
      fprintf(stderr, "dlopen %s: %s\n", argv[i], dlerror());
      return 1;
    }
  }
#ifdef REFERENCE_SLOT
  fprintf(stderr, "slot %p\n", otel_thread_ctx_v1);
#endif
  char msg[2048];
  OtelThreadCtxStatus status = otel_thread_ctx_self_check(msg, sizeof msg);
  printf("self_check %d %s\n", (int)status, msg);
  return 0;
}
