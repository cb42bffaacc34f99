/* libforks_kill signals through the server, which knows whether it has
 * reaped a child: a pid still in its table is at worst a zombie (not
 * reusable), anything else gets ESRCH and no signal, so a reused pid is
 * never signalled. libforks_kill_tree also takes the child's descendants,
 * and only those. */
#include "tree.h"

static const char *mark_a, *mark_b;

static void entry_shell_a(libforks_ServerConn conn, int socket_fd) {
  (void)conn; (void)socket_fd;
  exec_marked_sh(mark_a, "sleep 1001 & sleep 1002 & sleep 1003; echo");
}

static void entry_shell_b(libforks_ServerConn conn, int socket_fd) {
  (void)conn; (void)socket_fd;
  exec_marked_sh(mark_b, "sleep 1004; echo");
}

int main(void) {
  test_deadline(30);
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  pid_t pid;
  int exit_fd, reply_fd;
  libforks_Reply reply;

  /* a running child: signalled */
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_pause));
  CHECK_OK(libforks_kill(conn, pid, 0));
  CHECK_OK(libforks_kill(conn, pid, SIGUSR1));
  libforks_ExitEvent event = read_exit_event(exit_fd, 5000);
  CHECK(event.pid == pid && WIFSIGNALED(event.wait_status) && WTERMSIG(event.wait_status) == SIGUSR1);

  /* once reaped: ESRCH, nothing sent, whoever has the pid now */
  CHECK_RESULT(libforks_kill(conn, pid, SIGKILL), libforks_KILL_ERROR);
  CHECK(libforks_last_errno() == ESRCH);

  /* a process that is not the server's child (this one): ESRCH, no signal */
  CHECK_RESULT(libforks_kill(conn, getpid(), SIGKILL), libforks_KILL_ERROR);
  CHECK(libforks_last_errno() == ESRCH);
  CHECK_RESULT(libforks_kill(conn, getppid(), SIGKILL), libforks_KILL_ERROR);

  /* bad arguments */
  CHECK_RESULT(libforks_kill(conn, 0, SIGKILL), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_kill(conn, -1, SIGKILL), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_kill(conn, 5, 65), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_kill(conn, 5, -1), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_kill_async(conn, 5, SIGKILL, 2, &reply_fd), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_kill_async(conn, 5, SIGKILL, 0, NULL), libforks_INVALID_ARGUMENT);

  /* the asynchronous form */
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_pause));
  CHECK_OK(libforks_kill_async(conn, pid, SIGTERM, 0, &reply_fd));
  CHECK_OK(libforks_reply_read(reply_fd, &reply));
  event = read_exit_event(exit_fd, 5000);
  CHECK(WIFSIGNALED(event.wait_status) && WTERMSIG(event.wait_status) == SIGTERM);

  /* kill_tree: the child and its descendants, not another child's */
  /* (marks set before the server starts: it is a snapshot) */
  CHECK_OK(libforks_stop(conn, true));
  char mark_a_text[96], mark_b_text[96];
  snprintf(mark_a_text, sizeof mark_a_text, "%s", make_mark(1));
  snprintf(mark_b_text, sizeof mark_b_text, "%s", make_mark(2));
  mark_a = mark_a_text;
  mark_b = mark_b_text;
  CHECK_OK(libforks_start(&conn));
  pid_t a, b;
  int exit_a, exit_b;
  CHECK_OK(libforks_fork(conn, &a, NULL, &exit_a, entry_shell_a));
  CHECK_OK(libforks_fork(conn, &b, NULL, &exit_b, entry_shell_b));
  CHECK(wait_marked(mark_a, 4, 5000) == 4);
  CHECK(wait_marked(mark_b, 2, 5000) == 2);
  CHECK_OK(libforks_kill(conn, a, 0));
  CHECK_OK(libforks_kill_tree(conn, a, SIGKILL));
  if (darwin_paths()) {
    /* macOS has no pidfds and no /proc children: kill_tree and kill's
     * tree flag signal the child only (the header). That is checked, and
     * the test ends what the shells left itself. */
    not_on_darwin("kill_tree reaching a child's descendants (macOS: the child only, checked instead)");
    event = read_exit_event(exit_a, 5000);
    CHECK(event.pid == a && WTERMSIG(event.wait_status) == SIGKILL);
    CHECK(wait_marked(mark_a, 3, 1000) == 3); /* its three sleeps live on */
    CHECK(count_marked(mark_b, NULL, 0) == 2);
    CHECK_OK(libforks_kill_async(conn, b, SIGTERM, 1, &reply_fd));
    CHECK_OK(libforks_reply_read(reply_fd, &reply));
    event = read_exit_event(exit_b, 5000);
    CHECK(event.pid == b && WTERMSIG(event.wait_status) == SIGTERM);
    CHECK(wait_marked(mark_b, 1, 1000) == 1); /* its sleep lives on */
    kill_marked(mark_a);
    kill_marked(mark_b);
    CHECK(wait_marked(mark_a, 0, 1000) == 0 && wait_marked(mark_b, 0, 1000) == 0);
    CHECK_RESULT(libforks_kill_tree(conn, a, SIGKILL), libforks_KILL_ERROR);
    CHECK_OK(libforks_stop(conn, true));
    return 0;
  }
  CHECK(wait_marked(mark_a, 0, 1000) == 0);
  event = read_exit_event(exit_a, 5000);
  CHECK(event.pid == a && WTERMSIG(event.wait_status) == SIGKILL);
  usleep(50000);
  CHECK(count_marked(mark_b, NULL, 0) == 2);
  /* SIGTERM down the tree: sh and its sleep both get it */
  CHECK_OK(libforks_kill_async(conn, b, SIGTERM, 1, &reply_fd));
  CHECK_OK(libforks_reply_read(reply_fd, &reply));
  CHECK(wait_marked(mark_b, 0, 1000) == 0);
  close(exit_b);
  CHECK_RESULT(libforks_kill_tree(conn, a, SIGKILL), libforks_KILL_ERROR);
  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
