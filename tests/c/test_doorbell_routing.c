/* Which doorbell rings: each watch rings only the doorbell it was armed
 * on, a closed doorbell's watches never ring the doorbell that reuses its
 * fd number, and closing a doorbell closes its fd and frees its place
 * among the 64. */
#include "check.h"

#define TOKEN_MASK ((UINT64_C(1) << 48) - 1)

static int readable(int fd, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int n = poll(&p, 1, timeout_ms);
  CHECK(n >= 0);
  return n;
}

static uint64_t ring(int doorbell, int timeout_ms) {
  CHECK(readable(doorbell, timeout_ms) == 1);
  uint64_t record;
  CHECK(read(doorbell, &record, sizeof record) == sizeof record);
  CHECK((record >> 56) == 0); /* bits 56..63 are unused */
  CHECK((record >> 48) & 1);  /* readable */
  return record & TOKEN_MASK;
}

int main(void) {
  test_deadline(20);
  int first, second, a[2], b[2];
  CHECK(pipe(a) == 0 && pipe(b) == 0);

  /* two doorbells, two watches, each rings its own */
  CHECK_OK(libforks_doorbell_open(&first));
  CHECK_OK(libforks_doorbell_open(&second));
  CHECK(first != second);
  CHECK_OK(libforks_watch(first, a[0], 1, 100));
  CHECK_OK(libforks_watch(second, b[0], 1, 200));
  CHECK(write(b[1], "b", 1) == 1);
  CHECK(ring(second, 2000) == 200);
  CHECK(readable(first, 100) == 0);
  CHECK(write(a[1], "a", 1) == 1);
  CHECK(ring(first, 2000) == 100);
  CHECK(readable(second, 100) == 0);

  /* one fd watched by two doorbells: each rings with its own token (two
   * event loops may wait on one shared connection) */
  char byte;
  CHECK(read(a[0], &byte, 1) == 1);
  CHECK_OK(libforks_watch(first, a[0], 1, 101));
  CHECK_OK(libforks_watch(second, a[0], 1, 201));
  CHECK(write(a[1], "a", 1) == 1);
  CHECK(ring(second, 2000) == 201);
  CHECK(ring(first, 2000) == 101);
  CHECK(read(a[0], &byte, 1) == 1);
  /* unwatch on one doorbell leaves the other's watch */
  CHECK_OK(libforks_watch(first, a[0], 1, 103));
  CHECK_OK(libforks_watch(second, a[0], 1, 203));
  CHECK_OK(libforks_unwatch(first, a[0]));
  CHECK(write(a[1], "a", 1) == 1);
  CHECK(ring(second, 2000) == 203);
  CHECK(readable(first, 100) == 0);
  CHECK(read(a[0], &byte, 1) == 1);

  /* close: the fd is closed, the doorbell forgotten */
  CHECK_OK(libforks_watch(first, a[0], 1, 102)); /* left armed on purpose */
  CHECK_OK(libforks_doorbell_close(first));
  CHECK(fcntl(first, F_GETFD) == -1 && errno == EBADF);
  CHECK(libforks_doorbell_close(first) != libforks_OK);
  CHECK(libforks_watch(first, b[0], 1, 1) != libforks_OK);

  /* the next doorbell may get the same fd number: the old watch must not
   * ring it */
  int successor;
  CHECK_OK(libforks_doorbell_open(&successor));
  CHECK(write(a[1], "a", 1) == 1);
  CHECK(readable(successor, 200) == 0);
  CHECK_OK(libforks_watch(successor, a[0], 1, 300)); /* re-armed: rings */
  CHECK(ring(successor, 2000) == 300);
  CHECK_OK(libforks_unwatch(successor, a[0]));
  CHECK_OK(libforks_unwatch(second, b[0]));

  /* 64 per process; closing one frees its place */
  int bells[64], opened = 2; /* second and successor */
  while (opened < 64) CHECK_OK(libforks_doorbell_open(&bells[opened++]));
  int extra;
  CHECK_RESULT(libforks_doorbell_open(&extra), libforks_LIMIT_ERROR);
  CHECK_OK(libforks_doorbell_close(bells[63]));
  CHECK_OK(libforks_doorbell_open(&bells[63]));
  for (int i = 2; i < 64; i++) CHECK_OK(libforks_doorbell_close(bells[i]));
  CHECK_OK(libforks_doorbell_close(second));
  CHECK_OK(libforks_doorbell_close(successor));
  close(a[0]), close(a[1]), close(b[0]), close(b[1]);
  return 0;
}
