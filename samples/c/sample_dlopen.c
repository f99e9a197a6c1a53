/* Loads the sample (and with it libotel_thread_ctx.so) with dlopen, as .NET loads native
 * libraries, then runs it: see sample.c. */
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
  strcpy(strrchr(path, '/') + 1, "libsample.so");
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  int (*sample_main)(int, char **) = (int (*)(int, char **))dlsym(lib, "otel_sample_main");
  if (sample_main == NULL) {
    fprintf(stderr, "dlsym: %s\n", dlerror());
    return 1;
  }
  return sample_main(argc, argv);
}
