/* Test target for otel-ctx-dump's hostile-file tests: maps every file named on the command line
 * (read-only, private), prints "ready" and waits for EOF on stdin. The files are whatever the
 * test made: an ELF whose headers lie, or one the test then deletes and replaces with a FIFO. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    int fd = open(argv[i], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) return 1;
    if (mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED) return 1;
    close(fd);
  }
  printf("ready\n");
  fflush(stdout);
  char buf[64];
  while (fgets(buf, sizeof buf, stdin) != NULL) {
  }
  return 0;
}
