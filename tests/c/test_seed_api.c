/* The acceptance program: only what the original libforks README documents
 * (plus libforks_result_string). Runs twice: as is, and with SIGPIPE
 * ignored before start, as every Bun process has it. */
#include "check.h"

static void entry_write_through_fd(libforks_ServerConn conn, int socket_fd) {
  (void)conn;
  char data[16];
  int fds[2];
  int n = libforks_read_socket_fds(socket_fd, data, sizeof data, fds, 2);
  if (n != 5 || fds[0] < 0 || fds[1] != -1) _exit(20);
  if (write(fds[0], data, 5) != 5) _exit(21);
  _exit(0);
}

static void entry_raise_kill(libforks_ServerConn conn, int socket_fd) {
  (void)conn; (void)socket_fd;
  raise(SIGKILL);
  _exit(1);
}

/* Forks a sibling through its own connection and reports its exit. */
static void entry_fork_sibling(libforks_ServerConn conn, int socket_fd) {
  pid_t pid;
  int exit_fd;
  if (libforks_fork(conn, &pid, NULL, &exit_fd, entry_exit3) != libforks_OK) _exit(30);
  libforks_ExitEvent event;
  if (read(exit_fd, &event, sizeof event) != sizeof event) _exit(31);
  if (getppid() == pid) _exit(32);
  int reply[2] = {pid, event.wait_status};
  if (write(socket_fd, reply, sizeof reply) != sizeof reply) _exit(33);
  _exit(0);
}

static void run_all(void) {
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));

  /* fork with pid, socket and exit fd; an exit status */
  pid_t pid;
  int socket_fd, exit_fd;
  CHECK_OK(libforks_fork(conn, &pid, &socket_fd, &exit_fd, entry_exit3));
  CHECK(pid > 0 && socket_fd >= 0 && exit_fd >= 0);
  libforks_ExitEvent event = read_exit_event(exit_fd, 5000);
  CHECK(event.pid == pid);
  CHECK(WIFEXITED(event.wait_status) && WEXITSTATUS(event.wait_status) == 3);
  close(socket_fd);

  /* a signal death */
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_raise_kill));
  event = read_exit_event(exit_fd, 5000);
  CHECK(event.pid == pid && WIFSIGNALED(event.wait_status) && WTERMSIG(event.wait_status) == SIGKILL);

  /* kill_all */
  pid_t a, b;
  int exit_a, exit_b;
  CHECK_OK(libforks_fork(conn, &a, NULL, &exit_a, entry_pause));
  CHECK_OK(libforks_fork(conn, &b, NULL, &exit_b, entry_pause));
  CHECK_OK(libforks_kill_all(conn, SIGUSR1));
  event = read_exit_event(exit_a, 5000);
  CHECK(event.pid == a && WTERMSIG(event.wait_status) == SIGUSR1);
  event = read_exit_event(exit_b, 5000);
  CHECK(event.pid == b && WTERMSIG(event.wait_status) == SIGUSR1);

  /* wait gives status and rusage, and the exit fd still fires */
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_exit3));
  int status = -1;
  struct rusage usage;
  memset(&usage, 0xff, sizeof usage);
  CHECK_OK(libforks_wait(conn, pid, &status, 0, &usage));
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3);
  CHECK(usage.ru_utime.tv_sec >= 0 && usage.ru_utime.tv_usec >= 0 && usage.ru_utime.tv_usec < 1000000);
  CHECK(usage.ru_maxrss > 0);
  event = read_exit_event(exit_fd, 5000);
  CHECK(event.pid == pid && WEXITSTATUS(event.wait_status) == 3);

  /* wait_all */
  int exits[3];
  for (int i = 0; i < 3; i++) CHECK_OK(libforks_fork(conn, NULL, NULL, &exits[i], entry_exit0));
  CHECK_OK(libforks_wait_all(conn));
  for (int i = 0; i < 3; i++) {
    struct pollfd p = {.fd = exits[i], .events = POLLIN};
    CHECK(poll(&p, 1, 0) == 1); /* already reported */
    read_exit_event(exits[i], 0);
  }

  /* a child forks a sibling through its own connection */
  CHECK_OK(libforks_fork(conn, &pid, &socket_fd, &exit_fd, entry_fork_sibling));
  int reply[2];
  CHECK(read(socket_fd, reply, sizeof reply) == sizeof reply);
  CHECK(reply[0] > 0 && reply[0] != pid && WEXITSTATUS(reply[1]) == 3);
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 0);
  close(socket_fd);

  /* fd transfer: the child writes through a pipe end it received */
  int pipe_fds[2];
  CHECK(pipe(pipe_fds) == 0);
  CHECK_OK(libforks_fork(conn, &pid, &socket_fd, &exit_fd, entry_write_through_fd));
  CHECK(libforks_write_socket_fds(socket_fd, "hello", 5, &pipe_fds[1], 1) == 5);
  close(pipe_fds[1]);
  char got[8] = {0};
  CHECK(read(pipe_fds[0], got, sizeof got) == 5 && memcmp(got, "hello", 5) == 0);
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 0);
  close(pipe_fds[0]);
  close(socket_fd);

  /* stop with wait: children and server gone on return */
  pid_t server = libforks_get_server_pid(conn);
  CHECK_OK(libforks_fork(conn, &a, NULL, NULL, entry_pause));
  CHECK_OK(libforks_stop(conn, true));
  CHECK(process_exited(a));
  CHECK(wait_exited(server, 1000) >= 0);

  /* stop_server_only: the child keeps running; the server process stays
   * as its reaper until it exits */
  CHECK_OK(libforks_start(&conn));
  server = libforks_get_server_pid(conn);
  CHECK_OK(libforks_fork(conn, &a, NULL, &exit_a, entry_pause));
  CHECK_OK(libforks_stop_server_only(conn));
  CHECK(!process_exited(a) && !process_exited(server));
  char byte;
  CHECK(read(exit_a, &byte, 1) == 0); /* end-of-file, no event */
  close(exit_a);
  CHECK(kill(a, SIGKILL) == 0);
  CHECK(wait_exited(a, 2000) >= 0);
  CHECK(wait_exited(server, 2000) >= 0);

  /* 10 servers at once */
  libforks_ServerConn servers[10];
  for (int i = 0; i < 10; i++) CHECK_OK(libforks_start(&servers[i]));
  for (int i = 0; i < 10; i++) {
    CHECK_OK(libforks_fork(servers[i], &pid, NULL, &exit_fd, entry_exit3));
    CHECK(read_exit_event(exit_fd, 5000).pid == pid);
  }
  for (int i = 0; i < 10; i++) CHECK_OK(libforks_stop(servers[i], true));

  /* result strings */
  CHECK(strcmp(libforks_result_string(libforks_OK), "OK") == 0);
  CHECK(strcmp(libforks_result_string(libforks_FORK_ERROR), "FORK_ERROR") == 0);
  CHECK(strcmp(libforks_result_string(libforks_PIPE_CREATION_ERROR), "PIPE_CREATION_ERROR") == 0);
  CHECK(strcmp(libforks_result_string((libforks_Result)-1000), "UNKNOWN") == 0);
}

int main(int argc, char **argv) {
  test_deadline(60);
  if (argc > 1 && strcmp(argv[1], "sigpipe-ignored") == 0) {
    signal(SIGPIPE, SIG_IGN);
    run_all();
    return 0;
  }
  run_all();
  /* Again in a fresh process that ignores SIGPIPE from the start. */
  pid_t again = fork();
  CHECK(again >= 0);
  if (again == 0) {
    execl(argv[0], argv[0], "sigpipe-ignored", (char *)NULL);
    _exit(127);
  }
  int status;
  CHECK(waitpid(again, &status, 0) == again);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  return 0;
}
