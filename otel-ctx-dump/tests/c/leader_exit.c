/* Test target for otel-ctx-dump: the main thread publishes the process context, starts a worker
 * that publishes a span, and calls pthread_exit. The thread-group leader is then a zombie with an
 * empty /proc/PID/maps while the worker lives on. The worker prints "ready" (and its tid), then
 * exits the process with code 0 at EOF on stdin. */
#define _GNU_SOURCE
#include "otel_thread_ctx.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *worker(void *arg) {
  (void)arg;
  uint8_t trace_id[16], span_id[8];
  memset(trace_id, 0x5a, sizeof trace_id);
  memset(span_id, 0x6b, sizeof span_id);
  if (otel_thread_ctx_update(&trace_id, &span_id, 1) != OTEL_THREAD_CTX_STATUS_OK) exit(1);
  printf("ready %d\n", (int)gettid());
  fflush(stdout);
  char buf[64];
  while (fgets(buf, sizeof buf, stdin) != NULL) {
  }
  exit(0);
}

int main(void) {
  const OtelProcessCtxKeyValue resource[] = {
      {"service.name", {OTEL_PROCESS_CTX_VALUE_STRING, 0, 0.0, "leader-exit", 11}}};
  const char *const keys[] = {"k"};
  if (otel_process_ctx_publish(resource, 1, NULL, 0, keys, 1) != OTEL_THREAD_CTX_STATUS_OK) return 1;
  pthread_t t;
  pthread_create(&t, NULL, worker, NULL);
  pthread_exit(NULL);
}
