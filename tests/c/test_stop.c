/* Stopping a server and closing connections: stop with and without wait
 * (SIGTERM, then SIGKILL after 500 ms), the asynchronous forms, server
 * only, libforks_free_conn, an owner that exits without stopping, and who
 * may stop. */
#include "check.h"

/* Ignores SIGTERM, then says so on its socket. */
static void entry_stubborn(libforks_ServerConn conn, int socket_fd) {
  (void)conn;
  signal(SIGTERM, SIG_IGN);
  if (write(socket_fd, "r", 1) != 1) _exit(1);
  for (;;) pause();
}

static volatile sig_atomic_t terminated;
static void on_term(int sig) { (void)sig; terminated = 1; }

/* On SIGTERM, takes 300 ms to wind down (less than the 500 ms before
 * SIGKILL), then exits 9. */
static void entry_slow_exit(libforks_ServerConn conn, int socket_fd) {
  (void)conn;
  struct sigaction action = {.sa_handler = on_term};
  sigaction(SIGTERM, &action, NULL);
  if (write(socket_fd, "r", 1) != 1) _exit(1);
  while (!terminated) pause();
  usleep(300000);
  _exit(9);
}

static void entry_try_stop(libforks_ServerConn conn, int socket_fd) {
  (void)socket_fd;
  _exit(libforks_stop(conn, true) == libforks_NOT_OWNER ? 0 : 1);
}

/* Waits for a byte on its socket, then asks its server for something and
 * sends back the result: the server is gone by then, so the answer must be
 * SERVER_GONE at once, not a hang. */
static void entry_ask_gone_server(libforks_ServerConn conn, int socket_fd) {
  char byte;
  if (read(socket_fd, &byte, 1) != 1) _exit(1);
  int results[2] = {libforks_kill_all(conn, 0), libforks_fork(conn, NULL, NULL, NULL, entry_pause)};
  if (write(socket_fd, results, sizeof results) != sizeof results) _exit(1);
  _exit(0);
}

static void entry_free_own_conn(libforks_ServerConn conn, int socket_fd) {
  (void)socket_fd;
  libforks_free_conn(conn);
  _exit(0);
}

/* Forks entrypoint and waits until it reports ready on its socket. */
static pid_t fork_ready(libforks_ServerConn conn, int *exit_fd, void (*entrypoint)(libforks_ServerConn, int)) {
  pid_t pid;
  int socket_fd;
  CHECK_OK(libforks_fork(conn, &pid, &socket_fd, exit_fd, entrypoint));
  char byte;
  CHECK(read(socket_fd, &byte, 1) == 1);
  close(socket_fd);
  return pid;
}

static int killed_by(libforks_ExitEvent event, pid_t pid, int sig) {
  return event.pid == pid && WIFSIGNALED(event.wait_status) && WTERMSIG(event.wait_status) == sig;
}

static void check_eof(int exit_fd) {
  char byte;
  CHECK(read(exit_fd, &byte, 1) == 0);
  close(exit_fd);
}

static int start_with_child(pid_t *pids, void *context) {
  (void)context;
  libforks_ServerConn conn;
  if (libforks_start(&conn) != libforks_OK) return 1;
  pids[0] = libforks_get_server_pid(conn);
  if (libforks_fork(conn, &pids[1], NULL, NULL, entry_pause) != libforks_OK) return 2;
  return 0;
}

/* An owner that returns from main without stopping: the server and its
 * children go as when the owner is killed. */
static void check_owner_exits(void) {
  pid_t pids[2];
  pid_t owner = start_owner(start_with_child, NULL, pids, 2, 1);
  int status;
  CHECK(waitpid(owner, &status, 0) == owner && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  check_all_exit(pids, 2, 2000, "their owner returned from main");
}

int main(void) {
  test_deadline(20);
  libforks_ServerConn conn;
  pid_t server, pid, stubborn, slow;
  int exit_fd, stubborn_fd, slow_fd, reply_fd;
  libforks_Reply reply;

  /* stop(wait): SIGTERM, SIGKILL 500 ms later to who ignores it; on
   * return every child and the server are gone */
  CHECK_OK(libforks_start(&conn));
  server = libforks_get_server_pid(conn);
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_pause));
  stubborn = fork_ready(conn, &stubborn_fd, entry_stubborn);
  double start = now_ms();
  CHECK_OK(libforks_stop(conn, true));
  double took = now_ms() - start;
  CHECK(took >= 400 && took < 5000);
  CHECK(process_exited(server) && process_exited(pid) && process_exited(stubborn));
  CHECK(killed_by(read_exit_event(exit_fd, 0), pid, SIGTERM));
  CHECK(killed_by(read_exit_event(stubborn_fd, 0), stubborn, SIGKILL));

  /* stop(no wait): returns once SIGTERM is sent; the server keeps
   * reporting exits, then exits by itself */
  CHECK_OK(libforks_start(&conn));
  server = libforks_get_server_pid(conn);
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_pause));
  slow = fork_ready(conn, &slow_fd, entry_slow_exit);
  start = now_ms();
  CHECK_OK(libforks_stop(conn, false));
  CHECK(now_ms() - start < 250);
  CHECK(killed_by(read_exit_event(exit_fd, 5000), pid, SIGTERM));
  libforks_ExitEvent event = read_exit_event(slow_fd, 5000);
  CHECK(event.pid == slow && WIFEXITED(event.wait_status) && WEXITSTATUS(event.wait_status) == 9);
  CHECK(now_ms() - start >= 250);
  CHECK(wait_exited(server, 2000) >= 0);

  /* stop_async(wait): the reply comes when stop would return; the call
   * itself does not wait for the 500 ms escalation */
  CHECK_OK(libforks_start(&conn));
  server = libforks_get_server_pid(conn);
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_pause));
  stubborn = fork_ready(conn, &stubborn_fd, entry_stubborn);
  start = now_ms();
  CHECK_OK(libforks_stop_async(conn, true, false, &reply_fd));
  CHECK(now_ms() - start < 400);
  struct pollfd p = {.fd = reply_fd, .events = POLLIN};
  CHECK(poll(&p, 1, 100) == 0);
  CHECK(poll(&p, 1, 5000) == 1);
  CHECK(now_ms() - start >= 400);
  CHECK_OK(libforks_reply_read(reply_fd, &reply));
  CHECK(reply.result == libforks_OK);
  CHECK_OK(libforks_stop_finish(conn));
  CHECK(process_exited(server) && process_exited(pid) && process_exited(stubborn));
  CHECK(killed_by(read_exit_event(exit_fd, 0), pid, SIGTERM));
  CHECK(killed_by(read_exit_event(stubborn_fd, 0), stubborn, SIGKILL));

  /* stop_async(server only): the child keeps running, its exit fd ends
   * without an event; the server stays as its reaper, then exits */
  CHECK_OK(libforks_start(&conn));
  server = libforks_get_server_pid(conn);
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_pause));
  CHECK_OK(libforks_stop_async(conn, true, true, &reply_fd));
  CHECK_OK(libforks_reply_read(reply_fd, &reply));
  CHECK_OK(libforks_stop_finish(conn));
  CHECK(!process_exited(pid));
  check_eof(exit_fd);
  CHECK(kill(pid, SIGKILL) == 0);
  CHECK(wait_exited(pid, 2000) >= 0);
  CHECK(wait_exited(server, 2000) >= 0);

  /* stop_server_only: the same, synchronously; a child left running that
   * then asks the server for something gets SERVER_GONE */
  CHECK_OK(libforks_start(&conn));
  server = libforks_get_server_pid(conn);
  int socket_fd;
  CHECK_OK(libforks_fork(conn, &pid, &socket_fd, &exit_fd, entry_ask_gone_server));
  CHECK_OK(libforks_stop_server_only(conn));
  CHECK(!process_exited(pid));
  check_eof(exit_fd);
  CHECK(write(socket_fd, "x", 1) == 1);
  int results[2];
  CHECK(read(socket_fd, results, sizeof results) == sizeof results);
  CHECK(results[0] == libforks_SERVER_GONE && results[1] == libforks_SERVER_GONE);
  close(socket_fd);
  CHECK(wait_exited(pid, 2000) >= 0);
  CHECK(wait_exited(server, 2000) >= 0);

  /* A child may not stop the server it came from, and may close its own
   * connection without disturbing anyone. */
  CHECK_OK(libforks_start(&conn));
  server = libforks_get_server_pid(conn);
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_try_stop));
  event = read_exit_event(exit_fd, 5000);
  CHECK(event.pid == pid && WIFEXITED(event.wait_status) && WEXITSTATUS(event.wait_status) == 0);
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_free_own_conn));
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 0);
  CHECK_OK(libforks_kill_all(conn, 0));
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_exit3));
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 3);

  /* free_conn by the owner: the server shuts down as if the owner died */
  stubborn = fork_ready(conn, &stubborn_fd, entry_stubborn);
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_pause));
  libforks_free_conn(conn);
  CHECK(killed_by(read_exit_event(exit_fd, 2000), pid, SIGTERM));
  CHECK(killed_by(read_exit_event(stubborn_fd, 2000), stubborn, SIGKILL));
  CHECK(wait_exited(server, 2000) >= 0);

  check_owner_exits();
  return 0;
}
