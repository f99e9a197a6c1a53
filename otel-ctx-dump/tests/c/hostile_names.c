/* Test target for otel-ctx-dump's terminal-injection test: every string a reader takes from
 * this process carries terminal control sequences. The library is dlopened from argv[1] (whose
 * file name has an escape sequence too); the process context names keys and a resource key with
 * ESC, CR, LF and a C1 control; the main thread and one worker get such names; the worker
 * publishes a span with attribute 0 set. Prints "ready", then waits for EOF on stdin. */
#define _GNU_SOURCE
#include "otel_thread_ctx.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

typedef OtelThreadCtxStatus (*publish_fn)(const OtelProcessCtxKeyValue *, size_t, const OtelProcessCtxKeyValue *,
                                          size_t, const char *const *, size_t);
typedef OtelThreadCtxStatus (*update_fn)(const uint8_t (*)[16], const uint8_t (*)[8], uint8_t);
typedef OtelThreadCtx *(*current_fn)(void);
typedef OtelThreadCtxStatus (*set_attr_fn)(OtelThreadCtx *, uint8_t, const uint8_t *, size_t);

static void *lib;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int published, done;

static void *worker(void *arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "\x1b[31mW\r\nX\x7f");
  update_fn update = (update_fn)dlsym(lib, "otel_thread_ctx_update");
  current_fn current = (current_fn)dlsym(lib, "otel_thread_ctx_current");
  set_attr_fn set_attr = (set_attr_fn)dlsym(lib, "otel_thread_ctx_set_attribute");
  uint8_t trace_id[16], span_id[8];
  memset(trace_id, 0x11, sizeof trace_id);
  memset(span_id, 0x22, sizeof span_id);
  int ok = update(&trace_id, &span_id, 1) == OTEL_THREAD_CTX_STATUS_OK &&
           set_attr(current(), 0, (const uint8_t *)"v\x1b[1m", 5) == OTEL_THREAD_CTX_STATUS_OK;
  pthread_mutex_lock(&lock);
  published = ok ? 1 : -1;
  pthread_cond_broadcast(&cond);
  while (!done) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  lib = dlopen(argv[1], RTLD_NOW);
  if (lib == NULL) {
    fprintf(stderr, "%s\n", dlerror());
    return 1;
  }
  prctl(PR_SET_NAME, "\x1b]0;T\x07M", 0, 0, 0);
  const OtelProcessCtxKeyValue resource[] = {
      {"service.name\x1b[5m", {OTEL_PROCESS_CTX_VALUE_STRING, 0, 0.0, "svc\x1b[0m", 7}}};
  const char *const keys[] = {"route\x1b[2J", "line\nbreak\r", "c1\xc2\x9bx"};
  publish_fn publish = (publish_fn)dlsym(lib, "otel_process_ctx_publish");
  if (publish(resource, 1, NULL, 0, keys, 3) != OTEL_THREAD_CTX_STATUS_OK) return 1;
  pthread_t t;
  pthread_create(&t, NULL, worker, NULL);
  pthread_mutex_lock(&lock);
  while (!published) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  if (published < 0) return 1;
  printf("ready\n");
  fflush(stdout);
  char buf[64];
  while (fgets(buf, sizeof buf, stdin) != NULL) {
  }
  pthread_mutex_lock(&lock);
  done = 1;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
  pthread_join(t, NULL);
  return 0;
}
