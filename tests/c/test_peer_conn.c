/* One child's connection is its own: a child that shuts its connection
 * down (SHUT_WR, SHUT_RDWR) or closes it cuts off only itself. A sibling
 * forked before and one forked after still fork through theirs, and the
 * server does not spin on the broken socket: it uses under 100 ms of CPU
 * over the next second (it used all of it when every child shared one
 * socket and the server polled it again forever). */
#include "check.h"

/* Forks a child through its own connection each time a byte arrives on
 * its socket, and answers the result code; ends at end-of-file, or at a
 * 'q' (darwin paths: see end_forker). */
static void entry_forker(libforks_ServerConn conn, int socket_fd) {
  char byte;
  while (read(socket_fd, &byte, 1) == 1 && byte != 'q') {
    int exit_fd;
    int result = libforks_fork(conn, NULL, NULL, &exit_fd, entry_exit3);
    if (result == libforks_OK) {
      libforks_ExitEvent event = read_exit_event(exit_fd, 5000);
      if (WEXITSTATUS(event.wait_status) != 3) result = 99;
    }
    if (write(socket_fd, &result, sizeof result) != sizeof result) _exit(1);
  }
  _exit(0);
}

static int how;

/* Breaks its connection, says so, and stays. */
static void entry_breaker(libforks_ServerConn conn, int socket_fd) {
  int fd = libforks_conn_fd(conn);
  if (how == 2) close(fd);
  else if (shutdown(fd, how == 0 ? SHUT_WR : SHUT_RDWR) != 0) _exit(1);
  /* its own requests now fail, and fail at once */
  int result = libforks_kill_all(conn, 0);
  if (write(socket_fd, &result, sizeof result) != sizeof result) _exit(1);
  for (;;) pause();
}

/* Closes a forker's socket, which ends it. On the darwin paths the socket
 * is a datagram pair, whose survivor is not woken when its peer closes
 * (XNU reports ECONNRESET to the next call only, and the forker is
 * already waiting in read): it is told to end first. */
static void end_forker(int socket_fd) {
  if (darwin_paths()) {
    not_on_darwin("a forker waiting in read(2) wakes at end-of-file when its socket's peer closes ('q' sent first)");
    CHECK(write(socket_fd, "q", 1) == 1);
  }
  close(socket_fd);
}

static void ask_fork(int socket_fd) {
  CHECK(write(socket_fd, "f", 1) == 1);
  CHECK(readable_within(socket_fd, 5000));
  int result;
  CHECK(read(socket_fd, &result, sizeof result) == sizeof result);
  if (result != libforks_OK) fprintf(stderr, "sibling's fork: %s\n", libforks_result_string(result));
  CHECK_RESULT((libforks_Result)result, libforks_OK);
}

int main(void) {
  test_deadline(60);
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  pid_t server = libforks_get_server_pid(conn);
  int before;
  CHECK_OK(libforks_fork(conn, NULL, &before, NULL, entry_forker));
  ask_fork(before);
  const char *names[] = {"shutdown(SHUT_WR)", "shutdown(SHUT_RDWR)", "close"};
  for (how = 0; how < 3; how++) {
    int breaker, breaker_exit;
    pid_t breaker_pid;
    CHECK_OK(libforks_fork(conn, &breaker_pid, &breaker, &breaker_exit, entry_breaker));
    CHECK(readable_within(breaker, 5000));
    int result;
    CHECK(read(breaker, &result, sizeof result) == sizeof result);
    CHECK(result != libforks_OK); /* SERVER_GONE, or INVALID_ARGUMENT once closed */
    double cpu = cpu_ms_over(server, 1000);
    printf("after a child's %s: server CPU %.0f ms over 1 s\n", names[how], cpu);
    CHECK(cpu < 100);
    ask_fork(before);
    int after;
    CHECK_OK(libforks_fork(conn, NULL, &after, NULL, entry_forker));
    ask_fork(after);
    end_forker(after);
    /* the culprit is still supervised: reaped and reported */
    int status;
    CHECK(kill(breaker_pid, SIGKILL) == 0);
    CHECK_OK(libforks_wait(conn, breaker_pid, &status, 0, NULL));
    CHECK(WIFSIGNALED(status));
    CHECK(read_exit_event(breaker_exit, 5000).pid == breaker_pid);
    close(breaker);
  }
  end_forker(before);
  CHECK_OK(libforks_wait_all(conn));
  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
