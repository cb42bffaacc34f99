/* The server notices its owner's exit itself, not the existence of its
 * pid: an owner that was SIGKILLed but not yet reaped (a zombie, on which
 * kill(pid, 0) still succeeds), while another process holds a copy of the
 * owner's connection (so it never reads end-of-file), still has its
 * server and children gone within 2 s. */
#include "check.h"

/* A server with two children, and a plain fork of the owner that holds
 * the owner's connection. */
static int start_and_share(pid_t *pids, void *context) {
  (void)context;
  libforks_ServerConn conn;
  if (libforks_start(&conn) != libforks_OK) return 1;
  pids[0] = libforks_get_server_pid(conn);
  for (int i = 1; i < 3; i++) {
    if (libforks_fork(conn, &pids[i], NULL, NULL, entry_pause) != libforks_OK) return 2;
  }
  pids[3] = fork();
  if (pids[3] == 0) {
    for (;;) pause();
  }
  return 0;
}

int main(void) {
  test_deadline(60);
  for (int round = 0; round < 5; round++) {
    pid_t pids[4];
    pid_t owner = start_owner(start_and_share, NULL, pids, 4, 0);
    CHECK(kill(owner, SIGKILL) == 0);
    /* not reaped: the owner stays a zombie while we look */
    CHECK(wait_exited(owner, 1000) >= 0);
    CHECK(kill(owner, 0) == 0);
    check_all_exit(pids, 3, 2000, "their owner became a zombie");
    CHECK(kill(pids[3], SIGKILL) == 0);
    CHECK(waitpid(owner, NULL, 0) == owner);
  }
  return 0;
}
