/* Loads the sample (and with it libotel_thread_ctx.so) with dlopen, as .NET loads native
 * libraries, then runs it: see sample.c. tests/musl/dlopen_main.c builds this file to load the
 * musl suite instead, defining DLOPEN_LIBRARY and DLOPEN_ENTRY. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef DLOPEN_LIBRARY
#define DLOPEN_LIBRARY "libsample.so" /* next to this program */
#define DLOPEN_ENTRY "otel_sample_main"
#endif

int main(int argc, char **argv) {
  char path[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
  if (n <= 0) return 1;
  path[n] = '\0';
  strcpy(strrchr(path, '/') + 1, DLOPEN_LIBRARY);
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  int (*entry)(int, char **) = (int (*)(int, char **))dlsym(lib, DLOPEN_ENTRY);
  if (entry == NULL) {
    fprintf(stderr, "dlsym: %s\n", dlerror());
    return 1;
  }
  return entry(argc, argv);
}
