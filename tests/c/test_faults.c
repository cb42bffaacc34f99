/* Children that crash, abort, exit 255, close their socket early or never
 * read it: correct exit events, and the server keeps serving. */
#include "check.h"
#include <stdint.h>

static void entry_segv(libforks_ServerConn c, int s) {
  (void)c; (void)s;
  /* Not NULL: UBSan would report that before the fault. */
  volatile int *nowhere = (volatile int *)(uintptr_t)16;
  *nowhere = 1;
}
static void entry_abort(libforks_ServerConn c, int s) { (void)c; (void)s; abort(); }
static void entry_exit255(libforks_ServerConn c, int s) { (void)c; (void)s; _exit(255); }
static void entry_close_socket(libforks_ServerConn c, int s) {
  (void)c;
  close(s);
  usleep(50000);
  _exit(4);
}
static void entry_never_read(libforks_ServerConn c, int s) {
  (void)c; (void)s;
  usleep(200000);
  _exit(5);
}

int main(void) {
  test_deadline(90);
  signal(SIGPIPE, SIG_IGN);
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  pid_t pid;
  int socket_fd, exit_fd;

  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_segv));
  libforks_ExitEvent event = read_exit_event(exit_fd, 5000);
  CHECK(event.pid == pid && WIFSIGNALED(event.wait_status) && WTERMSIG(event.wait_status) == SIGSEGV);

  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_abort));
  CHECK(WTERMSIG(read_exit_event(exit_fd, 5000).wait_status) == SIGABRT);

  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_exit255));
  event = read_exit_event(exit_fd, 5000);
  CHECK(WIFEXITED(event.wait_status) && WEXITSTATUS(event.wait_status) == 255);

  /* the peer closed: our writes fail with EPIPE, no signal */
  CHECK_OK(libforks_fork(conn, &pid, &socket_fd, &exit_fd, entry_close_socket));
  usleep(20000);
  errno = 0;
  int wrote = libforks_write_socket_fds(socket_fd, "x", 1, NULL, 0);
  /* A datagram socket (darwin paths) whose peer closed: ECONNREFUSED. */
  CHECK(wrote == -1 && (errno == EPIPE || errno == ECONNRESET || (darwin_paths() && errno == ECONNREFUSED)));
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 4);
  close(socket_fd);

  /* a child that never reads: our queue fills (non-blocking send says
   * EAGAIN), the server is unaffected */
  CHECK_OK(libforks_fork(conn, &pid, &socket_fd, &exit_fd, entry_never_read));
  CHECK(libforks_set_nonblocking(socket_fd, true) == 0);
  static char chunk[4096];
  int sent = 0;
  while (libforks_write_socket_fds(socket_fd, chunk, sizeof chunk, NULL, 0) > 0) sent++;
  /* XNU (darwin paths) refuses a datagram for a full receiver with
   * ENOBUFS, non-blocking or not. */
  CHECK((errno == EAGAIN || (darwin_paths() && errno == ENOBUFS)) && sent > 0);
  int other_exit;
  CHECK_OK(libforks_fork(conn, &pid, NULL, &other_exit, entry_exit3));
  CHECK(WEXITSTATUS(read_exit_event(other_exit, 5000).wait_status) == 3);
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 5);
  close(socket_fd);

  /* 10,000 children whose exit fds nobody reads (2,000 at a time, closed
   * unread) never block the server: it still answers at once. */
  static int unread[2000];
  for (int round = 0; round < 5; round++) {
    for (int i = 0; i < 2000; i++) CHECK_OK(libforks_fork(conn, NULL, NULL, &unread[i], entry_exit0));
    CHECK_OK(libforks_wait_all(conn));
    for (int i = 0; i < 2000; i++) close(unread[i]);
  }
  double start = now_ms();
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_exit3));
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 3);
  printf("fork round trip after 10,000 unread exits: %.2f ms\n", now_ms() - start);
  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
