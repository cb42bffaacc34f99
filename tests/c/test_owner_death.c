/* When the process that started the server dies by SIGKILL, the server
 * and every child are gone within 2 s: 100 times in a row, then once with
 * children that ignore SIGTERM (the server escalates to SIGKILL). */
#include "check.h"

static void ignore_sigterm(libforks_ServerConn conn, int socket_fd) {
  (void)conn; (void)socket_fd;
  signal(SIGTERM, SIG_IGN);
  for (;;) pause();
}

static int start_with_children(pid_t *pids, void *context) {
  const int stubborn = *(const int *)context;
  libforks_ServerConn conn;
  if (libforks_start(&conn) != libforks_OK) return 1;
  pids[0] = libforks_get_server_pid(conn);
  for (int i = 1; i < 4; i++) {
    if (libforks_fork(conn, &pids[i], NULL, NULL, stubborn ? ignore_sigterm : entry_pause) != libforks_OK) return 2;
  }
  return 0;
}

static void one_round(int stubborn) {
  pid_t pids[4];
  pid_t owner = start_owner(start_with_children, &stubborn, pids, 4, 0);
  if (stubborn) usleep(50000); /* let the children install SIG_IGN */
  CHECK(kill(owner, SIGKILL) == 0);
  CHECK(waitpid(owner, NULL, 0) == owner);
  check_all_exit(pids, 4, 2000, "their owner died");
}

int main(void) {
  test_deadline(110);
  for (int round = 0; round < 100; round++) one_round(0);
  double start = now_ms();
  one_round(1);
  printf("stubborn children gone after %.0f ms\n", now_ms() - start);
  return 0;
}
