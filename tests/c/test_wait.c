/* libforks_wait semantics as the header settles them. */
#include "check.h"
#include <pthread.h>

static libforks_ServerConn conn;

static void entry_sleep_100ms(libforks_ServerConn c, int s) {
  (void)c; (void)s;
  usleep(100000);
  _exit(5);
}

static pid_t long_child;
static void *wait_for_long_child(void *arg) {
  (void)arg;
  int status;
  CHECK_OK(libforks_wait(conn, long_child, &status, 0, NULL));
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGUSR2);
  return NULL;
}

int main(void) {
  test_deadline(60);
  CHECK_OK(libforks_start(&conn));
  int status;
  pid_t pid, waited;
  int exit_fd;

  /* pid > 0 before it exits: blocks until it does */
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_sleep_100ms));
  double start = now_ms();
  CHECK_OK(libforks_wait(conn, pid, &status, 0, NULL));
  CHECK(now_ms() - start >= 50 && WEXITSTATUS(status) == 5);
  read_exit_event(exit_fd, 1000);

  /* pid > 0 after it exited: at once; the second time ECHILD */
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_exit3));
  read_exit_event(exit_fd, 5000);
  CHECK_OK(libforks_wait(conn, pid, &status, 0, NULL));
  CHECK(WEXITSTATUS(status) == 3);
  CHECK_RESULT(libforks_wait(conn, pid, &status, 0, NULL), libforks_WAIT_ERROR);
  CHECK(libforks_last_errno() == ECHILD);

  /* never a child of this server */
  CHECK_RESULT(libforks_wait(conn, getpid(), &status, 0, NULL), libforks_WAIT_ERROR);
  CHECK(libforks_last_errno() == ECHILD);

  /* -1: any child, and libforks_waitpid says which */
  CHECK_OK(libforks_fork(conn, &pid, NULL, NULL, entry_exit3));
  CHECK_OK(libforks_waitpid(conn, -1, &waited, &status, 0, NULL));
  CHECK(waited == pid && WEXITSTATUS(status) == 3);
  CHECK_RESULT(libforks_waitpid(conn, -1, &waited, &status, 0, NULL), libforks_WAIT_ERROR);
  CHECK(libforks_last_errno() == ECHILD);

  /* WNOHANG */
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_pause));
  CHECK_RESULT(libforks_wait(conn, pid, &status, WNOHANG, NULL), libforks_WOULD_BLOCK);
  CHECK_RESULT(libforks_waitpid(conn, -1, &waited, &status, WNOHANG, NULL), libforks_WOULD_BLOCK);
  CHECK(kill(pid, SIGTERM) == 0);
  read_exit_event(exit_fd, 5000);
  CHECK_OK(libforks_wait(conn, pid, &status, WNOHANG, NULL));
  CHECK(WTERMSIG(status) == SIGTERM);

  /* bad arguments */
  CHECK_RESULT(libforks_wait(conn, 0, &status, 0, NULL), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_wait(conn, -5, &status, 0, NULL), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_wait(conn, 1234, &status, WUNTRACED, NULL), libforks_INVALID_ARGUMENT);

  /* A wait does not block the server: while one thread waits for a child
   * that runs until signalled, this thread forks and kills. */
  CHECK_OK(libforks_fork(conn, &long_child, NULL, NULL, entry_pause));
  pthread_t waiter;
  CHECK(pthread_create(&waiter, NULL, wait_for_long_child, NULL) == 0);
  usleep(20000);
  for (int i = 0; i < 20; i++) {
    CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_exit0));
    read_exit_event(exit_fd, 5000);
  }
  CHECK_OK(libforks_kill_all(conn, SIGUSR2));
  CHECK(pthread_join(waiter, NULL) == 0);

  /* wait_all returns once every child exited */
  pid_t sleepers[3];
  for (int i = 0; i < 3; i++) CHECK_OK(libforks_fork(conn, &sleepers[i], NULL, NULL, entry_sleep_100ms));
  start = now_ms();
  CHECK_OK(libforks_wait_all(conn));
  CHECK(now_ms() - start >= 50);
  for (int i = 0; i < 3; i++) CHECK(process_exited(sleepers[i]));
  CHECK_OK(libforks_wait_all(conn)); /* none running: at once */

  /* the asynchronous form */
  int reply_fd;
  CHECK_OK(libforks_fork(conn, &pid, NULL, NULL, entry_sleep_100ms));
  CHECK_OK(libforks_wait_async(conn, pid, 0, &reply_fd));
  struct pollfd p = {.fd = reply_fd, .events = POLLIN};
  CHECK(poll(&p, 1, 0) == 0); /* not yet */
  CHECK(poll(&p, 1, 5000) == 1);
  libforks_Reply reply;
  CHECK_OK(libforks_reply_read(reply_fd, &reply));
  CHECK(reply.pid == pid && WEXITSTATUS(reply.wait_status) == 5);
  CHECK(fcntl(reply_fd, F_GETFD) == -1); /* closed by reply_read */

  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
