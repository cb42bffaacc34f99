/* Every child of a server has a connection of its own, made by the server
 * at its fork. 16 children at once each fork 50 children of their own
 * through their conn and read every exit: every request is answered, to
 * the child that made it, with the right pid. Then the server holds as
 * many fds as before (once it has closed the reply pipe wait_all was
 * answered on): a child's exit pipe and connection go with it. */
#include "check.h"

#define CHILDREN 16
#define SIBLINGS 50

static void entry_fork_siblings(libforks_ServerConn conn, int socket_fd) {
  (void)socket_fd;
  for (int i = 0; i < SIBLINGS; i++) {
    pid_t pid;
    int exit_fd;
    if (libforks_fork(conn, &pid, NULL, &exit_fd, entry_exit3) != libforks_OK) _exit(1);
    libforks_ExitEvent event = read_exit_event(exit_fd, 10000);
    if (event.pid != pid || !WIFEXITED(event.wait_status) || WEXITSTATUS(event.wait_status) != 3) _exit(2);
    close(exit_fd);
  }
  _exit(0);
}

int main(void) {
  test_deadline(60);
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  pid_t server = libforks_get_server_pid(conn);
  int server_fds = server_fd_baseline(conn);
  pid_t pids[CHILDREN];
  int exit_fds[CHILDREN];
  for (int i = 0; i < CHILDREN; i++) CHECK_OK(libforks_fork(conn, &pids[i], NULL, &exit_fds[i], entry_fork_siblings));
  for (int i = 0; i < CHILDREN; i++) {
    libforks_ExitEvent event = read_exit_event(exit_fds[i], 30000);
    CHECK(event.pid == pids[i] && WIFEXITED(event.wait_status) && WEXITSTATUS(event.wait_status) == 0);
    close(exit_fds[i]);
  }
  CHECK_OK(libforks_wait_all(conn));
  check_fd_count_settles(server, server_fds);
  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
