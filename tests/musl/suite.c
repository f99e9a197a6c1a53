/*
 * The musl test suite's C program (scripts/test-musl.sh builds and runs it): the C API
 * contract, signal-sampling stress and thread exit, against the musl build of
 * libotel_thread_ctx.so, run by musl's dynamic loader.
 *
 *   suite-exe  TEST static    linked at start-up: musl places the library's TLS statically
 *   suite-dlopen TEST dynamic this code (and the library) loaded with dlopen, as .NET loads
 *                             native libraries: musl gives dlopen'ed modules dynamic TLS
 *
 * TEST is api, signal-stress, signal-stress-control or thread-exit. Every run first checks that
 * musl's loader runs the process, and that the self-check passes with the expected placement.
 * Prints "PASS <test> (<placement>): <details>" and exits 0, or "FAIL ..." and exits 1.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "otel_thread_ctx.h"

/* From tests/support/sampler.c, built with musl-gcc as libsampler.so. */
struct sampler_counts {
    uint64_t samples, null_slot, not_valid, empty, consistent, inconsistent;
    uint8_t first_bad[OTEL_THREAD_CTX_HEADER_SIZE];
};
int sampler_start(int signo, long interval_ns);
int sampler_stop(struct sampler_counts *out);
uint64_t sampler_samples(void);
#define SAMPLER_MUL 0x9E3779B97F4A7C15ULL
#define SAMPLER_XOR 0xA5A5A5A5A5A5A5A5ULL

/* The test hooks (native/test_hooks.rs): exported only by the library built with the test-hooks
 * feature (scripts/build-musl.sh --test-hooks), which this suite links; not in the header. */
OtelThreadCtxStatus otel_thread_ctx_read_current(struct OtelThreadCtxRecord *out);
size_t otel_thread_ctx_live_records(void);
OtelThreadCtxStatus otel_process_ctx_read_payload(uint8_t *buffer, size_t capacity, size_t *payload_size);

static const char *test_name = "?";
static const char *placement = "?";
static int failures;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            printf("FAIL %s (%s): %s:%d: %s\n", test_name, placement, __FILE__, __LINE__, #cond); \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

static const uint8_t TRACE[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                  0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
static const uint8_t SPAN[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};

/* The musl loader, glibc's files and the musl build's folder, for this file's architecture. */
#if defined(__x86_64__)
#define MUSL_LOADER "/lib/ld-musl-x86_64.so.1"
#define GLIBC_LOADER "/ld-linux-x86-64.so.2"
#define MUSL_TRIPLE "x86_64-unknown-linux-musl/"
#elif defined(__aarch64__)
#define MUSL_LOADER "/lib/ld-musl-aarch64.so.1"
#define GLIBC_LOADER "/ld-linux-aarch64.so.1"
#define MUSL_TRIPLE "aarch64-unknown-linux-musl/"
#else
#error "the musl suite runs on x86-64 and AArch64"
#endif

/* musl's loader, not glibc's, must have mapped this process, and the library must be the
 * musl build. The loader is mapped under its real path (MUSL_LOADER is a link). */
static int check_musl_process(void) {
    char loader[PATH_MAX];
    FILE *maps = fopen("/proc/self/maps", "r");
    if (maps == NULL || realpath(MUSL_LOADER, loader) == NULL) return 0;
    char line[4096];
    int musl = 0, glibc = 0, lib = 0;
    while (fgets(line, sizeof line, maps)) {
        line[strcspn(line, "\n")] = '\0';
        const char *path = strchr(line, '/');
        if (path != NULL && strcmp(path, loader) == 0) musl = 1;
        if (strstr(line, GLIBC_LOADER) || strstr(line, "/libc.so.6")) glibc = 1;
        if (strstr(line, MUSL_TRIPLE) && strstr(line, "/libotel_thread_ctx.so")) lib = 1;
    }
    fclose(maps);
    CHECK(musl);
    CHECK(!glibc);
    CHECK(lib);
    return musl && !glibc && lib;
}

static int self_check(void) {
    char msg[2048];
    OtelThreadCtxStatus status = otel_thread_ctx_self_check(msg, sizeof msg);
    /* libsampler.so references the slot (it reads it from a signal handler, as a profiler
     * would), so the check fails naming it; the rest of the message describes our own slot. */
    int named = status == OTEL_THREAD_CTX_STATUS_SELF_CHECK_FAILED &&
                strstr(msg, "libsampler.so references otel_thread_ctx_v1") != NULL &&
                strstr(msg, "This library's own slot is fine") != NULL;
    CHECK(named);
    const char *want = strcmp(placement, "static") == 0 ? "static TLS at thread-pointer offset"
                                                         : "dynamic TLS (DTV lookup)";
    CHECK(strstr(msg, want) != NULL);
    CHECK(strstr(msg, "1 TLSDESC relocation") != NULL);
    fprintf(stderr, "self-check: %s\n", msg);
    return named && strstr(msg, want) != NULL;
}

/* ---- api ---- */

static int read_current(struct OtelThreadCtxRecord *out) {
    return otel_thread_ctx_read_current(out);
}

static void *isolated_thread(void *arg) {
    uintptr_t n = (uintptr_t)arg;
    uint8_t trace[16], span[8];
    memset(trace, (int)n + 1, sizeof trace);
    memset(span, (int)n + 101, sizeof span);
    otel_thread_ctx_update(&trace, &span, (uint8_t)(n & 1));
    struct timespec ms20 = {0, 20 * 1000 * 1000};
    nanosleep(&ms20, NULL);
    struct OtelThreadCtxRecord rec;
    int ok = read_current(&rec) == OTEL_THREAD_CTX_STATUS_OK && memcmp(rec.trace_id, trace, 16) == 0 &&
             memcmp(rec.span_id, span, 8) == 0 && rec.trace_flags == (n & 1);
    return (void *)(uintptr_t)ok;
}

struct owner {
    OtelThreadCtx *handle;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int attached, done;
    OtelThreadCtxStatus attach_status;
    OtelThreadCtx *displaced;
};

static void *owner_thread(void *arg) {
    struct owner *o = arg;
    OtelThreadCtxStatus status = otel_thread_ctx_attach(o->handle, &o->displaced);
    pthread_mutex_lock(&o->lock);
    o->attach_status = status;
    o->attached = 1;
    pthread_cond_broadcast(&o->cond);
    while (!o->done) pthread_cond_wait(&o->cond, &o->lock);
    pthread_mutex_unlock(&o->lock);
    return otel_thread_ctx_detach();
}

static void *api_thread(void *unused) {
    (void)unused;
    struct OtelThreadCtxRecord rec;
    CHECK(read_current(&rec) == OTEL_THREAD_CTX_STATUS_NO_CONTEXT);
    CHECK(otel_thread_ctx_clear() == OTEL_THREAD_CTX_STATUS_NO_CONTEXT);

    /* update attaches a record, rewritten in place afterwards */
    CHECK(otel_thread_ctx_update(&TRACE, &SPAN, 1) == OTEL_THREAD_CTX_STATUS_OK);
    CHECK(read_current(&rec) == OTEL_THREAD_CTX_STATUS_OK);
    CHECK(memcmp(rec.trace_id, TRACE, 16) == 0 && memcmp(rec.span_id, SPAN, 8) == 0);
    CHECK(rec.valid == 1 && rec.trace_flags == 1 && rec.attrs_data_size == 0);
    struct OtelThreadCtxRecord *first = NULL, *again = NULL, *of_handle = NULL;
    CHECK(otel_thread_ctx_ensure_record(&first) == OTEL_THREAD_CTX_STATUS_OK && first != NULL);
    uint8_t t2[16] = {9}, s2[8] = {8};
    CHECK(otel_thread_ctx_update(&t2, &s2, 0) == OTEL_THREAD_CTX_STATUS_OK);
    CHECK(otel_thread_ctx_ensure_record(&again) == OTEL_THREAD_CTX_STATUS_OK && again == first);
    CHECK(first->trace_id[0] == 9 && first->span_id[0] == 8 && first->trace_flags == 0);

    /* attributes on the attached record */
    OtelThreadCtx *h = otel_thread_ctx_current();
    CHECK(h != NULL);
    CHECK(otel_thread_ctx_record(h, &of_handle) == OTEL_THREAD_CTX_STATUS_OK && of_handle == first);
    CHECK(otel_thread_ctx_set_attribute(h, 1, (const uint8_t *)"GET", 3) == OTEL_THREAD_CTX_STATUS_OK);
    CHECK(otel_thread_ctx_set_attribute(h, 0, (const uint8_t *)"/a", 2) == OTEL_THREAD_CTX_STATUS_OK);
    static const uint8_t want[] = {1, 3, 'G', 'E', 'T', 0, 2, '/', 'a'};
    CHECK(read_current(&rec) == OTEL_THREAD_CTX_STATUS_OK);
    CHECK(rec.attrs_data_size == sizeof want && memcmp(rec.attrs_data, want, sizeof want) == 0);
    CHECK(otel_thread_ctx_clear_attributes(h) == OTEL_THREAD_CTX_STATUS_OK);
    uint8_t long_value[300];
    memset(long_value, 'v', sizeof long_value);
    CHECK(otel_thread_ctx_set_attribute(h, 0, long_value, 300) == OTEL_THREAD_CTX_STATUS_TRUNCATED);
    CHECK(otel_thread_ctx_set_attribute(h, 1, long_value, 255) == OTEL_THREAD_CTX_STATUS_OK);
    CHECK(otel_thread_ctx_set_attribute(h, 2, long_value, 100) == OTEL_THREAD_CTX_STATUS_NO_SPACE);
    CHECK(first->attrs_data_size == 2 * 257);
    static const uint8_t bad_utf8[] = {0xc3, 0x28};
    CHECK(otel_thread_ctx_set_attribute(h, 3, bad_utf8, 2) == OTEL_THREAD_CTX_STATUS_INVALID_UTF8);

    /* clear keeps the record published, empty, with valid 0 ("no active span") */
    CHECK(otel_thread_ctx_clear() == OTEL_THREAD_CTX_STATUS_OK);
    CHECK(read_current(&rec) == OTEL_THREAD_CTX_STATUS_OK);
    static const uint8_t zeros[16];
    CHECK(memcmp(rec.trace_id, zeros, 16) == 0 && memcmp(rec.span_id, zeros, 8) == 0);
    CHECK(rec.valid == 0 && rec.trace_flags == 0 && rec.attrs_data_size == 0);

    /* owned handles: attach hands back what it displaced (not the thread's own). Out-parameters start as a non-NULL
     * sentinel, so each check also sees the call write them. */
    OtelThreadCtx *const sentinel = (OtelThreadCtx *)(uintptr_t)0x5e47;
    struct OtelThreadCtxRecord *const rec_sentinel = (struct OtelThreadCtxRecord *)(uintptr_t)0x5e47;
    OtelThreadCtx *a = sentinel;
    struct OtelThreadCtxRecord *a_rec = rec_sentinel;
    CHECK(otel_thread_ctx_new(&TRACE, &SPAN, 1, &a) == OTEL_THREAD_CTX_STATUS_OK && a != NULL && a != sentinel);
    CHECK(otel_thread_ctx_record(a, &a_rec) == OTEL_THREAD_CTX_STATUS_OK && a_rec != NULL && a_rec != rec_sentinel);
    CHECK((uintptr_t)a_rec % 64 == 0);
    CHECK(memcmp(a_rec->trace_id, TRACE, 16) == 0 && a_rec->valid == 1 && a_rec->trace_flags == 1);
    OtelThreadCtx *displaced = sentinel;
    CHECK(otel_thread_ctx_attach(a, &displaced) == OTEL_THREAD_CTX_STATUS_OK);
    CHECK(displaced == NULL); /* h is the thread's own record: it stays the thread's */
    CHECK(otel_thread_ctx_free(h) == OTEL_THREAD_CTX_STATUS_OWNED_BY_THREAD);
    CHECK(otel_thread_ctx_current() == a);
    CHECK(otel_thread_ctx_free(a) == OTEL_THREAD_CTX_STATUS_HANDLE_ATTACHED);
    displaced = sentinel; /* already attached: no change, nothing displaced */
    CHECK(otel_thread_ctx_attach(a, &displaced) == OTEL_THREAD_CTX_STATUS_OK && displaced == NULL);
    CHECK(otel_thread_ctx_current() == a);
    CHECK(otel_thread_ctx_attach(a, NULL) == OTEL_THREAD_CTX_STATUS_NULL_ARGUMENT);
    CHECK(otel_thread_ctx_detach() == a);
    CHECK(read_current(&rec) == OTEL_THREAD_CTX_STATUS_NO_CONTEXT);
    CHECK(otel_thread_ctx_detach() == NULL);
    CHECK(otel_thread_ctx_free(a) == OTEL_THREAD_CTX_STATUS_OK);
    CHECK(otel_thread_ctx_free(a) == OTEL_THREAD_CTX_STATUS_INVALID_HANDLE);

    /* bad input is refused, never crashes */
    uint64_t not_a_handle[128] = {0};
    OtelThreadCtx *bogus = (OtelThreadCtx *)not_a_handle;
    CHECK(otel_thread_ctx_free(bogus) == OTEL_THREAD_CTX_STATUS_INVALID_HANDLE);
    displaced = sentinel;
    CHECK(otel_thread_ctx_attach(bogus, &displaced) == OTEL_THREAD_CTX_STATUS_INVALID_HANDLE && displaced == NULL);
    CHECK(otel_thread_ctx_current() == NULL);
    a_rec = rec_sentinel;
    CHECK(otel_thread_ctx_record(bogus, &a_rec) == OTEL_THREAD_CTX_STATUS_INVALID_HANDLE && a_rec == NULL);
    CHECK(otel_thread_ctx_set_attribute(bogus, 0, (const uint8_t *)"x", 1) ==
          OTEL_THREAD_CTX_STATUS_INVALID_HANDLE);
    for (size_t i = 0; i < 128; i++) CHECK(not_a_handle[i] == 0);
    OtelThreadCtx *none = sentinel;
    CHECK(otel_thread_ctx_new(NULL, &SPAN, 0, &none) == OTEL_THREAD_CTX_STATUS_NULL_ARGUMENT && none == NULL);
    CHECK(otel_thread_ctx_new(&TRACE, &SPAN, 0, NULL) == OTEL_THREAD_CTX_STATUS_NULL_ARGUMENT);
    a_rec = rec_sentinel; /* a was freed above */
    CHECK(otel_thread_ctx_record(a, &a_rec) == OTEL_THREAD_CTX_STATUS_INVALID_HANDLE && a_rec == NULL);
    CHECK(otel_thread_ctx_ensure_record(NULL) == OTEL_THREAD_CTX_STATUS_NULL_ARGUMENT);
    CHECK(otel_thread_ctx_current() == NULL); /* nothing attached by the refused call */
    CHECK(otel_thread_ctx_update(&TRACE, NULL, 0) == OTEL_THREAD_CTX_STATUS_NULL_ARGUMENT);
    CHECK(otel_thread_ctx_read_current(NULL) == OTEL_THREAD_CTX_STATUS_NULL_ARGUMENT);
    CHECK(otel_thread_ctx_free(NULL) == OTEL_THREAD_CTX_STATUS_NULL_ARGUMENT);

    /* a record attached to another thread is that thread's alone */
    struct owner o = {NULL, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 1, sentinel};
    CHECK(otel_thread_ctx_new(&TRACE, &SPAN, 1, &o.handle) == OTEL_THREAD_CTX_STATUS_OK && o.handle != NULL);
    pthread_t owner;
    pthread_create(&owner, NULL, owner_thread, &o);
    pthread_mutex_lock(&o.lock);
    while (!o.attached) pthread_cond_wait(&o.cond, &o.lock);
    pthread_mutex_unlock(&o.lock);
    CHECK(o.attach_status == OTEL_THREAD_CTX_STATUS_OK && o.displaced == NULL);
    displaced = sentinel;
    CHECK(otel_thread_ctx_attach(o.handle, &displaced) == OTEL_THREAD_CTX_STATUS_ATTACHED_ELSEWHERE &&
          displaced == NULL);
    CHECK(otel_thread_ctx_current() == NULL);
    CHECK(otel_thread_ctx_set_attribute(o.handle, 0, (const uint8_t *)"x", 1) ==
          OTEL_THREAD_CTX_STATUS_ATTACHED_ELSEWHERE);
    CHECK(otel_thread_ctx_free(o.handle) == OTEL_THREAD_CTX_STATUS_HANDLE_ATTACHED);
    pthread_mutex_lock(&o.lock);
    o.done = 1;
    pthread_cond_broadcast(&o.cond);
    pthread_mutex_unlock(&o.lock);
    void *detached = NULL;
    pthread_join(owner, &detached);
    CHECK(detached == o.handle);
    CHECK(otel_thread_ctx_free(o.handle) == OTEL_THREAD_CTX_STATUS_OK);
    return NULL;
}

static int test_api(void) {
    pthread_t t;
    pthread_create(&t, NULL, api_thread, NULL);
    pthread_join(t, NULL);

    pthread_t threads[8];
    for (uintptr_t i = 0; i < 8; i++) pthread_create(&threads[i], NULL, isolated_thread, (void *)i);
    for (int i = 0; i < 8; i++) {
        void *ok = NULL;
        pthread_join(threads[i], &ok);
        CHECK(ok == (void *)1);
    }

    /* the process context, read back through the library */
    static const char *const keys[] = {"http_route", "http_method"};
    const OtelProcessCtxKeyValue resource[] = {
        {"service.name", {OTEL_PROCESS_CTX_VALUE_STRING, 0, 0.0, "musl-suite", 10}}};
    CHECK(otel_process_ctx_publish(resource, 1, NULL, 0, keys, 2) == OTEL_THREAD_CTX_STATUS_OK);
    CHECK(otel_process_ctx_publish(resource, 1, NULL, 0, keys, 2) == OTEL_THREAD_CTX_STATUS_OK);
    static const char *const renamed[] = {"http_method"};
    CHECK(otel_process_ctx_publish(resource, 1, NULL, 0, renamed, 1) == OTEL_THREAD_CTX_STATUS_KEY_MAP_CHANGED);
    uint8_t payload[4096];
    size_t size = 0;
    CHECK(otel_process_ctx_read_payload(payload, sizeof payload, &size) == OTEL_THREAD_CTX_STATUS_OK);
    CHECK(size > 0 && memmem(payload, size, "musl-suite", 10) != NULL);
    CHECK(memmem(payload, size, "http_method", 11) != NULL);
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[4096];
    int mapped = 0;
    while (maps && fgets(line, sizeof line, maps)) mapped |= strstr(line, "OTEL_CTX") != NULL;
    if (maps) fclose(maps);
    CHECK(mapped);
    CHECK(otel_process_ctx_unpublish() == OTEL_THREAD_CTX_STATUS_OK);
    CHECK(strcmp(otel_thread_ctx_version(), "0.0.0") != 0 && otel_thread_ctx_version()[0] != '\0');
    printf("%s api checks, 8 threads isolated, process context published and read back\n",
           failures ? "some" : "all");
    return failures == 0;
}

/* ---- signal-stress ---- */

static void be64(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

/* The ids sampler.c checks: n, n * MUL, n ^ XOR, flags n & 1 (big-endian). */
static void ids_for(uint64_t n, uint8_t trace[16], uint8_t span[8]) {
    be64(trace, n);
    be64(trace + 8, n * SAMPLER_MUL);
    be64(span, n ^ SAMPLER_XOR);
}

/* The sampler's period: 20 us, or SUITE_SAMPLER_PERIOD_NS (scripts/test-musl.sh sets 200 us
 * under qemu-user, where signals cost far more and a 20 us period starves the writer). */
static long sampler_period_ns(void) {
    const char *env = getenv("SUITE_SAMPLER_PERIOD_NS");
    long ns = env != NULL ? strtol(env, NULL, 10) : 0;
    return ns > 0 ? ns : 20000;
}

static int stress(int torn) {
    const uint64_t min_updates = torn ? 100000 : 1000000, min_samples = 10000;
    if (sampler_start(SIGPROF, sampler_period_ns()) != 0) {
        CHECK(!"sampler_start");
        return 0;
    }
    uint64_t n = 1;
    time_t started = time(NULL);
    while ((n < min_updates || sampler_samples() < min_samples) && time(NULL) - started < 120) {
        uint8_t trace[16], span[8];
        ids_for(n, trace, span);
        if (!torn) {
            otel_thread_ctx_update(&trace, &span, (uint8_t)(n & 1));
        } else {
            /* Control: skips the valid flag, one byte at a time, so torn states are visible. */
            struct OtelThreadCtxRecord *ensured = NULL;
            if (otel_thread_ctx_ensure_record(&ensured) != OTEL_THREAD_CTX_STATUS_OK) {
                CHECK(!"otel_thread_ctx_ensure_record");
                break;
            }
            volatile uint8_t *rec = (volatile uint8_t *)ensured;
            rec[24] = 1;
            for (int i = 0; i < 16; i++) rec[i] = trace[i];
            for (int i = 0; i < 8; i++) rec[16 + i] = span[i];
            rec[25] = (uint8_t)(n & 1);
        }
        n++;
    }
    struct sampler_counts c;
    CHECK(sampler_stop(&c) == 0);
    printf("%s: %llu updates, %llu samples: %llu consistent, %llu being updated, %llu empty, "
           "%llu no record, %llu INCONSISTENT\n",
           torn ? "control (torn writer)" : "signal stress", (unsigned long long)n,
           (unsigned long long)c.samples, (unsigned long long)c.consistent, (unsigned long long)c.not_valid,
           (unsigned long long)c.empty, (unsigned long long)c.null_slot, (unsigned long long)c.inconsistent);
    CHECK(n >= min_updates);
    CHECK(c.samples >= min_samples);
    if (torn) {
        CHECK(c.inconsistent > 0); /* the sampler can fail */
    } else {
        CHECK(c.inconsistent == 0);
        CHECK(c.consistent > c.samples / 2);
    }
    return failures == 0;
}

static void *stress_thread(void *torn) {
    return (void *)(uintptr_t)stress(torn != NULL);
}

static int test_stress(int torn) {
    pthread_t t;
    void *ok = NULL;
    pthread_create(&t, NULL, stress_thread, torn ? (void *)1 : NULL);
    pthread_join(t, &ok);
    return ok != NULL && failures == 0;
}

/* ---- thread-exit ---- */

static void *exiting_thread(void *arg) {
    uintptr_t n = (uintptr_t)arg;
    uint8_t trace[16], span[8] = {1};
    memset(trace, (int)(n % 251) + 1, sizeof trace);
    if (otel_thread_ctx_update(&trace, &span, 1) != OTEL_THREAD_CTX_STATUS_OK) return NULL;
    if (n % 2 == 0) {
        /* Half also attach a handle of their own, displacing the thread's own record (which
         * stays the thread's: nothing is handed back); a quarter then detach and free it. */
        OtelThreadCtx *h = NULL, *displaced = (OtelThreadCtx *)(uintptr_t)0x5e47;
        if (otel_thread_ctx_new(&trace, &span, 1, &h) != OTEL_THREAD_CTX_STATUS_OK ||
            otel_thread_ctx_attach(h, &displaced) != OTEL_THREAD_CTX_STATUS_OK || displaced != NULL)
            return NULL;
        if (n % 4 == 0 && (otel_thread_ctx_detach() != h || otel_thread_ctx_free(h) != OTEL_THREAD_CTX_STATUS_OK))
            return NULL;
    }
    return (void *)1;
}

static int test_thread_exit(void) {
    size_t before = otel_thread_ctx_live_records();
    int ok = 1;
    for (uintptr_t batch = 0; batch < 100; batch++) {
        pthread_t threads[100];
        for (uintptr_t i = 0; i < 100; i++)
            CHECK(pthread_create(&threads[i], NULL, exiting_thread, (void *)(batch * 100 + i)) == 0);
        for (int i = 0; i < 100; i++) {
            void *r = NULL;
            pthread_join(threads[i], &r);
            ok &= r != NULL;
        }
    }
    CHECK(ok);
    size_t after = otel_thread_ctx_live_records();
    CHECK(after == before);
    printf("10000 threads attached records and exited: live records %zu before, %zu after\n", before, after);
    return failures == 0;
}

#ifdef SUITE_AS_LIBRARY
int suite_main(int argc, char **argv)
#else
int main(int argc, char **argv)
#endif
{
    if (argc != 3 || (strcmp(argv[2], "static") != 0 && strcmp(argv[2], "dynamic") != 0)) {
        fprintf(stderr, "usage: %s api|signal-stress|signal-stress-control|thread-exit static|dynamic\n", argv[0]);
        return 2;
    }
    test_name = argv[1];
    placement = argv[2];
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!check_musl_process() || !self_check()) return 1;
    int ok;
    if (strcmp(test_name, "api") == 0) {
        ok = test_api();
    } else if (strcmp(test_name, "signal-stress") == 0) {
        ok = test_stress(0);
    } else if (strcmp(test_name, "signal-stress-control") == 0) {
        ok = test_stress(1);
    } else if (strcmp(test_name, "thread-exit") == 0) {
        ok = test_thread_exit();
    } else {
        fprintf(stderr, "unknown test %s\n", test_name);
        return 2;
    }
    if (!ok || failures) {
        printf("FAIL %s (%s): %d check(s) failed\n", test_name, placement, failures);
        return 1;
    }
    printf("PASS %s (%s TLS)\n", test_name, placement);
    return 0;
}
