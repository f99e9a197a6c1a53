/* Test target for otel-ctx-dump's "inspection leaves the target running" test. Two threads
 * publish a context through libotel_thread_ctx.so and count loop iterations; one more sleeps
 * in short nanosleeps and counts them; SIGUSR1 deliveries are counted. Each line on stdin asks
 * for "counts LOOPS SLEEPS SIGNALS"; EOF stops the threads and exits 0 ("done"). */
#define _GNU_SOURCE
#include "otel_thread_ctx.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_ulong loops, sleeps, signals;
static atomic_int stop;

static void on_usr1(int sig) {
  (void)sig;
  atomic_fetch_add(&signals, 1);
}

static void *spinner(void *arg) {
  uint8_t trace_id[16], span_id[8];
  memset(trace_id, 0x11 * (int)(intptr_t)arg + 1, sizeof trace_id);
  memset(span_id, 0x22, sizeof span_id);
  if (otel_thread_ctx_update(&trace_id, &span_id, 1) != OTEL_THREAD_CTX_STATUS_OK) return (void *)1;
  while (!atomic_load(&stop)) {
    atomic_fetch_add(&loops, 1);
    span_id[0]++;
    otel_thread_ctx_update(&trace_id, &span_id, 1);
  }
  otel_thread_ctx_clear();
  return NULL;
}

static void *sleeper(void *arg) {
  (void)arg;
  struct timespec ts = {0, 1000000};
  while (!atomic_load(&stop)) {
    nanosleep(&ts, NULL);
    atomic_fetch_add(&sleeps, 1);
  }
  return NULL;
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  pthread_t t[3];
  pthread_create(&t[0], NULL, spinner, (void *)1);
  pthread_create(&t[1], NULL, spinner, (void *)2);
  pthread_create(&t[2], NULL, sleeper, NULL);
  printf("ready\n");
  fflush(stdout);
  char buf[64];
  while (fgets(buf, sizeof buf, stdin) != NULL) {
    printf("counts %lu %lu %lu\n", atomic_load(&loops), atomic_load(&sleeps), atomic_load(&signals));
    fflush(stdout);
  }
  atomic_store(&stop, 1);
  int failed = 0;
  for (int i = 0; i < 3; i++) {
    void *r;
    pthread_join(t[i], &r);
    failed |= r != NULL;
  }
  printf("done\n");
  return failed;
}
