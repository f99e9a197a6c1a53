/* Test target for otel-ctx-dump: a thread that publishes a span, then blocks in vfork while its
 * child sleeps SECONDS (argv[1]) before exiting. A thread blocked in vfork is in an
 * uninterruptible (killable) wait and cannot reach a ptrace stop until the child exits or execs.
 * Prints "vforking TID" just before the vfork and "released TID" once it returns; the main
 * thread also publishes a span and waits for EOF on stdin. */
#define _GNU_SOURCE
#include "otel_thread_ctx.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int child_seconds;

static void *vforker(void *arg) {
  (void)arg;
  uint8_t trace_id[16], span_id[8];
  memset(trace_id, 0x77, sizeof trace_id);
  memset(span_id, 0x88, sizeof span_id);
  otel_thread_ctx_update(&trace_id, &span_id, 1);
  int tid = (int)gettid();
  printf("vforking %d\n", tid);
  fflush(stdout);
  pid_t child = vfork();
  if (child == 0) {
    /* Only async-signal-safe calls in the vfork child. */
    struct timespec ts = {child_seconds, 0};
    nanosleep(&ts, NULL);
    _exit(0);
  }
  waitpid(child, NULL, 0);
  printf("released %d\n", tid);
  fflush(stdout);
  for (;;) pause();
  return NULL;
}

int main(int argc, char **argv) {
  child_seconds = argc > 1 ? atoi(argv[1]) : 3;
  uint8_t trace_id[16], span_id[8];
  memset(trace_id, 0x33, sizeof trace_id);
  memset(span_id, 0x44, sizeof span_id);
  if (otel_thread_ctx_update(&trace_id, &span_id, 1) != OTEL_THREAD_CTX_STATUS_OK) return 1;
  pthread_t t;
  pthread_create(&t, NULL, vforker, NULL);
  char buf[64];
  while (fgets(buf, sizeof buf, stdin) != NULL) {
  }
  return 0;
}
