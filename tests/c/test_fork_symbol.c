/* libforks_fork_symbol: a library loaded in the child, or a symbol of the
 * program itself (built with -rdynamic). */
#include "check.h"

void exported_entry(libforks_ServerConn conn, int socket_fd) {
  (void)conn;
  _exit(socket_fd >= 0 ? 11 : 12);
}

int main(void) {
  test_deadline(60);
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  char library[512];
  const char *dir = getenv("LIBFORKS_TEST_DIR");
  CHECK(dir != NULL);
  snprintf(library, sizeof library, "%s/libentry.so", dir);

  pid_t pid;
  int socket_fd, exit_fd;
  CHECK_OK(libforks_fork_symbol(conn, &pid, NULL, &exit_fd, library, "lib_exit42"));
  libforks_ExitEvent event = read_exit_event(exit_fd, 5000);
  CHECK(event.pid == pid && WEXITSTATUS(event.wait_status) == 42);

  CHECK_OK(libforks_fork_symbol(conn, &pid, &socket_fd, &exit_fd, NULL, "exported_entry"));
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 11);
  close(socket_fd);
  CHECK_OK(libforks_fork_symbol(conn, &pid, NULL, &exit_fd, NULL, "exported_entry"));
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 12);

  /* too long */
  static char long_name[LIBFORKS_MAX_SYMBOL + 8];
  memset(long_name, 'a', sizeof long_name - 1);
  CHECK_RESULT(libforks_fork_symbol(conn, &pid, NULL, NULL, NULL, long_name), libforks_LIMIT_ERROR);
  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
