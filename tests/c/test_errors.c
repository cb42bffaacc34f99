/* Bad arguments and dead servers give named errors, never a crash or a
 * hang. */
#include "check.h"

int main(void) {
  test_deadline(60);
  libforks_ServerConn conn, invalid = {NULL};
  int status, fds[4];
  pid_t pid;
  CHECK_RESULT(libforks_start(NULL), libforks_INVALID_ARGUMENT);
  CHECK_OK(libforks_start(&conn));

  CHECK_RESULT(libforks_fork(conn, &pid, NULL, NULL, NULL), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_fork(invalid, &pid, NULL, NULL, entry_exit0), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_kill_all(invalid, SIGTERM), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_wait(invalid, 1, &status, 0, NULL), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_wait_all(invalid), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_stop(invalid, true), libforks_INVALID_ARGUMENT);
  CHECK(libforks_get_server_pid(invalid) == -1);
  CHECK_RESULT(libforks_kill_all(conn, 999), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_kill_all(conn, -1), libforks_INVALID_ARGUMENT);
  CHECK_OK(libforks_kill_all(conn, 0));

  CHECK_RESULT(libforks_fork_symbol(conn, &pid, NULL, NULL, "/nonexistent/libx.so", "entry"), libforks_LOAD_ERROR);
  CHECK_RESULT(libforks_fork_symbol(conn, &pid, NULL, NULL, "libc.so.6", "no_such_symbol_here"), libforks_LOAD_ERROR);
  CHECK_RESULT(libforks_fork_symbol(conn, &pid, NULL, NULL, "libc.so.6", NULL), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_fork_symbol(conn, &pid, NULL, NULL, "libc.so.6", ""), libforks_INVALID_ARGUMENT);

  /* fd passing arguments */
  int many[LIBFORKS_MAX_FDS + 1];
  for (int i = 0; i <= LIBFORKS_MAX_FDS; i++) many[i] = 0;
  int pair[2];
  CHECK(libforks_socketpair(pair) == 0);
  errno = 0;
  CHECK(libforks_write_socket_fds(pair[0], "x", 1, many, LIBFORKS_MAX_FDS + 1) == -1 && errno == EINVAL);
  CHECK(libforks_write_socket_fds(pair[0], "x", 0, NULL, 0) == -1 && errno == EINVAL);
  CHECK(libforks_write_socket_fds(-1, "x", 1, NULL, 0) == -1 && errno == EBADF);
  /* More fds than the receiver takes: all closed, EMSGSIZE, nothing leaks. */
  int five[5] = {0, 1, 2, 0, 1};
  int before = count_fds(0);
  CHECK(libforks_write_socket_fds(pair[0], "y", 1, five, 5) == 1);
  char byte;
  errno = 0;
  CHECK(libforks_read_socket_fds(pair[1], &byte, 1, fds, 2) == -1 && errno == EMSGSIZE);
  CHECK(fds[0] == -1 && fds[1] == -1);
  CHECK(count_fds(0) == before);
  close(pair[0]);
  close(pair[1]);

  /* stop from a process that is not the owner (a plain fork() of it holds
   * a copy of the connection): NOT_OWNER, and the server keeps serving. */
  pid_t copy = fork();
  CHECK(copy >= 0);
  if (copy == 0) _exit(libforks_stop(conn, true) == libforks_NOT_OWNER ? 0 : 1);
  CHECK(waitpid(copy, &status, 0) == copy && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  int exit_fd;
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_exit3));
  read_exit_event(exit_fd, 5000);

  /* The server dies: a pending wait and every later call fail with
   * SERVER_GONE within 100 ms; the exit fd reports end-of-file. */
  int reply_fd;
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_pause));
  CHECK_OK(libforks_wait_async(conn, pid, 0, &reply_fd));
  pid_t server = libforks_get_server_pid(conn);
  CHECK(kill(server, SIGKILL) == 0);
  double start = now_ms();
  libforks_Reply reply;
  CHECK_RESULT(libforks_reply_read(reply_fd, &reply), libforks_SERVER_GONE);
  CHECK_RESULT(libforks_fork(conn, &pid, NULL, NULL, entry_exit0), libforks_SERVER_GONE);
  CHECK_RESULT(libforks_kill_all(conn, SIGTERM), libforks_SERVER_GONE);
  CHECK_RESULT(libforks_wait(conn, -1, &status, 0, NULL), libforks_SERVER_GONE);
  CHECK_RESULT(libforks_wait_all(conn), libforks_SERVER_GONE);
  CHECK(now_ms() - start < 100);
  CHECK(read(exit_fd, &byte, 1) == 0);
  close(exit_fd);
  kill(pid, SIGKILL); /* orphaned by the server's death */
  CHECK_RESULT(libforks_stop(conn, true), libforks_SERVER_GONE);

  /* result strings of every code */
  const char *names[] = {"OK", "READ_ERROR", "WRITE_ERROR", "KILL_ERROR", "SOCKET_CREATION_ERROR", "MALLOC_ERROR",
                         "FORK_ERROR", "WAIT_ERROR", "STOP_ERROR", "PIPE_CREATION_ERROR", "INVALID_ARGUMENT",
                         "SERVER_GONE", "NOT_OWNER", "PROTOCOL_ERROR", "WOULD_BLOCK", "LOAD_ERROR", "EXEC_ERROR",
                         "THREAD_ERROR", "LIMIT_ERROR"};
  for (int code = 0; code < (int)(sizeof names / sizeof *names); code++) {
    CHECK(strcmp(libforks_result_string((libforks_Result)-code), names[code]) == 0);
  }
  CHECK(strcmp(libforks_result_string((libforks_Result)-19), "UNKNOWN") == 0);
  CHECK(strcmp(libforks_result_string((libforks_Result)5), "UNKNOWN") == 0);
  return 0;
}
