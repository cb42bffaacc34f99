/* Share tokens are keys into a table, never addresses: a forged or stale
 * token is refused, a token is taken once and only in the process that
 * made it. What a thread adopts goes when the thread exits: its fds are
 * closed, its connections freed (a server it started shuts down) and its
 * tokens nobody took dropped. */
#include "check.h"
#include <pthread.h>
#include <stdint.h>

static void child_entry(libforks_ServerConn conn, int socket_fd) {
  (void)conn;
  (void)socket_fd;
  pause();
}

struct adopter {
  int fd;
  uint64_t token;
  libforks_ServerConn conn;
  pid_t server_pid;
};

/* Starts a server, adopts its connection and a pipe's read end, and ends
 * without freeing or closing either. */
static void *adopt_and_leave(void *arg) {
  struct adopter *a = arg;
  CHECK_OK(libforks_start(&a->conn));
  a->server_pid = libforks_get_server_pid(a->conn);
  int p[2];
  CHECK(libforks_pipe(p) == 0);
  close(p[1]);
  a->fd = p[0];
  CHECK_OK(libforks_thread_adopt_fd(a->fd));
  CHECK_OK(libforks_thread_adopt_conn(a->conn));
  /* A token nobody takes: dropped with the thread, not keeping its server. */
  CHECK_OK(libforks_conn_token(a->conn, &a->token));
  /* Released before the thread ends: kept. */
  int kept[2];
  CHECK(libforks_pipe(kept) == 0);
  CHECK_OK(libforks_thread_adopt_fd(kept[0]));
  CHECK_OK(libforks_thread_release_fd(kept[0]));
  CHECK_RESULT(libforks_thread_release_fd(kept[1]), libforks_INVALID_ARGUMENT);
  close(kept[0]);
  close(kept[1]);
  return NULL;
}

int main(void) {
  test_deadline(60);
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));

  uint64_t token = 0;
  CHECK_OK(libforks_conn_token(conn, &token));
  CHECK(token != 0 && token < (1ULL << 53));

  /* Forged: addresses, small numbers, a live token one bit off. */
  libforks_ServerConn attached;
  uint64_t forged[] = {0, 1, 8, 4096, (uint64_t)(uintptr_t)&conn, token ^ (1ULL << 40), token + 1};
  for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
    CHECK_RESULT(libforks_conn_attach(forged[i], &attached), libforks_INVALID_ARGUMENT);
  }

  /* A fork of this process holds a copy of the table: refused there. */
  pid_t copy = fork();
  CHECK(copy >= 0);
  if (copy == 0) {
    libforks_ServerConn mine;
    _exit(libforks_conn_attach(token, &mine) == libforks_NOT_OWNER ? 0 : 1);
  }
  int status;
  CHECK(waitpid(copy, &status, 0) == copy);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  /* Taken once; the handle works and is freed on its own. */
  CHECK_OK(libforks_conn_attach(token, &attached));
  CHECK_RESULT(libforks_conn_attach(token, &attached), libforks_INVALID_ARGUMENT);
  pid_t pid;
  int exit_fd;
  CHECK_OK(libforks_fork(attached, &pid, NULL, &exit_fd, child_entry));
  libforks_free_conn(attached);
  CHECK(kill(pid, SIGKILL) == 0);
  libforks_ExitEvent event = read_exit_event(exit_fd, 5000);
  CHECK(event.pid == pid);

  /* A token nobody took is dropped once. */
  uint64_t unused;
  CHECK_OK(libforks_conn_token(conn, &unused));
  CHECK_OK(libforks_conn_token_drop(unused));
  CHECK_RESULT(libforks_conn_token_drop(unused), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_conn_attach(unused, &attached), libforks_INVALID_ARGUMENT);

  /* The owner's connection is intact after all of that. */
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, child_entry));
  CHECK(kill(pid, SIGKILL) == 0);
  read_exit_event(exit_fd, 5000);

  /* A thread's adopted fd and server go with it. */
  struct adopter a = {.fd = -1};
  pthread_t thread;
  CHECK(pthread_create(&thread, NULL, adopt_and_leave, &a) == 0);
  CHECK(pthread_join(thread, NULL) == 0);
  errno = 0;
  CHECK(fcntl(a.fd, F_GETFD) == -1 && errno == EBADF);
  double deadline = now_ms() + 3000;
  while (kill(a.server_pid, 0) == 0 && now_ms() < deadline) usleep(5000);
  CHECK(kill(a.server_pid, 0) == -1 && errno == ESRCH);
  CHECK_RESULT(libforks_conn_attach(a.token, &attached), libforks_INVALID_ARGUMENT);

  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
