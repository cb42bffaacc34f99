/* libforks_fork_async: fds made by the caller, the pid on the reply fd,
 * WOULD_BLOCK when the connection is full and nonblocking is asked. */
#include "check.h"

int main(void) {
  test_deadline(60);
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));

  int channel[2], exits[2], reply_fd;
  CHECK(libforks_socketpair(channel) == 0 && libforks_pipe(exits) == 0);
  libforks_ForkRequest request = {
      .size = sizeof request, .entrypoint = entry_exit3, .socket_fd = channel[1], .exit_fd = exits[1]};
  CHECK_OK(libforks_fork_async(conn, &request, &reply_fd));
  close(channel[1]);
  close(exits[1]);
  libforks_Reply reply;
  CHECK_OK(libforks_reply_read(reply_fd, &reply));
  libforks_ExitEvent event = read_exit_event(exits[0], 5000);
  CHECK(event.pid == reply.pid && WEXITSTATUS(event.wait_status) == 3);
  char byte;
  if (darwin_paths()) {
    /* A datagram pair: XNU reports the peer's close as ECONNRESET, once,
     * which libforks_read_socket_fds turns into end-of-file. */
    not_on_darwin("read(2) returning end-of-file once the child's end closed (ECONNRESET there; libforks_read_socket_fds's 0 checked instead)");
    CHECK(libforks_read_socket_fds(channel[0], &byte, 1, NULL, 0) == 0);
  } else {
    CHECK(read(channel[0], &byte, 1) == 0); /* the child's end closed with it */
  }
  close(channel[0]);

  /* a symbol, and a failure reported on the reply fd */
  libforks_ForkRequest by_symbol = {.size = sizeof by_symbol, .library = "libc.so.6", .symbol = "abort", .socket_fd = -1, .exit_fd = -1};
  CHECK_OK(libforks_fork_async(conn, &by_symbol, &reply_fd));
  CHECK_OK(libforks_reply_read(reply_fd, &reply));
  int status;
  CHECK_OK(libforks_wait(conn, reply.pid, &status, 0, NULL));
  CHECK(WTERMSIG(status) == SIGABRT);

  /* bad requests */
  libforks_ForkRequest empty = {.size = sizeof empty, .socket_fd = -1, .exit_fd = -1};
  CHECK_RESULT(libforks_fork_async(conn, &empty, &reply_fd), libforks_INVALID_ARGUMENT);
  libforks_ForkRequest small = {.size = 8, .entrypoint = entry_exit3, .socket_fd = -1, .exit_fd = -1};
  CHECK_RESULT(libforks_fork_async(conn, &small, &reply_fd), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_fork_async(conn, NULL, &reply_fd), libforks_INVALID_ARGUMENT);

  /* Non-blocking: requests queue until the connection is full, then
   * WOULD_BLOCK; every queued one is served. */
  libforks_ForkRequest quick = {.size = sizeof quick, .entrypoint = entry_exit0, .socket_fd = -1, .exit_fd = -1, .nonblocking = true};
  static int replies[100000];
  int queued = 0;
  libforks_Result result = libforks_OK;
  while (queued < 100000) {
    result = libforks_fork_async(conn, &quick, &replies[queued]);
    if (result != libforks_OK) break;
    queued++;
  }
  CHECK(result == libforks_WOULD_BLOCK && queued > 0);
  struct pollfd writable = {.fd = libforks_conn_fd(conn), .events = POLLOUT};
  for (int i = 0; i < queued; i++) CHECK_OK(libforks_reply_read(replies[i], &reply));
  CHECK(poll(&writable, 1, 5000) == 1);
  CHECK_OK(libforks_fork_async(conn, &quick, &reply_fd));
  CHECK_OK(libforks_reply_read(reply_fd, &reply));
  printf("%d requests queued before WOULD_BLOCK\n", queued);
  CHECK_OK(libforks_wait_all(conn));
  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
