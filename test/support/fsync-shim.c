// Loaded with LD_PRELOAD into a gateway or store process (fsync-shim.ts
// compiles it): every fsync and fdatasync waits SAFEHAVEN_FSYNC_DELAY_MS
// longer — a slow disk, an SD card, a disk shared with a backup — and each
// one called on the main thread, the event loop's, is appended as a line to
// SAFEHAVEN_FSYNC_MAIN_LOG. While the gateway runs there must be none: a
// slow disk may delay acknowledgements, never every device and police POST.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void before_sync(const char *what) {
  const char *log = getenv("SAFEHAVEN_FSYNC_MAIN_LOG");
  if (log && syscall(SYS_gettid) == getpid()) {
    int fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (fd >= 0) {
      if (write(fd, what, strlen(what)) < 0 || write(fd, "\n", 1) < 0) { /* a test log: nothing to do */ }
      close(fd);
    }
  }
  const char *ms = getenv("SAFEHAVEN_FSYNC_DELAY_MS");
  long n = ms ? atol(ms) : 0;
  struct timespec t = { n / 1000, (n % 1000) * 1000000L };
  if (n > 0) nanosleep(&t, NULL);
}

int fsync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  before_sync("fsync");
  return real(fd);
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  before_sync("fdatasync");
  return real(fd);
}
