/* The server notices its owner's exit itself, not the existence of its
 * pid: an owner that was SIGKILLed but not yet reaped (a zombie, on which
 * kill(pid, 0) still succeeds), while another process holds a copy of the
 * owner's connection (so it never reads end-of-file), still has its
 * server and children gone within 2 s. */
#include "check.h"

int main(void) {
  test_deadline(60);
  for (int round = 0; round < 5; round++) {
    int report[2];
    CHECK(pipe(report) == 0);
    pid_t owner = fork();
    CHECK(owner >= 0);
    if (owner == 0) {
      libforks_ServerConn conn;
      if (libforks_start(&conn) != libforks_OK) _exit(1);
      pid_t pids[4] = {libforks_get_server_pid(conn)};
      for (int i = 1; i < 3; i++) {
        if (libforks_fork(conn, &pids[i], NULL, NULL, entry_pause) != libforks_OK) _exit(2);
      }
      /* A plain fork of the owner: holds the owner's connection. */
      pids[3] = fork();
      if (pids[3] == 0) {
        for (;;) pause();
      }
      if (write(report[1], pids, sizeof pids) != sizeof pids) _exit(3);
      for (;;) pause();
    }
    close(report[1]);
    pid_t pids[4];
    CHECK(read(report[0], pids, sizeof pids) == sizeof pids);
    close(report[0]);
    CHECK(kill(owner, SIGKILL) == 0);
    /* not reaped: the owner stays a zombie while we look */
    CHECK(wait_exited(owner, 1000) >= 0);
    CHECK(kill(owner, 0) == 0);
    for (int i = 0; i < 3; i++) {
      double took = wait_exited(pids[i], 2000);
      if (took < 0) fprintf(stderr, "%s %d alive 2 s after its owner became a zombie\n", i ? "child" : "server", pids[i]);
      CHECK(took >= 0);
    }
    CHECK(kill(pids[3], SIGKILL) == 0);
    CHECK(waitpid(owner, NULL, 0) == owner);
  }
  return 0;
}
