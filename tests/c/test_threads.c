/* 8 threads fork concurrently on ONE shared connection; every exit event
 * arrives once, on the right fd, with the right pid. Also 16 x 500. */
#include "check.h"
#include <pthread.h>

static libforks_ServerConn conn;
static int forks_per_thread;

static void *worker(void *arg) {
  long id = (long)arg;
  for (int i = 0; i < forks_per_thread; i++) {
    pid_t pid;
    int exit_fd;
    libforks_Result r = libforks_fork(conn, &pid, NULL, &exit_fd, entry_exit3);
    if (r != libforks_OK) {
      fprintf(stderr, "thread %ld fork %d: %s errno %d\n", id, i, libforks_result_string(r), libforks_last_errno());
      exit(1);
    }
    libforks_ExitEvent event = read_exit_event(exit_fd, 10000);
    CHECK(event.pid == pid && WEXITSTATUS(event.wait_status) == 3);
    /* Each pid is reported once: a second wait finds nothing to report. */
    int status;
    CHECK_OK(libforks_wait(conn, pid, &status, 0, NULL));
    CHECK_RESULT(libforks_wait(conn, pid, &status, WNOHANG, NULL), libforks_WAIT_ERROR);
  }
  return NULL;
}

static void run(int threads, int forks) {
  forks_per_thread = forks;
  pthread_t ids[16];
  CHECK_OK(libforks_start(&conn));
  double start = now_ms();
  for (long t = 0; t < threads; t++) CHECK(pthread_create(&ids[t], NULL, worker, (void *)t) == 0);
  for (int t = 0; t < threads; t++) CHECK(pthread_join(ids[t], NULL) == 0);
  printf("%d threads x %d forks: %.0f ms\n", threads, forks, now_ms() - start);
  CHECK_OK(libforks_stop(conn, true));
}

int main(void) {
  test_deadline(110);
  run(8, 50);
  run(16, 500);
  return 0;
}
