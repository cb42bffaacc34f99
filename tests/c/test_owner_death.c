/* When the process that started the server dies by SIGKILL, the server
 * and every child are gone within 2 s: 100 times in a row, then once with
 * children that ignore SIGTERM (the server escalates to SIGKILL). */
#include "check.h"

static void ignore_sigterm(libforks_ServerConn conn, int socket_fd) {
  (void)conn; (void)socket_fd;
  signal(SIGTERM, SIG_IGN);
  for (;;) pause();
}

static void one_round(int stubborn) {
  int report[2];
  CHECK(pipe(report) == 0);
  pid_t owner = fork();
  CHECK(owner >= 0);
  if (owner == 0) {
    libforks_ServerConn conn;
    if (libforks_start(&conn) != libforks_OK) _exit(1);
    pid_t pids[4] = {libforks_get_server_pid(conn)};
    for (int i = 1; i < 4; i++) {
      if (libforks_fork(conn, &pids[i], NULL, NULL, stubborn ? ignore_sigterm : entry_pause) != libforks_OK) _exit(2);
    }
    if (write(report[1], pids, sizeof pids) != sizeof pids) _exit(3);
    for (;;) pause();
  }
  close(report[1]);
  pid_t pids[4];
  CHECK(read(report[0], pids, sizeof pids) == sizeof pids);
  close(report[0]);
  if (stubborn) usleep(50000); /* let the children install SIG_IGN */
  CHECK(kill(owner, SIGKILL) == 0);
  CHECK(waitpid(owner, NULL, 0) == owner);
  for (int i = 0; i < 4; i++) {
    double took = wait_exited(pids[i], 2000);
    if (took < 0) fprintf(stderr, "pid %d (%s) still alive 2 s after its owner died\n", pids[i], i ? "child" : "server");
    CHECK(took >= 0);
  }
}

int main(void) {
  test_deadline(110);
  for (int round = 0; round < 100; round++) one_round(0);
  double start = now_ms();
  one_round(1);
  printf("stubborn children gone after %.0f ms\n", now_ms() - start);
  return 0;
}
