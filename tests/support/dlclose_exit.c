/*
 * Test support (tests/lifecycle.rs): dlclose while a thread still has a record, then that
 * thread exits. The library's thread-exit clean-up (a pthread key destructor) must still be
 * there to run: the library stays loaded.
 *
 * argv[1] is the library's path. Prints "worker exited" and exits 0 when nothing crashed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>

typedef int (*update_fn)(const uint8_t (*)[16], const uint8_t (*)[8], uint8_t);

static update_fn update;
static sem_t attached, closed;

static void *worker(void *arg) {
  (void)arg;
  static const uint8_t trace[16] = {1}, span[8] = {2};
  int status = update(&trace, &span, 1);
  sem_post(&attached);
  sem_wait(&closed);
  return (void *)(intptr_t)status;
}

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 2;
  }
  update = (update_fn)dlsym(lib, "otel_thread_ctx_update");
  if (!update) return 2;
  sem_init(&attached, 0, 0);
  sem_init(&closed, 0, 0);
  pthread_t t;
  pthread_create(&t, NULL, worker, NULL);
  sem_wait(&attached);
  if (dlclose(lib) != 0) {
    fprintf(stderr, "dlclose: %s\n", dlerror());
    return 2;
  }
  sem_post(&closed);
  void *status;
  pthread_join(t, &status);
  printf("worker exited, update returned %d\n", (int)(intptr_t)status);
  return status == 0 ? 0 : 1;
}
