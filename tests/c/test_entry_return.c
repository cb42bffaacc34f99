/* An entrypoint that returns: the child flushes its stdio buffers and
 * exits 0 without running the atexit handlers inherited from the caller. */
#include "check.h"

static int caller_done;

static void caller_atexit(void) {
  if (!caller_done) {
    static const char mark[] = "ATEXIT-RAN";
    if (write(STDOUT_FILENO, mark, sizeof mark - 1) < 0) {}
  }
}

static void entry_print_and_return(libforks_ServerConn conn, int socket_fd) {
  (void)conn; (void)socket_fd;
  printf("buffered-%d", 17); /* no newline, no flush: only the exit flushes it */
}

static void entry_return_with_socket(libforks_ServerConn conn, int socket_fd) {
  (void)conn;
  if (write(socket_fd, "ok", 2) != 2) _exit(1);
}

int main(void) {
  test_deadline(20);
  /* stdout is a pipe, so fully buffered in the children */
  int out[2];
  CHECK(pipe(out) == 0);
  int saved_stdout = dup(STDOUT_FILENO);
  CHECK(saved_stdout >= 0 && dup2(out[1], STDOUT_FILENO) == STDOUT_FILENO);
  close(out[1]);
  CHECK(atexit(caller_atexit) == 0);

  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  pid_t pid;
  int socket_fd, exit_fd;
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_print_and_return));
  libforks_ExitEvent event = read_exit_event(exit_fd, 5000);
  CHECK(event.pid == pid && WIFEXITED(event.wait_status) && WEXITSTATUS(event.wait_status) == 0);

  CHECK_OK(libforks_fork(conn, &pid, &socket_fd, &exit_fd, entry_return_with_socket));
  char reply[4] = {0};
  CHECK(read(socket_fd, reply, sizeof reply) == 2 && memcmp(reply, "ok", 2) == 0);
  event = read_exit_event(exit_fd, 5000);
  CHECK(event.pid == pid && WIFEXITED(event.wait_status) && WEXITSTATUS(event.wait_status) == 0);
  close(socket_fd);

  /* Only now may the pipe end: stop the server (which holds stdout too)
   * and restore ours. */
  CHECK_OK(libforks_stop(conn, true));
  CHECK(dup2(saved_stdout, STDOUT_FILENO) == STDOUT_FILENO);
  close(saved_stdout);
  char text[256] = {0};
  size_t used = 0;
  for (ssize_t n; (n = read(out[0], text + used, sizeof text - 1 - used)) > 0;) used += n;
  close(out[0]);
  if (strcmp(text, "buffered-17") != 0) fprintf(stderr, "children wrote \"%s\"\n", text);
  CHECK(strcmp(text, "buffered-17") == 0);
  caller_done = 1;
  return 0;
}
