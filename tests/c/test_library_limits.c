/* The library's own fixed limits: LIBFORKS_MAX_EXIT_RECORDS (the oldest
 * unwaited exit is forgotten first), LIBFORKS_MAX_PENDING outstanding
 * waits, LIBFORKS_MAX_CHILDREN running children (LIMIT_ERROR past it, room
 * again once they exit), and the 4 MiB exec spec. */
#include "check.h"

static void remembered_exits(libforks_ServerConn conn) {
  enum { EXTRA = 10, TOTAL = LIBFORKS_MAX_EXIT_RECORDS + EXTRA };
  static pid_t pids[TOTAL];
  /* One at a time, so that exit order is fork order. */
  for (int i = 0; i < TOTAL; i++) {
    int exit_fd;
    CHECK_OK(libforks_fork(conn, &pids[i], NULL, &exit_fd, entry_exit3));
    CHECK(read_exit_event(exit_fd, 5000).pid == pids[i]);
  }
  int status;
  for (int i = 0; i < EXTRA; i++) {
    CHECK_RESULT(libforks_wait(conn, pids[i], &status, WNOHANG, NULL), libforks_WAIT_ERROR);
    CHECK(libforks_last_errno() == ECHILD);
  }
  /* the earliest remembered one comes first, then the rest in order */
  pid_t waited;
  CHECK_OK(libforks_waitpid(conn, -1, &waited, &status, WNOHANG, NULL));
  CHECK(waited == pids[EXTRA] && WEXITSTATUS(status) == 3);
  CHECK_OK(libforks_wait(conn, pids[TOTAL - 1], &status, WNOHANG, NULL));
  for (int i = EXTRA + 1; i < TOTAL - 1; i++) {
    CHECK_OK(libforks_waitpid(conn, -1, &waited, &status, WNOHANG, NULL));
    CHECK(waited == pids[i]);
  }
  CHECK_RESULT(libforks_wait(conn, -1, &status, WNOHANG, NULL), libforks_WAIT_ERROR);
}

static void pending_waits(libforks_ServerConn conn) {
  static int replies[LIBFORKS_MAX_PENDING];
  pid_t pid;
  CHECK_OK(libforks_fork(conn, &pid, NULL, NULL, entry_pause));
  for (int i = 0; i < LIBFORKS_MAX_PENDING; i++) CHECK_OK(libforks_wait_async(conn, pid, 0, &replies[i]));
  /* one more: refused at once or in its reply */
  int extra;
  libforks_Reply reply;
  libforks_Result r = libforks_wait_async(conn, pid, 0, &extra);
  if (r == libforks_OK) r = libforks_reply_read(extra, &reply);
  CHECK_RESULT(r, libforks_LIMIT_ERROR);
  /* the child exits: one waiter gets the status, every other ECHILD */
  CHECK(kill(pid, SIGKILL) == 0);
  int got_status = 0;
  for (int i = 0; i < LIBFORKS_MAX_PENDING; i++) {
    r = libforks_reply_read(replies[i], &reply);
    if (r == libforks_OK) {
      got_status++;
      CHECK(reply.pid == pid && WIFSIGNALED(reply.wait_status) && WTERMSIG(reply.wait_status) == SIGKILL);
    } else {
      CHECK_RESULT(r, libforks_WAIT_ERROR);
      CHECK(reply.error_number == ECHILD);
    }
  }
  CHECK(got_status == 1);
  /* the places are free again */
  CHECK_OK(libforks_fork(conn, &pid, NULL, NULL, entry_exit3));
  int status;
  CHECK_OK(libforks_wait(conn, pid, &status, 0, NULL));
  CHECK(WEXITSTATUS(status) == 3);
}

__attribute__((unused)) static void running_children(libforks_ServerConn conn) {
  double start = now_ms();
  int running = 0;
  libforks_Result r;
  while ((r = libforks_fork(conn, NULL, NULL, NULL, entry_pause)) == libforks_OK && running <= LIBFORKS_MAX_CHILDREN) {
    running++;
  }
  if (r == libforks_FORK_ERROR && libforks_last_errno() == EAGAIN) {
    /* RLIMIT_NPROC (or the pid space) is below the library's limit here */
    printf("fork(2) ran out after %d children: LIBFORKS_MAX_CHILDREN not reachable\n", running);
  } else {
    CHECK_RESULT(r, libforks_LIMIT_ERROR);
    /* fewer only when the server's fd limit cannot hold that many */
    struct rlimit limit;
    CHECK(getrlimit(RLIMIT_NOFILE, &limit) == 0);
    if (limit.rlim_max == RLIM_INFINITY || limit.rlim_max >= 4 * LIBFORKS_MAX_CHILDREN) {
      CHECK(running == LIBFORKS_MAX_CHILDREN);
    }
    CHECK(running > 0 && running <= LIBFORKS_MAX_CHILDREN);
  }
  printf("%d running children in %.0f ms\n", running, now_ms() - start);
  CHECK_OK(libforks_kill_all(conn, SIGKILL));
  CHECK_OK(libforks_wait_all(conn));
  pid_t pid;
  int exit_fd;
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_exit3));
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 3);
}

static void exec_spec_size(void) {
  int pair[2];
  CHECK(libforks_socketpair(pair) == 0);
  static char big[5 << 20];
  memset(big, 'x', sizeof big - 1);
  memcpy(big, "BIG=", 4);
  const char *argv[] = {"true", NULL}, *envp[] = {big, NULL};
  CHECK_RESULT(libforks_send_exec_spec(pair[0], "/bin/true", argv, envp, NULL, NULL, NULL, 0),
               libforks_INVALID_ARGUMENT);
  close(pair[0]);
  close(pair[1]);
}

int main(void) {
  test_deadline(110); /* 4,096 children take seconds: each fork costs the server O(children) */
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  remembered_exits(conn);
  pending_waits(conn);
#ifdef __SANITIZE_ADDRESS__
  /* A snapshot of a sanitized process is costly to fork 4,096 times; the
   * plain run checks this limit. */
  printf("LIBFORKS_MAX_CHILDREN not checked under AddressSanitizer\n");
#else
  running_children(conn);
#endif
  exec_spec_size();
  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
