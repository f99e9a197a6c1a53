/* Loads libsuite.so (tests/musl/suite.c, which brings libotel_thread_ctx.so) with dlopen, as
 * .NET loads native libraries, and runs it: musl then places the library's TLS dynamically. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
    if (n <= 0) return 1;
    path[n] = '\0';
    strcpy(strrchr(path, '/') + 1, "libsuite.so");
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    int (*suite_main)(int, char **) = (int (*)(int, char **))dlsym(lib, "suite_main");
    if (suite_main == NULL) {
        fprintf(stderr, "dlsym: %s\n", dlerror());
        return 1;
    }
    return suite_main(argc, argv);
}
