/* The readiness doorbell: one-shot watches ring with their token and the
 * ready events; unwatch silences one; the thread serves many fds. */
#include "check.h"
#include <stdint.h>

static uint64_t ring(int doorbell, int timeout_ms) {
  struct pollfd p = {.fd = doorbell, .events = POLLIN};
  CHECK(poll(&p, 1, timeout_ms) == 1);
  uint64_t record;
  CHECK(read(doorbell, &record, sizeof record) == sizeof record);
  return record;
}

static int quiet(int doorbell, int ms) {
  struct pollfd p = {.fd = doorbell, .events = POLLIN};
  return poll(&p, 1, ms) == 0;
}

int main(void) {
  test_deadline(60);
  int doorbell;
  CHECK_OK(libforks_doorbell_open(&doorbell));
  int fds[2];
  CHECK(libforks_pipe(fds) == 0);

  /* readable, with its token; one-shot */
  CHECK_OK(libforks_watch(doorbell, fds[0], 1, 0xABCDEF123456ULL));
  CHECK(quiet(doorbell, 50));
  CHECK(write(fds[1], "x", 1) == 1);
  uint64_t record = ring(doorbell, 2000);
  CHECK((record & 0xFFFFFFFFFFFFULL) == 0xABCDEF123456ULL);
  CHECK(((record >> 48) & 0xFF) & 1);
  CHECK(quiet(doorbell, 50)); /* still readable, but the watch fired once */

  /* re-armed, it fires again at once */
  CHECK_OK(libforks_watch(doorbell, fds[0], 1, 7));
  CHECK((ring(doorbell, 2000) & 0xFFFFFFFFFFFFULL) == 7);

  /* writable */
  CHECK_OK(libforks_watch(doorbell, fds[1], 4, 8));
  record = ring(doorbell, 2000);
  CHECK((record & 0xFFFFFFFFFFFFULL) == 8 && ((record >> 48) & 4));

  /* hang-up: the write end closes */
  char byte;
  CHECK(read(fds[0], &byte, 1) == 1);
  CHECK_OK(libforks_watch(doorbell, fds[0], 1, 9));
  close(fds[1]);
  record = ring(doorbell, 2000);
  CHECK((record & 0xFFFFFFFFFFFFULL) == 9 && ((record >> 48) & 16));

  /* unwatch silences a watch */
  int other[2];
  CHECK(libforks_pipe(other) == 0);
  CHECK_OK(libforks_watch(doorbell, other[0], 1, 10));
  CHECK_OK(libforks_unwatch(doorbell, other[0]));
  CHECK(write(other[1], "x", 1) == 1);
  CHECK(quiet(doorbell, 100));

  /* bad arguments */
  CHECK_RESULT(libforks_watch(doorbell, other[0], 1, 1ULL << 48), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_watch(doorbell, other[0], 2, 1), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_watch(doorbell, -1, 1, 1), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_watch(other[1], other[0], 1, 1), libforks_INVALID_ARGUMENT); /* not a doorbell */
  CHECK_RESULT(libforks_doorbell_close(other[1]), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_doorbell_open(NULL), libforks_INVALID_ARGUMENT);

  /* 500 exit fds through one doorbell, one thread */
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  static int exit_fds[500];
  static int seen[500];
  for (int i = 0; i < 500; i++) {
    CHECK_OK(libforks_fork(conn, NULL, NULL, &exit_fds[i], entry_exit0));
    CHECK_OK(libforks_watch(doorbell, exit_fds[i], 1, (uint64_t)i));
  }
  for (int got = 0; got < 500; got++) {
    uint64_t token = ring(doorbell, 10000) & 0xFFFFFFFFFFFFULL;
    CHECK(token < 500 && !seen[token]);
    seen[token] = 1;
    read_exit_event(exit_fds[token], 0);
  }
  CHECK_OK(libforks_stop(conn, true));

  /* at most 64 doorbells per process */
  int many[64];
  int opened = 0;
  while (opened < 64 && libforks_doorbell_open(&many[opened]) == libforks_OK) opened++;
  CHECK(opened == 63); /* one is open already */
  int one_too_many;
  CHECK_RESULT(libforks_doorbell_open(&one_too_many), libforks_LIMIT_ERROR);
  for (int i = 0; i < opened; i++) CHECK_OK(libforks_doorbell_close(many[i]));
  CHECK_OK(libforks_doorbell_close(doorbell));
  return 0;
}
