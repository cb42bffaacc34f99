/* Reply fds: wait_async and wait_all_async answer when the blocking forms
 * would return; a burst of nonblocking fork_async requests, retried after
 * polling libforks_conn_fd on WOULD_BLOCK, forks each child exactly once. */
#include "check.h"

enum { MAX_BURST = 1000 };

static void entry_sleep_300ms(libforks_ServerConn conn, int socket_fd) {
  (void)conn; (void)socket_fd;
  usleep(300000);
  _exit(0);
}

static int ready(int fd, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, timeout_ms);
}

/* Reads a reply fd once it is ready; the reply must carry `expected`. */
static libforks_Reply await_reply(int reply_fd, libforks_Result expected) {
  CHECK(ready(reply_fd, 5000) == 1);
  libforks_Reply reply;
  memset(&reply, 0xee, sizeof reply);
  CHECK_RESULT(libforks_reply_read(reply_fd, &reply), expected);
  CHECK(reply.result == expected);
  return reply;
}

/* As many requests as the fd limit allows, at most MAX_BURST: each holds
 * a reply fd and an exit fd until read. */
static int burst_size(void) {
  struct rlimit limit;
  CHECK(getrlimit(RLIMIT_NOFILE, &limit) == 0);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  CHECK(getrlimit(RLIMIT_NOFILE, &limit) == 0);
  return limit.rlim_cur > 3 * MAX_BURST + 100 ? MAX_BURST : (int)(limit.rlim_cur - 100) / 3;
}

static void burst(libforks_ServerConn conn) {
  static int replies[MAX_BURST], exits[MAX_BURST];
  static pid_t pids[MAX_BURST];
  int count = burst_size(), would_block = 0;
  for (int i = 0; i < count; i++) {
    int exit_pipe[2];
    CHECK(libforks_pipe(exit_pipe) == 0);
    libforks_ForkRequest request = {.size = sizeof request, .entrypoint = entry_exit0, .socket_fd = -1,
                                    .exit_fd = exit_pipe[1], .nonblocking = true};
    libforks_Result r;
    while ((r = libforks_fork_async(conn, &request, &replies[i])) == libforks_WOULD_BLOCK) {
      would_block++;
      struct pollfd p = {.fd = libforks_conn_fd(conn), .events = POLLOUT};
      CHECK(poll(&p, 1, 5000) == 1);
    }
    CHECK_OK(r);
    close(exit_pipe[1]);
    exits[i] = exit_pipe[0];
  }
  for (int i = 0; i < count; i++) {
    pids[i] = await_reply(replies[i], libforks_OK).pid;
    CHECK(pids[i] > 0);
    for (int j = 0; j < i; j++) CHECK(pids[j] != pids[i]);
  }
  for (int i = 0; i < count; i++) {
    libforks_ExitEvent event = read_exit_event(exits[i], 5000);
    CHECK(event.pid == pids[i] && WIFEXITED(event.wait_status) && WEXITSTATUS(event.wait_status) == 0);
  }
  printf("burst of %d forks: %d WOULD_BLOCK\n", count, would_block);
}

int main(void) {
  test_deadline(20);
  libforks_ServerConn conn, invalid = {NULL};
  CHECK_OK(libforks_start(&conn));
  CHECK(libforks_conn_fd(conn) >= 0 && fcntl(libforks_conn_fd(conn), F_GETFD) >= 0);
  CHECK(libforks_conn_fd(invalid) == -1);
  burst(conn);

  /* wait_async: not ready while the child runs, then its status */
  pid_t pid;
  int reply_fd;
  libforks_Reply reply;
  CHECK_OK(libforks_fork(conn, &pid, NULL, NULL, entry_pause));
  CHECK_OK(libforks_wait_async(conn, pid, 0, &reply_fd));
  CHECK(fcntl(reply_fd, F_GETFD) & FD_CLOEXEC);
  CHECK(ready(reply_fd, 100) == 0);
  CHECK(kill(pid, SIGUSR1) == 0);
  reply = await_reply(reply_fd, libforks_OK);
  CHECK(reply.pid == pid && WIFSIGNALED(reply.wait_status) && WTERMSIG(reply.wait_status) == SIGUSR1);
  CHECK(fcntl(reply_fd, F_GETFD) == -1 && errno == EBADF); /* closed by reply_read */

  /* wait_async: WNOHANG, an unknown pid, pid -1 with nothing left, pid 0 */
  CHECK_OK(libforks_fork(conn, &pid, NULL, NULL, entry_pause));
  CHECK_OK(libforks_wait_async(conn, pid, WNOHANG, &reply_fd));
  await_reply(reply_fd, libforks_WOULD_BLOCK);
  CHECK_OK(libforks_kill_all(conn, SIGKILL));
  CHECK_OK(libforks_wait_async(conn, pid, 0, &reply_fd));
  reply = await_reply(reply_fd, libforks_OK);
  CHECK(reply.pid == pid && WIFSIGNALED(reply.wait_status) && WTERMSIG(reply.wait_status) == SIGKILL);
  CHECK_OK(libforks_wait_async(conn, getpid(), 0, &reply_fd));
  CHECK(await_reply(reply_fd, libforks_WAIT_ERROR).error_number == ECHILD);
  libforks_Result r;
  while ((r = libforks_wait(conn, -1, NULL, WNOHANG, NULL)) == libforks_OK) {} /* the burst's exits */
  CHECK_RESULT(r, libforks_WAIT_ERROR);
  CHECK_OK(libforks_wait_async(conn, -1, 0, &reply_fd));
  CHECK(await_reply(reply_fd, libforks_WAIT_ERROR).error_number == ECHILD);
  CHECK_RESULT(libforks_wait_async(conn, 0, 0, &reply_fd), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_wait_async(invalid, -1, 0, &reply_fd), libforks_INVALID_ARGUMENT);

  /* wait_all_async: ready once no child runs; at once when none does */
  pid_t sleepers[3];
  for (int i = 0; i < 3; i++) CHECK_OK(libforks_fork(conn, &sleepers[i], NULL, NULL, entry_sleep_300ms));
  double start = now_ms();
  CHECK_OK(libforks_wait_all_async(conn, &reply_fd));
  CHECK(ready(reply_fd, 0) == 0);
  await_reply(reply_fd, libforks_OK);
  CHECK(now_ms() - start >= 100);
  for (int i = 0; i < 3; i++) CHECK(process_exited(sleepers[i]));
  CHECK_OK(libforks_wait_all_async(conn, &reply_fd));
  await_reply(reply_fd, libforks_OK);
  CHECK_RESULT(libforks_wait_all_async(invalid, &reply_fd), libforks_INVALID_ARGUMENT);

  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
