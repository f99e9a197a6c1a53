/* Test-only probe for reading TLS without ptrace (tests/aarch64_elf.rs runs it under qemu-user,
 * which cannot be traced as a guest). It finds otel_thread_ctx_v1 in a module (a shared object
 * linked at startup or dlopen'ed, or the executable itself), points the calling thread's slot at
 * a small record, and prints what an out-of-process reader would read:
 *   tp HEX          the thread pointer
 *   slot HEX        the slot's address for this thread
 *   bias HEX        the module's load bias
 *   mem ADDR HEX..  64-bit words at ADDR (the GOT entries at the offsets given on the command
 *                   line, the TLSDESC argument they point to, the TCB and the DTV, the
 *                   slot, the record)
 * Built for glibc or musl (the DTV words it prints are that C library's).
 * Usage: tls_probe MODULE|- GOT_OFFSET_HEX...   ("-": the slot is in the executable). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void dump(uintptr_t addr, int words) {
    printf("mem %lx", (unsigned long)addr);
    for (int i = 0; i < words; i++) printf(" %lx", (unsigned long)((const uint64_t *)addr)[i]);
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int self = strcmp(argv[1], "-") == 0;
    void *h = dlopen(self ? NULL : argv[1], RTLD_NOW);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    void **slot = dlsym(h, "otel_thread_ctx_v1");
    struct link_map *lm = NULL;
    if (!slot || dlinfo(h, RTLD_DI_LINKMAP, &lm) != 0) {
        fprintf(stderr, "dlsym/dlinfo: %s\n", dlerror());
        return 1;
    }
    static uint64_t record[4];
    memset(record, 0, sizeof record);
    memset(record, 0x11, 16);                 /* trace id */
    memset((char *)record + 16, 0x22, 8);     /* span id */
    ((unsigned char *)record)[24] = 1;        /* valid */
    ((unsigned char *)record)[25] = 1;        /* sampled */
    *slot = record;

    uintptr_t tp = (uintptr_t)__builtin_thread_pointer();
    printf("tp %lx\nslot %lx\nbias %lx\n", (unsigned long)tp, (unsigned long)slot, (unsigned long)lm->l_addr);
    for (int i = 2; i < argc; i++) {
        uintptr_t got = lm->l_addr + strtoul(argv[i], NULL, 16);
        dump(got, 2);
        uint64_t arg = ((const uint64_t *)got)[1];
        if (arg > 0xffffffffu) dump(arg, 3); /* a dynamic TLSDESC argument: module, offset, gen */
    }
#if defined(__aarch64__) && defined(__GLIBC__)
    /* glibc AArch64: tcbhead_t.dtv at tp+0; 16-byte entries, entry -1 counts them. */
    dump(tp, 2);
    const uint64_t *dtv = *(const uint64_t *const *)tp;
    uint64_t len = dtv[-2];
    if (len < 64) dump((uintptr_t)(dtv - 2), (int)(2 * (len + 2)));
#elif defined(__aarch64__)
    /* musl AArch64: struct pthread's last word, just below tp, is dtv; word entries, dtv[0]
     * counts the modules. */
    dump(tp - 8, 1);
    const uint64_t *dtv = *(const uint64_t *const *)(tp - 8);
    if (dtv[0] < 64) dump((uintptr_t)dtv, (int)(dtv[0] + 1));
#endif
    dump((uintptr_t)slot, 1);
    dump((uintptr_t)record, 4);
    return 0;
}
