// A slow disk for the city bench (--slow-fsync-ms): loaded into the gateway
// with LD_PRELOAD, it makes every fsync and fdatasync take
// SAFEHAVEN_BENCH_SLOW_FSYNC_MS longer — an SD card, or a disk shared with a
// backup. Whatever thread calls them waits; the bench shows whether that is
// ever the event loop (it must not be: the police path does not wait for
// the disk).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static void disk_wait(void) {
  const char *ms = getenv("SAFEHAVEN_BENCH_SLOW_FSYNC_MS");
  long n = ms ? atol(ms) : 0;
  struct timespec t = { n / 1000, (n % 1000) * 1000000L };
  if (n > 0) nanosleep(&t, NULL);
}

int fsync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  disk_wait();
  return real(fd);
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  disk_wait();
  return real(fd);
}
