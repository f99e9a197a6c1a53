/*
 * Test support for tests/static_link.rs (not part of the shipped library).
 *
 * A program linked against the static library, libotel_thread_ctx.a, so the otel_thread_ctx_v1
 * slot lives in this executable, which must export it for readers to find it. The test builds
 * it with the flags the README gives, for example:
 *   gcc -O2 -mtls-dialect=gnu2 -pthread -I include tests/support/static_link.c -o static_link
 *       -Wl,--export-dynamic-symbol=otel_thread_ctx_v1 target/debug/libotel_thread_ctx.a
 *       -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
 * (this file declares the slot and reads it directly, through TLSDESC with -mtls-dialect=gnu2).
 *
 *   static_link [--hold]
 *
 * Prints, one line each:
 *   self_check <status> <message>           what otel_thread_ctx_self_check says here
 *   {"pid":1,"tid":2,"slot":"0x...",...}     one worker thread, after it published a span
 * The worker's line holds the slot's value read through the TLS symbol, what
 * otel_thread_ctx_ensure_record and otel_thread_ctx_record(otel_thread_ctx_current(), ...) return,
 * the slot's own address next to the one dlsym resolves from the dynamic symbol table, and the
 * ids and attribute it wrote. With --hold the worker keeps its span until stdin is closed, so an
 * outside reader can look at it.
 * Exit status 0 when every API call succeeded (the test compares the values), 1 otherwise.
 */
#define _GNU_SOURCE
#include "otel_thread_ctx.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern __thread void *otel_thread_ctx_v1;

enum { KEY_HTTP_ROUTE = 0 };
static const char *const KEY_NAMES[] = {"http_route"};
static const char ROUTE[] = "/static";
static int hold = 0;

static void put_hex(const char *name, const uint8_t *bytes, size_t n) {
  printf(",\"%s\":\"", name);
  for (size_t i = 0; i < n; i++) printf("%02x", bytes[i]);
  printf("\"");
}

static void *worker(void *arg) {
  (void)arg;
  uint8_t trace_id[16], span_id[8];
  for (int i = 0; i < 16; i++) trace_id[i] = (uint8_t)(0x40 + i);
  for (int i = 0; i < 8; i++) span_id[i] = (uint8_t)(0xb0 + i);

  OtelThreadCtxRecord *ensured = NULL, *of_handle = NULL;
  if (otel_thread_ctx_ensure_record(&ensured) != OTEL_THREAD_CTX_STATUS_OK ||
      otel_thread_ctx_update(&trace_id, &span_id, 1) != OTEL_THREAD_CTX_STATUS_OK ||
      otel_thread_ctx_set_attribute(otel_thread_ctx_current(), KEY_HTTP_ROUTE, (const uint8_t *)ROUTE,
                                    strlen(ROUTE)) != OTEL_THREAD_CTX_STATUS_OK ||
      otel_thread_ctx_record(otel_thread_ctx_current(), &of_handle) != OTEL_THREAD_CTX_STATUS_OK)
    return (void *)1;
  void *slot = otel_thread_ctx_v1;
  void *resolved = dlsym(RTLD_DEFAULT, "otel_thread_ctx_v1");

  printf("{\"pid\":%d,\"tid\":%d,\"slot\":\"%p\",\"ensure_record\":\"%p\",\"handle_record\":\"%p\","
         "\"slot_address\":\"%p\",\"dlsym_address\":\"%p\"",
         (int)getpid(), (int)gettid(), slot, (void *)ensured, (void *)of_handle, (void *)&otel_thread_ctx_v1,
         resolved);
  put_hex("trace_id", trace_id, sizeof trace_id);
  put_hex("span_id", span_id, sizeof span_id);
  printf(",\"flags\":1,\"http_route\":\"%s\"}\n", ROUTE);
  fflush(stdout);

  if (hold) {
    while (getchar() != EOF) {
    }
  }
  return otel_thread_ctx_clear() == OTEL_THREAD_CTX_STATUS_OK ? NULL : (void *)1;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--hold") == 0) {
    hold = 1;
  } else if (argc != 1) {
    fprintf(stderr, "usage: %s [--hold]\n", argv[0]);
    return 2;
  }

  char msg[512];
  OtelThreadCtxStatus checked = otel_thread_ctx_self_check(msg, sizeof msg);
  printf("self_check %d %s\n", (int)checked, msg);
  fflush(stdout);

  const OtelProcessCtxKeyValue resource[] = {
      {"service.name", {OTEL_PROCESS_CTX_VALUE_STRING, 0, 0.0, "otel-thread-ctx-static-link", 27}}};
  if (otel_process_ctx_publish(resource, 1, NULL, 0, KEY_NAMES, 1) != OTEL_THREAD_CTX_STATUS_OK) return 1;

  pthread_t thread;
  void *failed = (void *)1;
  if (pthread_create(&thread, NULL, worker, NULL) != 0 || pthread_join(thread, &failed) != 0) return 1;
  if (otel_process_ctx_unpublish() != OTEL_THREAD_CTX_STATUS_OK) return 1;
  return failed == NULL ? 0 : 1;
}
