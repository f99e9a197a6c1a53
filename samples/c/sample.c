/*
 * End-to-end example of otel-thread-ctx from C: several threads attach a context, update it as
 * their "span" changes, set attributes, print what they published, optionally stay alive so an
 * outside reader (otel-ctx-dump, the eBPF profiler) can look, then detach and free.
 *
 *   sample [--threads N] [--hold SECONDS]
 *   sample-dlopen [--threads N] [--hold SECONDS]
 *
 * `sample-dlopen` runs the same code from a shared object it loads with dlopen, so the library
 * is loaded the way .NET loads it: after start-up, where glibc may place its TLS in the static
 * surplus or, with GLIBC_TUNABLES=glibc.rtld.optional_static_tls=0, in dynamic (DTV) TLS.
 *
 * Output: one JSON line per thread, read back through the thread's otel_thread_ctx_v1 slot:
 *   {"pid":1,"tid":2,"trace_id":"<32 hex>","span_id":"<16 hex>","flags":1,"attributes":{...}}
 * Exit status 0 when every step succeeded and no record is left allocated.
 */
#define _GNU_SOURCE
#include "otel_thread_ctx.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Attribute key indexes: positions in the process context's threadlocal.attribute_key_map. */
enum { KEY_HTTP_ROUTE = 0, KEY_HTTP_METHOD = 1, KEY_WORKER_ID = 2, KEY_COUNT = 3 };
static const char *const KEY_NAMES[KEY_COUNT] = {"http_route", "http_method", "worker_id"};

static int hold_seconds = 0;
static pthread_barrier_t published;
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

static void put_hex(const uint8_t *bytes, size_t n) {
  for (size_t i = 0; i < n; i++) printf("%02x", bytes[i]);
}

/* Prints the record exactly as a reader would find it through the TLS slot. */
static int print_published(void) {
  OtelThreadCtxRecord rec;
  if (otel_thread_ctx_read_current(&rec) != OTEL_THREAD_CTX_STATUS_OK || rec.valid != 1) return -1;
  pthread_mutex_lock(&print_lock);
  printf("{\"pid\":%d,\"tid\":%d,\"trace_id\":\"", (int)getpid(), (int)gettid());
  put_hex(rec.trace_id, sizeof rec.trace_id);
  printf("\",\"span_id\":\"");
  put_hex(rec.span_id, sizeof rec.span_id);
  printf("\",\"flags\":%u,\"attributes\":{", rec.trace_flags);
  for (size_t pos = 0, first = 1; pos + 2 <= rec.attrs_data_size; first = 0) {
    uint8_t key = rec.attrs_data[pos], len = rec.attrs_data[pos + 1];
    /* Values written by this sample are plain ASCII without quotes or backslashes. */
    printf("%s\"%s\":\"%.*s\"", first ? "" : ",", key < KEY_COUNT ? KEY_NAMES[key] : "?", (int)len,
           (const char *)&rec.attrs_data[pos + 2]);
    pos += 2 + (size_t)len;
  }
  printf("}}\n");
  fflush(stdout);
  pthread_mutex_unlock(&print_lock);
  return 0;
}

static int set_attr(OtelThreadCtx *ctx, uint8_t key, const char *value) {
  return otel_thread_ctx_set_attribute(ctx, key, (const uint8_t *)value, strlen(value));
}

static void *worker(void *arg) {
  uintptr_t index = (uintptr_t)arg;
  uint8_t trace_id[16], span_id[8];
  /* Ids derived from the pid and worker index, so every run and thread differs. */
  for (int i = 0; i < 16; i++) trace_id[i] = (uint8_t)(0x10 + i + index * 7 + (unsigned)getpid());
  for (int i = 0; i < 8; i++) span_id[i] = (uint8_t)(0xa0 + i + index);

  OtelThreadCtx *ctx = otel_thread_ctx_new(&trace_id, &span_id, 1);
  if (ctx == NULL || otel_thread_ctx_attach(ctx) != NULL || errno != 0) return (void *)1;

  /* The span changes a few times: each update rewrites the attached record in place. */
  for (uint8_t step = 1; step <= 3; step++) {
    span_id[7] = (uint8_t)(step * 16 + index);
    if (otel_thread_ctx_update(&trace_id, &span_id, index % 2 == 0 ? 1 : 0) != OTEL_THREAD_CTX_STATUS_OK)
      return (void *)1;
  }
  char route[32], worker_id[16];
  snprintf(route, sizeof route, "/orders/%u", (unsigned)index);
  snprintf(worker_id, sizeof worker_id, "w%u", (unsigned)index);
  if (set_attr(ctx, KEY_HTTP_ROUTE, route) != OTEL_THREAD_CTX_STATUS_OK ||
      set_attr(ctx, KEY_HTTP_METHOD, index % 2 == 0 ? "GET" : "POST") != OTEL_THREAD_CTX_STATUS_OK ||
      set_attr(ctx, KEY_WORKER_ID, worker_id) != OTEL_THREAD_CTX_STATUS_OK)
    return (void *)1;

  int failed = print_published() != 0;
  pthread_barrier_wait(&published);
  if (hold_seconds > 0) sleep((unsigned)hold_seconds);

  OtelThreadCtx *detached = otel_thread_ctx_detach();
  if (detached != ctx || otel_thread_ctx_free(detached) != OTEL_THREAD_CTX_STATUS_OK) failed = 1;
  return (void *)(uintptr_t)failed;
}

int otel_sample_main(int argc, char **argv) {
  int threads = 4;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      threads = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--hold") == 0 && i + 1 < argc) {
      hold_seconds = atoi(argv[++i]);
    } else {
      fprintf(stderr, "usage: %s [--threads N] [--hold SECONDS]\n", argv[0]);
      return 2;
    }
  }
  if (threads < 1 || threads > 256 || hold_seconds < 0) {
    fprintf(stderr, "--threads takes 1..256, --hold a number of seconds\n");
    return 2;
  }

  char msg[512];
  if (otel_thread_ctx_self_check(msg, sizeof msg) != OTEL_THREAD_CTX_STATUS_OK) {
    fprintf(stderr, "self-check failed: %s\n", msg);
    return 1;
  }
  fprintf(stderr, "%s\n", msg);

  pthread_barrier_init(&published, NULL, (unsigned)threads);
  pthread_t *ids = calloc((size_t)threads, sizeof *ids);
  if (ids == NULL) return 1;
  for (int i = 0; i < threads; i++) pthread_create(&ids[i], NULL, worker, (void *)(uintptr_t)i);
  int failures = 0;
  for (int i = 0; i < threads; i++) {
    void *result;
    pthread_join(ids[i], &result);
    failures += result != NULL;
  }
  free(ids);
  pthread_barrier_destroy(&published);

  size_t leaked = otel_thread_ctx_live_records();
  if (failures || leaked) {
    fprintf(stderr, "%d thread(s) failed, %zu record(s) still allocated\n", failures, leaked);
    return 1;
  }
  return 0;
}

#ifndef OTEL_SAMPLE_AS_LIBRARY
int main(int argc, char **argv) { return otel_sample_main(argc, argv); }
#endif
