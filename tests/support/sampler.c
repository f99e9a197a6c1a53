/*
 * Test support for the .NET suite (not part of the shipped library).
 *
 * Samples the calling thread's thread-context record the way an out-of-process reader finds it
 * while the thread is interrupted: from a signal handler, through the thread-local slot
 * otel_thread_ctx_v1 that libotel_thread_ctx.so defines (this object only declares it, and
 * reaches it through TLSDESC: build with gcc -mtls-dialect=gnu2). A per-thread timer
 * (timer_create with SIGEV_THREAD_ID) sends the signal to the writer thread itself, so every
 * sample interrupts the writer at an arbitrary instruction.
 *
 * Ids the writer publishes must obey a relation the handler can check (W3C byte order, read as
 * big-endian numbers): with n = the first 8 trace-id bytes,
 *   trace id bytes 8..16 = n * SAMPLER_MUL, span id = n ^ SAMPLER_XOR, trace flags = n & 1.
 * All-zero ids and flags ("no span") are counted apart. A record with valid == 1 that breaks
 * the relation is a torn write: the test expects none.
 *
 * Build: gcc -shared -fPIC -O2 -mtls-dialect=gnu2 -I include tests/support/sampler.c
 *          -L DIR -lotel_thread_ctx -Wl,-rpath,DIR -o libsampler.so
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "otel_thread_ctx.h"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

#define SAMPLER_MUL 0x9E3779B97F4A7C15ULL
#define SAMPLER_XOR 0xA5A5A5A5A5A5A5A5ULL

extern __thread void *otel_thread_ctx_v1;

/* What the handler saw. Written only by the handler on the sampled thread, read after stop. */
struct sampler_counts {
    uint64_t samples;      /* signals handled */
    uint64_t null_slot;    /* slot was NULL */
    uint64_t not_valid;    /* valid != 1: an update was in progress */
    uint64_t empty;        /* valid, all-zero ids and flags */
    uint64_t consistent;   /* valid, relation holds */
    uint64_t inconsistent; /* valid, relation broken: must stay 0 */
    uint8_t first_bad[OTEL_THREAD_CTX_HEADER_SIZE]; /* header of the first inconsistent sample */
};

static struct sampler_counts counts;
static struct sigaction old_action;
static timer_t timer;
static int active_signo;

static uint64_t be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

/* 1: relation holds; 0: all-zero "no span"; -1: broken. `hdr` is a record's 28-byte header. */
int sampler_classify(const uint8_t *hdr) {
    uint64_t n = be64(hdr), lo = be64(hdr + 8), span = be64(hdr + 16);
    uint8_t flags = hdr[25];
    if (n == 0 && lo == 0 && span == 0 && flags == 0) return 0;
    if (lo == n * SAMPLER_MUL && span == (n ^ SAMPLER_XOR) && flags == (uint8_t)(n & 1)) return 1;
    return -1;
}

static void on_signal(int signo, siginfo_t *info, void *uctx) {
    (void)signo;
    (void)info;
    (void)uctx;
    int saved_errno = errno;
    counts.samples++;
    /* The slot of the interrupted thread: what a profiler resolves through the TLS symbol. */
    const uint8_t *rec = (const uint8_t *)otel_thread_ctx_v1;
    if (rec == NULL) {
        counts.null_slot++;
    } else {
        uint8_t hdr[OTEL_THREAD_CTX_HEADER_SIZE];
        memcpy(hdr, rec, sizeof hdr);
        if (hdr[24] != 1) {
            counts.not_valid++;
        } else {
            int c = sampler_classify(hdr);
            if (c > 0) {
                counts.consistent++;
            } else if (c == 0) {
                counts.empty++;
            } else {
                if (counts.inconsistent++ == 0) memcpy(counts.first_bad, hdr, sizeof hdr);
            }
        }
    }
    errno = saved_errno;
}

/* The calling thread's slot value (its attached record, or NULL). Also makes sure the slot's
 * TLS block exists for this thread before a signal handler reads it. */
void *sampler_slot(void) {
    return otel_thread_ctx_v1;
}

/* Starts sampling the calling thread every `interval_ns` with signal `signo`.
 * Returns 0, or -errno. */
int sampler_start(int signo, long interval_ns) {
    (void)sampler_slot();
    memset(&counts, 0, sizeof counts);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(signo, &sa, &old_action) != 0) return -errno;

    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = signo;
    sev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
    if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0) {
        int e = errno;
        sigaction(signo, &old_action, NULL);
        return -e;
    }
    struct itimerspec its;
    its.it_interval.tv_sec = interval_ns / 1000000000L;
    its.it_interval.tv_nsec = interval_ns % 1000000000L;
    its.it_value = its.it_interval;
    if (timer_settime(timer, 0, &its, NULL) != 0) {
        int e = errno;
        timer_delete(timer);
        sigaction(signo, &old_action, NULL);
        return -e;
    }
    active_signo = signo;
    return 0;
}

/* Samples taken so far (read from the sampled thread itself, or after stop). */
uint64_t sampler_samples(void) {
    return *(volatile uint64_t *)&counts.samples;
}

/* Stops the timer, drains a signal still pending for this thread, restores the previous
 * handler and copies the counts to `out`. Call on the thread that called sampler_start. */
int sampler_stop(struct sampler_counts *out) {
    int rc = 0;
    if (timer_delete(timer) != 0) rc = -errno;
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, active_signo);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&set, NULL, &zero) == active_signo) {
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (sigaction(active_signo, &old_action, NULL) != 0 && rc == 0) rc = -errno;
    if (out != NULL) *out = counts;
    return rc;
}
