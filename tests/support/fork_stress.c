/*
 * Test support (tests/lifecycle.rs): fork in a multi-threaded process must not hang the child.
 *
 * Two threads loop otel_thread_ctx_new / set_attribute / free (the handle registry's lock) and
 * a third loops otel_process_ctx_publish (the process context's lock), while the main thread
 * forks FORKS times. Each child calls otel_thread_ctx_new and otel_process_ctx_publish once and
 * exits 0; a child still running after TIMEOUT_MS is killed and counted as hung.
 * Prints "forks N ok N hung N failed N" and exits 0 only when every child exited 0.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "otel_thread_ctx.h"

#define FORKS 50
#define TIMEOUT_MS 3000

static atomic_int stop;
static const uint8_t TRACE[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const uint8_t SPAN[8] = {1, 2, 3, 4, 5, 6, 7, 8};
static const char *const KEYS[] = {"k0", "k1"};
static const OtelProcessCtxKeyValue RESOURCE[] = {
    {"service.name", {OTEL_PROCESS_CTX_VALUE_STRING, 0, 0.0, "fork-stress", 11}}};

static void *handles(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    OtelThreadCtx *h;
    if (otel_thread_ctx_new(&TRACE, &SPAN, 1, &h) == OTEL_THREAD_CTX_STATUS_OK) {
      otel_thread_ctx_set_attribute(h, 0, (const uint8_t *)"value", 5);
      otel_thread_ctx_free(h);
    }
  }
  return NULL;
}

static void *context(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) otel_process_ctx_publish(RESOURCE, 1, NULL, 0, KEYS, 2);
  return NULL;
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int main(void) {
  if (otel_process_ctx_publish(RESOURCE, 1, NULL, 0, KEYS, 2) != OTEL_THREAD_CTX_STATUS_OK) {
    fprintf(stderr, "publish failed\n");
    return 2;
  }
  pthread_t threads[3];
  pthread_create(&threads[0], NULL, handles, NULL);
  pthread_create(&threads[1], NULL, handles, NULL);
  pthread_create(&threads[2], NULL, context, NULL);
  int ok = 0, hung = 0, failed = 0;
  for (int i = 0; i < FORKS; i++) {
    usleep(2000);
    pid_t pid = fork();
    if (pid == 0) {
      OtelThreadCtx *h;
      if (otel_thread_ctx_new(&TRACE, &SPAN, 1, &h) != OTEL_THREAD_CTX_STATUS_OK ||
          otel_thread_ctx_free(h) != OTEL_THREAD_CTX_STATUS_OK)
        _exit(3);
      if (otel_process_ctx_publish(RESOURCE, 1, NULL, 0, KEYS, 2) != OTEL_THREAD_CTX_STATUS_OK) _exit(4);
      _exit(0);
    }
    if (pid < 0) {
      failed++;
      continue;
    }
    long deadline = now_ms() + TIMEOUT_MS;
    int status = 0;
    pid_t done;
    while ((done = waitpid(pid, &status, WNOHANG)) == 0 && now_ms() < deadline) usleep(1000);
    if (done == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      hung++;
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      ok++;
    } else {
      failed++;
    }
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 3; i++) pthread_join(threads[i], NULL);
  printf("forks %d ok %d hung %d failed %d\n", FORKS, ok, hung, failed);
  return ok == FORKS ? 0 : 1;
}
