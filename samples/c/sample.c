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
 * Before the threads start, the process context is published (OTEP 4719): the service name and
 * the attribute key map, whose positions are the key indexes the threads write, so a profiler
 * can name their attributes. It is removed at the end.
 *
 * Output: one JSON line for the process context, as found in /proc/self/maps (the payload size
 * is read from the mapping's header, as a profiler reads it):
 *   {"pid":1,"process_context":{"mapping":"/memfd:OTEL_CTX (deleted)","payload_size":200,
 *    "service.name":"otel-thread-ctx-sample","attribute_key_map":["http_route",...]}}
 * then one JSON line per thread, the record the thread's otel_thread_ctx_v1 slot points at, reached
 * through the API (otel_thread_ctx_current, otel_thread_ctx_record). A program never declares the
 * slot itself: profilers keep one slot per process and some find it by name in every module's
 * .dynsym, where an `extern` declaration adds a second, undefined entry they can misread:
 *   {"pid":1,"tid":2,"trace_id":"<32 hex>","span_id":"<16 hex>","flags":1,"attributes":{...}}
 * Exit status 0 when every step succeeded (each thread detaches and frees its record).
 */
#define _GNU_SOURCE
#include "otel_thread_ctx.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Attribute key indexes: positions in the process context's threadlocal.attribute_key_map. */
enum { KEY_HTTP_ROUTE = 0, KEY_HTTP_METHOD = 1, KEY_WORKER_ID = 2, KEY_COUNT = 3 };
static const char *const KEY_NAMES[KEY_COUNT] = {"http_route", "http_method", "worker_id"};
static const char SERVICE_NAME[] = "otel-thread-ctx-sample";

static int hold_seconds = 0;
static pthread_barrier_t published;
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

static void put_hex(const uint8_t *bytes, size_t n) {
  for (size_t i = 0; i < n; i++) printf("%02x", bytes[i]);
}

/* Prints the record a reader finds through the thread's slot: the one attached to the thread. */
static int print_published(void) {
  OtelThreadCtxRecord *published = NULL;
  if (otel_thread_ctx_record(otel_thread_ctx_current(), &published) != OTEL_THREAD_CTX_STATUS_OK) return -1;
  OtelThreadCtxRecord rec = *published;
  if (rec.valid != 1) return -1;
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

/* The name under which /proc/self/maps lists the OTEL_CTX mapping, or "" if it is not there,
 * and the mapping's start address. */
static void find_mapping(char *name, size_t size, uintptr_t *start) {
  static const char *const names[] = {"/memfd:OTEL_CTX (deleted)", "[anon:OTEL_CTX]", "[anon_shmem:OTEL_CTX]"};
  char line[512];
  name[0] = '\0';
  FILE *maps = fopen("/proc/self/maps", "r");
  if (maps == NULL) return;
  while (name[0] == '\0' && fgets(line, sizeof line, maps) != NULL) {
    line[strcspn(line, "\n")] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
      size_t len = strlen(line), n = strlen(names[i]);
      if (len >= n && strcmp(line + len - n, names[i]) == 0) {
        snprintf(name, size, "%s", names[i]);
        *start = (uintptr_t)strtoull(line, NULL, 16);
      }
    }
  }
  fclose(maps);
}

/* A string attribute for the process context: the key, and the value's text (no NUL needed). */
static OtelProcessCtxKeyValue text(const char *key, const char *value) {
  OtelProcessCtxKeyValue kv = {key, {OTEL_PROCESS_CTX_VALUE_STRING, 0, 0.0, value, strlen(value)}};
  return kv;
}

/* Publishes the process context: who this process is, and the names of the attribute key
 * indexes the threads write (KEY_NAMES[i] names index i), then prints what was published. */
static int publish_process_context(void) {
  char instance_id[32];
  snprintf(instance_id, sizeof instance_id, "sample-%d", (int)getpid());
  const OtelProcessCtxKeyValue resource[] = {
      text("service.name", SERVICE_NAME),
      text("service.instance.id", instance_id),
      text("deployment.environment.name", "example"),
      text("telemetry.sdk.language", "cpp"),
  };
  OtelThreadCtxStatus status =
      otel_process_ctx_publish(resource, sizeof resource / sizeof resource[0], NULL, 0, KEY_NAMES, KEY_COUNT);
  if (status != OTEL_THREAD_CTX_STATUS_OK) {
    fprintf(stderr, "otel_process_ctx_publish failed: %d\n", (int)status);
    return -1;
  }
  char mapping[64];
  uintptr_t start = 0;
  find_mapping(mapping, sizeof mapping, &start);
  if (mapping[0] == '\0' || start == 0) return -1;
  /* The 32-byte header: "OTEL_CTX", version (u32), payload size (u32), timestamp, payload. */
  uint32_t payload_size;
  if (memcmp((const void *)start, "OTEL_CTX", 8) != 0) return -1;
  memcpy(&payload_size, (const void *)(start + 12), sizeof payload_size);
  printf("{\"pid\":%d,\"process_context\":{\"mapping\":\"%s\",\"payload_size\":%u,\"service.name\":\"%s\","
         "\"attribute_key_map\":[",
         (int)getpid(), mapping, payload_size, SERVICE_NAME);
  for (int i = 0; i < KEY_COUNT; i++) printf("%s\"%s\"", i ? "," : "", KEY_NAMES[i]);
  printf("]}}\n");
  fflush(stdout);
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

  OtelThreadCtx *ctx, *displaced;
  if (otel_thread_ctx_new(&trace_id, &span_id, 1, &ctx) != OTEL_THREAD_CTX_STATUS_OK) return (void *)1;
  if (otel_thread_ctx_attach(ctx, &displaced) != OTEL_THREAD_CTX_STATUS_OK || displaced != NULL) return (void *)1;

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

  char msg[1024];
  if (otel_thread_ctx_self_check(msg, sizeof msg) != OTEL_THREAD_CTX_STATUS_OK) {
    fprintf(stderr, "self-check failed: %s\n", msg);
    return 1;
  }
  fprintf(stderr, "%s\n", msg);

  /* Before any thread writes attributes: readers wait for the key map to name them. */
  if (publish_process_context() != 0) return 1;

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

  if (otel_process_ctx_unpublish() != OTEL_THREAD_CTX_STATUS_OK) failures++;
  if (failures) {
    fprintf(stderr, "%d thread(s) failed\n", failures);
    return 1;
  }
  return 0;
}

#ifndef OTEL_SAMPLE_AS_LIBRARY
int main(int argc, char **argv) { return otel_sample_main(argc, argv); }
#endif
