/*
 * glibc's _dl_find_object, which Debian's libgcc_eh.a calls to find a frame's unwind table, for
 * the musl build of the library (scripts/build-musl.sh): musl has none, and without it panics
 * could not unwind to the C API's catch_unwind. The same lookup with dl_iterate_phdr: the module
 * whose PT_LOAD segments hold the address, and its PT_GNU_EH_FRAME. Hidden: never exported.
 */
#define _GNU_SOURCE
#include <link.h>
#include <stddef.h>
#include <stdint.h>

/* glibc's struct dl_find_object on x86-64 (<dlfcn.h>, glibc 2.35), which libgcc_eh.a reads. */
struct dl_find_object {
    unsigned long long dlfo_flags;
    void *dlfo_map_start;
    void *dlfo_map_end;
    void *dlfo_link_map;
    void *dlfo_eh_frame;
    unsigned long long dlfo_reserved[7];
};

struct search {
    uintptr_t pc;
    struct dl_find_object *out;
};

static int visit(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct search *s = data;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    void *eh_frame = NULL;
    int holds = 0;
    for (size_t i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD) {
            uintptr_t end = start + ph->p_memsz;
            if (start < lo) lo = start;
            if (end > hi) hi = end;
            if (s->pc >= start && s->pc < end) holds = 1;
        } else if (ph->p_type == PT_GNU_EH_FRAME) {
            eh_frame = (void *)start;
        }
    }
    if (!holds) return 0;
    *s->out = (struct dl_find_object){.dlfo_map_start = (void *)lo, .dlfo_map_end = (void *)hi,
                                      .dlfo_eh_frame = eh_frame};
    return 1;
}

/* 0 and *out filled when a loaded module holds pc, -1 otherwise (glibc's contract);
 * dl_iterate_phdr returns the last visit's result, 1 once one found it. */
__attribute__((visibility("hidden"))) int _dl_find_object(void *pc, struct dl_find_object *out) {
    struct search s = {(uintptr_t)pc, out};
    return dl_iterate_phdr(visit, &s) ? 0 : -1;
}
