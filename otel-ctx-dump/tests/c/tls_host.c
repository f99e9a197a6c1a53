/* Test target for otel-ctx-dump's access-model tests. Threads build records by hand (the layout
 * of OTEP 4947) and publish them through test_slot_set, from a module linked at start-up or
 * loaded with dlopen (--dlopen PATH). Thread 0 publishes a consistent record with attributes,
 * thread 1 one marked "being updated" (valid = 0), thread 2 one whose last attribute overruns
 * attrs_data_size, thread 3 none. Each thread prints "tid TID trace HEX span HEX flags N";
 * "ready" follows, and the process exits when stdin closes.
 * With --bad-context it also publishes an OTEL_CTX mapping whose payload_size is too large. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

struct record {
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t valid;
  uint8_t trace_flags;
  uint16_t attrs_data_size;
  uint8_t attrs_data[612];
} __attribute__((packed, aligned(8)));

#ifndef TEST_SLOT_DYNAMIC
void test_slot_set(void *record);
static void (*slot_set)(void *) = test_slot_set;
#else
static void (*slot_set)(void *);
#endif

static pthread_barrier_t published;
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;
static struct record records[4];

static void *worker(void *arg) {
  int index = (int)(intptr_t)arg;
  struct record *r = &records[index];
  for (int i = 0; i < 16; i++) r->trace_id[i] = (uint8_t)(0x40 + i + 16 * index + getpid());
  for (int i = 0; i < 8; i++) r->span_id[i] = (uint8_t)(0x90 + i + index);
  r->trace_flags = (uint8_t)(index == 0);
  r->valid = index == 1 ? 0 : 1;
  static const uint8_t attrs0[] = {0, 3, 'G', 'E', 'T', 7, 2, 'h', 'i'};
  static const uint8_t attrs2[] = {1, 2, 'o', 'k', 2, 40, 'x'};
  if (index == 0) {
    memcpy(r->attrs_data, attrs0, sizeof attrs0);
    r->attrs_data_size = sizeof attrs0;
  } else if (index == 2) {
    memcpy(r->attrs_data, attrs2, sizeof attrs2);
    r->attrs_data_size = sizeof attrs2;
  }
  if (index != 3) slot_set(r);
  pthread_mutex_lock(&print_lock);
  printf("tid %d trace ", (int)gettid());
  for (int i = 0; i < 16; i++) printf("%02x", r->trace_id[i]);
  printf(" span ");
  for (int i = 0; i < 8; i++) printf("%02x", r->span_id[i]);
  printf(" flags %d published %d\n", r->trace_flags, index != 3);
  fflush(stdout);
  pthread_mutex_unlock(&print_lock);
  pthread_barrier_wait(&published);
  pthread_barrier_wait(&published); /* released by main when stdin closes */
  return NULL;
}

static void publish_bad_context(void) {
  int fd = memfd_create("OTEL_CTX", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, 4096) != 0) exit(3);
  uint8_t *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) exit(3);
  close(fd);
  uint32_t version = 2, size = 100000;
  uint64_t at = 1, ptr = (uint64_t)(uintptr_t)(p + 64);
  memcpy(p, "OTEL_CTX", 8);
  memcpy(p + 8, &version, 4);
  memcpy(p + 12, &size, 4);
  memcpy(p + 24, &ptr, 8);
  memcpy(p + 16, &at, 8);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--bad-context") == 0) {
      publish_bad_context();
    } else if (strcmp(argv[i], "--dlopen") == 0 && i + 1 < argc) {
#ifdef TEST_SLOT_DYNAMIC
      void *lib = dlopen(argv[++i], RTLD_NOW | RTLD_LOCAL);
      if (lib == NULL) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
      }
      slot_set = (void (*)(void *))dlsym(lib, "test_slot_set");
#else
      return 2;
#endif
    } else {
      return 2;
    }
  }
  if (slot_set == NULL) return 1;
  pthread_barrier_init(&published, NULL, 5);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
  pthread_barrier_wait(&published);
  printf("ready\n");
  fflush(stdout);
  char buf[64];
  while (fgets(buf, sizeof buf, stdin) != NULL) {
  }
  pthread_barrier_wait(&published);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  return 0;
}
