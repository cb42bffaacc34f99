/* libforks_exec_entrypoint: fds mapped, cwd and env honoured, exactly the
 * given fds open in the program, and exec failures reported. */
#include "check.h"

static pid_t spawn(libforks_ServerConn conn, const char *path, const char *const *argv, const char *const *envp,
                   const char *cwd, const int *fds, const int *targets, size_t count, int *exit_fd,
                   libforks_Result expected, int *step) {
  pid_t pid;
  int socket_fd;
  CHECK_OK(libforks_fork(conn, &pid, &socket_fd, exit_fd, libforks_exec_entrypoint));
  CHECK_OK(libforks_send_exec_spec(socket_fd, path, argv, envp, cwd, fds, targets, count));
  CHECK_RESULT(libforks_read_exec_result(socket_fd, step), expected);
  return pid;
}

static char *read_all(int fd) {
  static char buffer[8192];
  size_t used = 0;
  for (ssize_t n; (n = read(fd, buffer + used, sizeof buffer - 1 - used)) > 0;) used += n;
  buffer[used] = 0;
  close(fd);
  return buffer;
}

int main(void) {
  test_deadline(60);
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  int exit_fd, step = 0;
  int out[2];

  /* a pipe mapped to fd 5, env and cwd; only 0, 1, 2 and 5 open */
  CHECK(pipe(out) == 0);
  /* ls lists its own fds: the program's 0, 1, 2 and 5, plus 3, the
   * directory ls itself opens (the lowest free number). Nothing else. */
  const char *argv[] = {"sh", "-c", "echo \"$GREETING $(pwd)\" >&5; exec ls /proc/self/fd >&5", NULL};
  const char *envp[] = {"GREETING=hello", "PATH=/usr/bin:/bin", NULL};
  int fds[] = {out[1]}, targets[] = {5};
  spawn(conn, "/bin/sh", argv, envp, "/tmp", fds, targets, 1, &exit_fd, libforks_OK, &step);
  close(out[1]);
  char *text = read_all(out[0]);
  CHECK(strstr(text, "hello /tmp\n") == text);
  CHECK(strcmp(strchr(text, '\n') + 1, "0\n1\n2\n3\n5\n") == 0);
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 0);

  /* stdio replaced: fd 1 of the program is our pipe */
  CHECK(pipe(out) == 0);
  const char *echo[] = {"echo", "to stdout", NULL};
  const char *no_env[] = {NULL};
  int stdout_target[] = {1};
  spawn(conn, "/bin/echo", echo, no_env, NULL, &out[1], stdout_target, 1, &exit_fd, libforks_OK, &step);
  close(out[1]);
  CHECK(strcmp(read_all(out[0]), "to stdout\n") == 0);
  read_exit_event(exit_fd, 5000);

  /* a target listed twice, a negative target: refused before sending */
  int pair[2];
  CHECK(libforks_socketpair(pair) == 0);
  int two[] = {0, 1}, same[] = {4, 4}, negative[] = {-1};
  CHECK_RESULT(libforks_send_exec_spec(pair[0], "/bin/true", echo, no_env, NULL, two, same, 2), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_send_exec_spec(pair[0], "/bin/true", echo, no_env, NULL, two, negative, 1), libforks_INVALID_ARGUMENT);
  const char *empty_argv[] = {NULL};
  CHECK_RESULT(libforks_send_exec_spec(pair[0], "/bin/true", empty_argv, no_env, NULL, NULL, NULL, 0), libforks_INVALID_ARGUMENT);
  close(pair[0]);
  close(pair[1]);

  /* a missing program: EXEC_ERROR, ENOENT, step 4, exit status 127 */
  const char *missing[] = {"missing", NULL};
  spawn(conn, "/nonexistent/program", missing, no_env, NULL, NULL, NULL, 0, &exit_fd, libforks_EXEC_ERROR, &step);
  CHECK(libforks_last_errno() == ENOENT && step == 4);
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 127);

  /* a missing directory: step 3 */
  spawn(conn, "/bin/true", echo, no_env, "/nonexistent/dir", NULL, NULL, 0, &exit_fd, libforks_EXEC_ERROR, &step);
  CHECK(libforks_last_errno() == ENOENT && step == 3);
  read_exit_event(exit_fd, 5000);

  /* A large spec (8 variables of 100 kB: more than the 32 KiB chunks the
   * spec travels in, within execve's 128 KiB per string) arrives whole. */
  static char big[8][100 * 1000 + 8];
  const char *big_env[9];
  for (int i = 0; i < 8; i++) {
    memcpy(big[i], "BIG0=", 5);
    big[i][3] = (char)('0' + i);
    memset(big[i] + 5, 'a' + i, 100 * 1000);
    big[i][5 + 100 * 1000] = 0;
    big_env[i] = big[i];
  }
  big_env[8] = NULL;
  CHECK(pipe(out) == 0);
  const char *count[] = {"sh", "-c", "printf %s \"$BIG7\" | tr -d h | wc -c >&5", NULL};
  fds[0] = out[1];
  spawn(conn, "/bin/sh", count, big_env, NULL, fds, targets, 1, &exit_fd, libforks_OK, &step);
  close(out[1]);
  CHECK(atoi(read_all(out[0])) == 0); /* all 100,000 bytes were 'h' */
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 0);

  /* The spec queued before the fork (spec_queued): the server starts the
   * program without copying itself; the result is the same. */
  int exits[2], reply_fd;
  CHECK(libforks_socketpair(pair) == 0 && libforks_pipe(exits) == 0);
  CHECK(pipe(out) == 0);
  const char *say[] = {"sh", "-c", "echo queued >&5", NULL};
  CHECK_OK(libforks_send_exec_spec(pair[0], "/bin/sh", say, no_env, NULL, &out[1], targets, 1));
  libforks_ForkRequest queued = {.size = sizeof queued, .entrypoint = libforks_exec_entrypoint,
                                 .socket_fd = pair[1], .exit_fd = exits[1], .spec_queued = true};
  CHECK_OK(libforks_fork_async(conn, &queued, &reply_fd));
  close(pair[1]);
  close(exits[1]);
  close(out[1]);
  libforks_Reply reply;
  CHECK_OK(libforks_reply_read(reply_fd, &reply));
  CHECK_OK(libforks_read_exec_result(pair[0], &step));
  CHECK(strcmp(read_all(out[0]), "queued\n") == 0);
  libforks_ExitEvent event = read_exit_event(exits[0], 5000);
  CHECK(event.pid == reply.pid && WEXITSTATUS(event.wait_status) == 0);

  /* spec_queued but nothing queued: the child fails at once (it may not
   * wait: the server waits for it) and the server keeps serving. */
  CHECK(libforks_socketpair(pair) == 0 && libforks_pipe(exits) == 0);
  queued.socket_fd = pair[1];
  queued.exit_fd = exits[1];
  CHECK_OK(libforks_fork_async(conn, &queued, &reply_fd));
  close(pair[1]);
  close(exits[1]);
  CHECK_OK(libforks_reply_read(reply_fd, &reply));
  CHECK_RESULT(libforks_read_exec_result(pair[0], &step), libforks_EXEC_ERROR);
  CHECK(step == 1 && libforks_last_errno() == EAGAIN);
  CHECK(WEXITSTATUS(read_exit_event(exits[0], 5000).wait_status) == 127);
  int exit_again;
  CHECK_OK(libforks_fork(conn, NULL, NULL, &exit_again, entry_exit3));
  CHECK(WEXITSTATUS(read_exit_event(exit_again, 5000).wait_status) == 3);

  /* spec_queued is for the exec entrypoint with a socket only */
  libforks_ForkRequest wrong = {.size = sizeof wrong, .entrypoint = entry_exit3, .socket_fd = -1, .exit_fd = -1, .spec_queued = true};
  CHECK_RESULT(libforks_fork_async(conn, &wrong, &reply_fd), libforks_INVALID_ARGUMENT);

  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
