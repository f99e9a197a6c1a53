/* Test writer for `otel-ctx-dump check`: publishes a process context (OTEP 4719) and one
 * worker thread's record (OTEP 4947) by hand, correctly by default, or breaking one rule per
 * option. The slot is set through check_slot_set (tests/c/check_slot.c), found in the process
 * (the module linked at start-up, or the executable itself), or in the module --dlopen loads.
 * Prints "ready" once published; with --update, updates the context every 50 ms from 1 s
 * after that (so a checker has read it first) until stdin closes; exits 0 on EOF.
 *   --context ok|none|two|exec|signature|version|size0|size-big|ts0|realtime|garbage|flood
 *             (flood: 3000 more OTEL_CTX mappings, each forever "being updated")
 *   --schema VALUE | --no-schema      threadlocal.schema_version (default tlsdesc_v1_dev)
 *   --keys a,b,c | --keys-257         the key map (default http_method,http_route)
 *   --record ok|none|dangling|odd|valid2|size700|overrun|key-outside|bad-utf8|one-id|idle1|idle0
 *   --update ok|same-ts|lose-name
 * With -DREFERENCE the executable also reads the slot itself (extern __thread), so its .dynsym
 * references the name. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#ifdef REFERENCE
extern __thread void *otel_thread_ctx_v1;
void *volatile seen_slot;
#endif

/* ---- a minimal protobuf writer ---- */
struct buf {
  uint8_t *b;
  size_t n, cap;
};

static void put(struct buf *o, const void *p, size_t n) {
  if (o->n + n > o->cap) {
    o->cap = (o->n + n) * 2 + 64;
    o->b = realloc(o->b, o->cap);
    if (o->b == NULL) exit(3);
  }
  memcpy(o->b + o->n, p, n);
  o->n += n;
}

static void varint(struct buf *o, uint64_t v) {
  do {
    uint8_t byte = (uint8_t)(v & 0x7f) | (v > 0x7f ? 0x80 : 0);
    put(o, &byte, 1);
    v >>= 7;
  } while (v != 0);
}

static void field(struct buf *o, unsigned tag, const void *p, size_t n) {
  varint(o, (uint64_t)tag << 3 | 2);
  varint(o, n);
  put(o, p, n);
}

static void field_buf(struct buf *o, unsigned tag, struct buf *inner) {
  field(o, tag, inner->b, inner->n);
  free(inner->b);
  *inner = (struct buf){0};
}

/* KeyValue { key = 1; value = 2 (AnyValue { string_value = 1 }) } as field `tag` of `o`. */
static void kv_string(struct buf *o, unsigned tag, const char *key, const char *value) {
  struct buf kv = {0}, any = {0};
  field(&kv, 1, key, strlen(key));
  field(&any, 1, value, strlen(value));
  field_buf(&kv, 2, &any);
  field_buf(o, tag, &kv);
}

/* KeyValue { key; value = AnyValue { array_value = 5 (ArrayValue { values = 1 }) } }. */
static void kv_strings(struct buf *o, unsigned tag, const char *key, char **values, int n) {
  struct buf kv = {0}, any = {0}, array = {0};
  for (int i = 0; i < n; i++) {
    struct buf item = {0};
    field(&item, 1, values[i], strlen(values[i]));
    field_buf(&array, 1, &item);
  }
  field(&kv, 1, key, strlen(key));
  field_buf(&any, 5, &array);
  field_buf(&kv, 2, &any);
  field_buf(o, tag, &kv);
}

/* ---- options ---- */
static const char *context_mode = "ok", *record_mode = "ok", *update_mode = NULL;
static const char *schema = "tlsdesc_v1_dev";
static char *keys[300];
static int nkeys;

static void parse_keys(char *list) {
  nkeys = 0;
  char *p = list;
  for (;;) {
    char *comma = strchr(p, ',');
    if (comma != NULL) *comma = 0;
    keys[nkeys++] = p;
    if (comma == NULL || nkeys == 300) break;
    p = comma + 1;
  }
}

/* ---- the process context ---- */
static uint8_t *context; /* the header's mapping */
static struct buf payload;
static clockid_t context_clock = CLOCK_BOOTTIME;

static uint64_t now_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int updates;

static void build_payload(void) {
  struct buf resource = {0};
  char count[16];
  snprintf(count, sizeof count, "%d", updates);
  kv_string(&resource, 1, "service.name", "check-writer");
  kv_string(&resource, 1, "update.count", count);
  field_buf(&payload, 1, &resource);
  if (schema != NULL) kv_string(&payload, 2, "threadlocal.schema_version", schema);
  kv_strings(&payload, 2, "threadlocal.attribute_key_map", keys, nkeys);
}

static uint8_t *publish(int prot) {
  int fd = memfd_create("OTEL_CTX", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, 4096) != 0) exit(3);
  uint8_t *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) exit(3);
  close(fd);
  uint32_t version = 2, size = (uint32_t)payload.n;
  uint64_t ptr = (uint64_t)(uintptr_t)payload.b;
  memcpy(p, "OTEL_CTX", 8);
  if (strcmp(context_mode, "signature") == 0) memcpy(p, "OTEL_CTY", 8);
  if (strcmp(context_mode, "version") == 0) version = 1;
  if (strcmp(context_mode, "size0") == 0) size = 0;
  if (strcmp(context_mode, "size-big") == 0) size = 70000;
  memcpy(p + 8, &version, 4);
  memcpy(p + 12, &size, 4);
  memcpy(p + 24, &ptr, 8);
  atomic_thread_fence(memory_order_seq_cst);
  uint64_t at = strcmp(context_mode, "ts0") == 0 ? 0 : now_ns(context_clock);
  memcpy(p + 16, &at, 8);
  /* Naming needs CONFIG_ANON_VMA_NAME; the memfd's name is what readers see without it. */
  prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p, 4096, "OTEL_CTX");
  if (prot != (PROT_READ | PROT_WRITE) && mprotect(p, 4096, prot) != 0) exit(3);
  return p;
}

/* An update publishes a new payload (the old one is leaked: a test process). */
static void update(void) {
  uint64_t zero = 0, old;
  memcpy(&old, context + 16, 8);
  memcpy(context + 16, &zero, 8);
  atomic_thread_fence(memory_order_seq_cst);
  updates++;
  payload = (struct buf){0};
  build_payload();
  uint32_t size = (uint32_t)payload.n;
  uint64_t ptr = (uint64_t)(uintptr_t)payload.b;
  memcpy(context + 12, &size, 4);
  memcpy(context + 24, &ptr, 8);
  uint64_t at = strcmp(update_mode, "same-ts") == 0 ? old : now_ns(CLOCK_BOOTTIME);
  if (strcmp(update_mode, "lose-name") == 0) {
    /* A new anonymous mapping, never named: readers looking for OTEL_CTX lose the context. */
    uint8_t *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) exit(3);
    memcpy(p, context, 32);
    munmap(context, 4096);
    context = p;
  }
  atomic_thread_fence(memory_order_seq_cst);
  memcpy(context + 16, &at, 8);
}

/* ---- the record ---- */
static uint8_t record_space[1024] __attribute__((aligned(8)));
static pthread_barrier_t published;

static void *worker(void *arg) {
  (void)arg;
  void (*slot_set)(void *) = (void (*)(void *))arg;
  const char *m = record_mode;
  uint8_t *r = record_space + (strcmp(m, "odd") == 0);
  int idle = strcmp(m, "idle1") == 0 || strcmp(m, "idle0") == 0;
  if (!idle) {
    memset(r, 0x11, 16);
    memset(r + 16, strcmp(m, "one-id") == 0 ? 0 : 0x22, 8);
  }
  r[24] = strcmp(m, "valid2") == 0 ? 2 : strcmp(m, "idle0") == 0 ? 0 : 1;
  r[25] = idle ? 0 : 1;
  uint8_t attrs[] = {0, 3, 'G', 'E', 'T', 1, 2, '/', 'x'};
  if (strcmp(m, "key-outside") == 0) attrs[5] = 9;
  if (strcmp(m, "bad-utf8") == 0) memcpy(attrs + 7, "\xff\xfe", 2);
  if (strcmp(m, "overrun") == 0) attrs[6] = 40;
  memcpy(r + 28, attrs, sizeof attrs);
  uint16_t size = strcmp(m, "size700") == 0 ? 700 : idle ? 0 : sizeof attrs;
  memcpy(r + 26, &size, 2);
  if (strcmp(m, "dangling") == 0) r = (uint8_t *)16;
  if (strcmp(m, "none") != 0) slot_set(r);
#ifdef REFERENCE
  seen_slot = otel_thread_ctx_v1;
#endif
  pthread_barrier_wait(&published);
  pthread_barrier_wait(&published); /* released by main at EOF */
  return NULL;
}

int main(int argc, char **argv) {
  static char default_keys[] = "http_method,http_route";
  parse_keys(default_keys);
  void *module = RTLD_DEFAULT;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *next = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--context") == 0 && next) {
      context_mode = argv[++i];
    } else if (strcmp(a, "--schema") == 0 && next) {
      schema = argv[++i];
    } else if (strcmp(a, "--no-schema") == 0) {
      schema = NULL;
    } else if (strcmp(a, "--keys") == 0 && next) {
      parse_keys(argv[++i]);
    } else if (strcmp(a, "--keys-257") == 0) {
      static char names[257][8];
      for (nkeys = 0; nkeys < 257; nkeys++) {
        snprintf(names[nkeys], sizeof names[nkeys], "k%d", nkeys);
        keys[nkeys] = names[nkeys];
      }
    } else if (strcmp(a, "--record") == 0 && next) {
      record_mode = argv[++i];
    } else if (strcmp(a, "--update") == 0 && next) {
      update_mode = argv[++i];
    } else if (strcmp(a, "--dlopen") == 0 && next) {
      module = dlopen(argv[++i], RTLD_NOW | RTLD_LOCAL);
      if (module == NULL) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
      }
    } else {
      fprintf(stderr, "bad argument %s\n", a);
      return 2;
    }
  }
  void *slot_set = dlsym(module, "check_slot_set");
  if (slot_set == NULL) {
    fprintf(stderr, "no check_slot_set\n");
    return 1;
  }

  if (strcmp(context_mode, "realtime") == 0) context_clock = CLOCK_REALTIME;
  if (strcmp(context_mode, "garbage") == 0) {
    put(&payload, "\x0a\xff\xff\xff\xff\x0f", 6); /* a field longer than the message */
  } else {
    build_payload();
  }
  if (strcmp(context_mode, "none") != 0) {
    context = publish(strcmp(context_mode, "exec") == 0 ? PROT_READ | PROT_EXEC : PROT_READ | PROT_WRITE);
  }
  if (strcmp(context_mode, "two") == 0) publish(PROT_READ | PROT_WRITE);
  /* After the real one: mmap places them below it, so readers meet them first. */
  if (strcmp(context_mode, "flood") == 0) {
    for (int i = 0; i < 3000; i++) {
      int fd = memfd_create("OTEL_CTX", MFD_CLOEXEC);
      if (fd < 0 || ftruncate(fd, 4096) != 0) exit(3);
      uint8_t *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (p == MAP_FAILED) exit(3);
      close(fd);
      uint32_t version = 2, size = 10;
      memcpy(p, "OTEL_CTX", 8);
      memcpy(p + 8, &version, 4);
      memcpy(p + 12, &size, 4); /* published_at stays 0 */
    }
  }

  pthread_barrier_init(&published, NULL, 2);
  pthread_t t;
  pthread_create(&t, NULL, worker, slot_set);
  pthread_barrier_wait(&published);
  printf("ready\n");
  fflush(stdout);
  struct pollfd in = {.fd = 0, .events = POLLIN};
  char buf[64];
  uint64_t first_update = now_ns(CLOCK_MONOTONIC) + 1000000000u;
  for (;;) {
    int r = poll(&in, 1, update_mode != NULL && context != NULL ? 50 : -1);
    if (r > 0) {
      if (read(0, buf, sizeof buf) <= 0) break;
    } else if (r == 0 && now_ns(CLOCK_MONOTONIC) >= first_update) {
      update();
    }
  }
  pthread_barrier_wait(&published);
  pthread_join(t, NULL);
  return 0;
}
