/* The server never waits on a pipe or socket a peer controls. Each peer
 * below fills the pipe the server must write to and clears O_NONBLOCK on
 * its own copy of the write end (a flag of the open file description,
 * which the server's received copy shares):
 *   - a request whose reply pipe is full: its reply is dropped (the pipe
 *     is closed), the server answers the next request at once;
 *   - a fork_async whose exit pipe is full when the child exits: the event
 *     is dropped (end-of-file after the filler), the status is still
 *     waitable;
 *   - an in-place exec (spec_queued) whose spec never came and whose
 *     socket's send buffer is full: the child's failure report is dropped (the
 *     server is suspended while such a child runs), the child exits 127.
 *   - a child's fork with spec_queued is an ordinary fork, not one the
 *     server waits for (its chdir and execve follow paths the child chose):
 *     a spec sent 200 ms after the request still runs.
 * After each, the owner's next request is answered within 1 s (it takes
 * about a millisecond; a server stuck in write(2) never answers). */
#include "check.h"

static libforks_ServerConn conn;

/* The server still answers: a kill_all(0) round trip. */
static void check_server_answers(const char *after) {
  int reply_fd;
  double start = now_ms();
  CHECK_OK(libforks_kill_all_async(conn, 0, &reply_fd));
  if (!readable_within(reply_fd, 1000)) {
    fprintf(stderr, "server stuck after %s\n", after);
    CHECK(0);
  }
  libforks_Reply reply;
  CHECK_OK(libforks_reply_read(reply_fd, &reply));
  printf("after %s: answered in %.2f ms\n", after, now_ms() - start);
}

static void full_reply_pipe(void) {
  int reply[2];
  CHECK(libforks_pipe(reply) == 0);
  size_t filled = fill_pipe(reply[1]);
  CHECK(send_raw_request(libforks_conn_fd(conn), RAW_KILL_ALL, 0, 0, &reply[1], 1) == 0);
  check_server_answers("a request with a full reply pipe");
  close(reply[1]);
  /* the filler, then end-of-file: the reply was dropped, not half-written */
  CHECK(drain_pipe(reply[0]) == filled);
  close(reply[0]);
}

static void full_exit_pipe(void) {
  int exit_pipe[2], reply_fd;
  CHECK(libforks_pipe(exit_pipe) == 0);
  size_t filled = fill_pipe(exit_pipe[1]);
  libforks_ForkRequest request = {.size = sizeof request, .entrypoint = entry_pause,
                                  .socket_fd = -1, .exit_fd = exit_pipe[1]};
  CHECK_OK(libforks_fork_async(conn, &request, &reply_fd));
  libforks_Reply reply;
  CHECK_OK(libforks_reply_read(reply_fd, &reply));
  pid_t pid = reply.pid;
  /* Whatever the server did to the flags at fork, undo it now. */
  CHECK(fcntl(exit_pipe[1], F_SETFL, fcntl(exit_pipe[1], F_GETFL) & ~O_NONBLOCK) == 0);
  CHECK_OK(libforks_kill_all(conn, SIGKILL));
  usleep(100 * 1000); /* reaped by now, its event written or dropped */
  check_server_answers("an exit with a full exit pipe");
  int status;
  CHECK_OK(libforks_wait(conn, pid, &status, 0, NULL));
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  close(exit_pipe[1]);
  CHECK(drain_pipe(exit_pipe[0]) == filled);
  close(exit_pipe[0]);
}

static void full_exec_socket(void) {
  int pair[2], exit_pipe[2], reply_fd;
  CHECK(libforks_socketpair(pair) == 0);
  CHECK(libforks_pipe(exit_pipe) == 0);
  /* Fill the child's end's send buffer from our copy of it (the same
   * socket), leaving its file description blocking. */
  int queued = 0;
  while (send(pair[1], "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1) queued++;
  /* XNU (darwin paths) refuses a datagram for a full receiver with
   * ENOBUFS, non-blocking or not. */
  CHECK((errno == EAGAIN || (darwin_paths() && errno == ENOBUFS)) && queued > 0);
  libforks_ForkRequest request = {.size = sizeof request, .entrypoint = libforks_exec_entrypoint,
                                  .socket_fd = pair[1], .exit_fd = exit_pipe[1], .spec_queued = true};
  CHECK_OK(libforks_fork_async(conn, &request, &reply_fd));
  close(exit_pipe[1]);
  check_server_answers("an in-place exec whose report cannot be sent");
  libforks_Reply reply;
  CHECK_OK(libforks_reply_read(reply_fd, &reply));
  libforks_ExitEvent event = read_exit_event(exit_pipe[0], 5000);
  CHECK(event.pid == reply.pid && WIFEXITED(event.wait_status) && WEXITSTATUS(event.wait_status) == 127);
  close(pair[0]);
  close(pair[1]);
}

/* Claims its spec is queued, sends it 200 ms later, reports the outcome. */
static void entry_late_spec(libforks_ServerConn own, int socket_fd) {
  int pair[2], reply_fd;
  if (libforks_socketpair(pair) != 0) _exit(2);
  libforks_ForkRequest request = {.size = sizeof request, .entrypoint = libforks_exec_entrypoint,
                                  .socket_fd = pair[1], .exit_fd = -1, .spec_queued = true};
  if (libforks_fork_async(own, &request, &reply_fd) != libforks_OK) _exit(3);
  close(pair[1]);
  libforks_Reply reply;
  int result = libforks_reply_read(reply_fd, &reply);
  if (result == libforks_OK) {
    usleep(200 * 1000);
    const char *argv[] = {"true", NULL}, *envp[] = {NULL};
    result = libforks_send_exec_spec(pair[0], "/bin/true", argv, envp, NULL, NULL, NULL, 0);
    if (result == libforks_OK) result = libforks_read_exec_result(pair[0], NULL);
    else close(pair[0]);
  }
  if (write(socket_fd, &result, sizeof result) != sizeof result) _exit(4);
  _exit(0);
}

static void child_spec_queued(void) {
  int socket_fd, exit_fd;
  CHECK_OK(libforks_fork(conn, NULL, &socket_fd, &exit_fd, entry_late_spec));
  check_server_answers("a child's spec_queued fork");
  CHECK(readable_within(socket_fd, 5000));
  int result;
  CHECK(read(socket_fd, &result, sizeof result) == sizeof result);
  CHECK_RESULT((libforks_Result)result, libforks_OK);
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 0);
  close(socket_fd);
}

int main(void) {
  test_deadline(30);
  signal(SIGPIPE, SIG_IGN);
  CHECK_OK(libforks_start(&conn));
  full_reply_pipe();
  full_exit_pipe();
  full_exec_socket();
  child_spec_queued();
  check_server_answers("all of them");
  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
