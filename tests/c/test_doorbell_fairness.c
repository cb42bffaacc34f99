/* The readiness thread never waits on one event loop: a doorbell whose pipe
 * is full (a busy loop that does not read) keeps its records and loses none,
 * while the other doorbells keep ringing at once and the thread stays idle.
 * A doorbell is closed when the thread that opened it exits, so threads
 * that never close theirs (terminated Bun Workers) do not use up the 64
 * slots. */
#include "check.h"
#include <pthread.h>
#include <stdint.h>
#include <sys/ioctl.h>

static int queued_bytes(int fd) {
  int n = 0;
  CHECK(ioctl(fd, FIONREAD, &n) == 0);
  return n;
}

static double cpu_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void *open_and_leave(void *out) {
  int *fd = out;
  CHECK_OK(libforks_doorbell_open(fd));
  int p[2];
  CHECK(libforks_pipe(p) == 0);
  CHECK_OK(libforks_watch(*fd, p[0], 1, 1)); /* waiting when it ends */
  close(p[0]);
  close(p[1]);
  return NULL;
}

int main(void) {
  test_deadline(60);

  /* A busy loop's doorbell, its pipe shrunk to one page: 512 records. */
  int busy;
  CHECK_OK(libforks_doorbell_open(&busy));
  int capacity = fcntl(busy, F_SETPIPE_SZ, 4096);
  CHECK(capacity == 4096);
  int always[2];
  CHECK(libforks_pipe(always) == 0);
  CHECK(write(always[1], "x", 1) == 1); /* readable for good */

  /* One-shot watches re-armed one after another, each ringing once, until
   * the pipe is full; then more, which the thread must keep for later. */
  uint64_t armed = 0;
  while (queued_bytes(busy) < capacity) {
    CHECK(armed < 10000);
    CHECK_OK(libforks_watch(busy, always[0], 1, ++armed));
    double deadline = now_ms() + 2000;
    while (queued_bytes(busy) < (int)(armed * 8) && queued_bytes(busy) < capacity) {
      CHECK(now_ms() < deadline);
      usleep(100);
    }
  }
  for (int i = 0; i < 100; i++) {
    CHECK_OK(libforks_watch(busy, always[0], 1, ++armed));
    usleep(200);
  }

  /* Another loop's doorbell still rings at once. */
  int other;
  CHECK_OK(libforks_doorbell_open(&other));
  int ready[2];
  CHECK(libforks_pipe(ready) == 0);
  CHECK(write(ready[1], "x", 1) == 1);
  double start = now_ms();
  CHECK_OK(libforks_watch(other, ready[0], 1, 42));
  struct pollfd p = {.fd = other, .events = POLLIN};
  CHECK(poll(&p, 1, 2000) == 1);
  uint64_t record;
  CHECK(read(other, &record, sizeof record) == sizeof record);
  CHECK((record & 0xFFFFFFFFFFFFULL) == 42);
  double latency = now_ms() - start;
  fprintf(stderr, "other doorbell rang after %.2f ms while the busy one was full\n", latency);
  CHECK(latency < 500);

  /* While the busy doorbell stays full, the thread does not spin. */
  double cpu_start = cpu_ms();
  usleep(300 * 1000);
  double spent = cpu_ms() - cpu_start;
  fprintf(stderr, "cpu while one doorbell is full: %.2f ms in 300 ms\n", spent);
  CHECK(spent < 60);

  /* The busy loop catches up: every record arrives, in order, the last
   * watch's included. */
  uint64_t expected = 1;
  double deadline = now_ms() + 5000;
  while (expected <= armed) {
    CHECK(now_ms() < deadline);
    struct pollfd b = {.fd = busy, .events = POLLIN};
    if (poll(&b, 1, 100) != 1) continue;
    CHECK(read(busy, &record, sizeof record) == sizeof record);
    uint64_t token = record & 0xFFFFFFFFFFFFULL;
    /* A re-arm that reached the set before the previous event was
     * collected merges with it: tokens may skip, never go back. */
    CHECK(token >= expected);
    expected = token + 1;
  }
  CHECK(expected == armed + 1);

  CHECK_OK(libforks_doorbell_close(busy));
  CHECK_OK(libforks_doorbell_close(other));
  close(always[0]);
  close(always[1]);
  close(ready[0]);
  close(ready[1]);

  /* 100 threads each open a doorbell, wait on it and end without closing
   * it: each is closed as its thread ends, and the slots stay free. */
  for (int i = 0; i < 100; i++) {
    pthread_t thread;
    int fd = -1;
    CHECK(pthread_create(&thread, NULL, open_and_leave, &fd) == 0);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK(fd >= 0);
    errno = 0;
    CHECK(fcntl(fd, F_GETFD) == -1 && errno == EBADF);
  }
  int last;
  CHECK_OK(libforks_doorbell_open(&last));
  CHECK_OK(libforks_doorbell_close(last));
  return 0;
}
