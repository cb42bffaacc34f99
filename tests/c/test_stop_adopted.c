/* A stop's SIGTERM reaches what the tree leaves to the server while it
 * stops: each child has a grandchild that catches SIGTERM; the child dies
 * of the stop's SIGTERM, its grandchild is adopted by the server (the
 * subreaper) and must get SIGTERM too within the grace period, not only
 * the SIGKILL after it. The server looks for such orphans at most every
 * few milliseconds while 1,000 children exit, not after every reap
 * (zig/server.zig, scanAdopted): 20 children with such grandchildren,
 * stopped with 300 plain ones.
 * macOS has no subreaper: there the grandchildren go to init, and what is
 * checked is that they are not signalled by the stop (the test ends them
 * itself, by the pids they report). */
#include "check.h"

static int report_fd = -1; /* inherited: the write end of the test's pipe */

static void on_term(int sig) {
  (void)sig;
  char t = 'T';
  if (write(report_fd, &t, 1)) {}
  _exit(0);
}

static void entry_with_grandchild(libforks_ServerConn conn, int socket_fd) {
  (void)conn;
  (void)socket_fd;
  pid_t grandchild = fork();
  if (grandchild == 0) {
    signal(SIGTERM, on_term);
    /* 'R' and its pid, in one write: a pipe keeps it whole. */
    char r[1 + sizeof(pid_t)] = {'R'};
    pid_t self = getpid();
    memcpy(r + 1, &self, sizeof self);
    if (write(report_fd, r, sizeof r)) {}
    for (;;) pause();
  }
  for (;;) pause();
}

int main(void) {
  test_deadline(60);
  int report[2];
  CHECK(pipe(report) == 0); /* inheritable: every child of the server holds it */
  report_fd = report[1];
  CHECK(fcntl(report[0], F_SETFD, FD_CLOEXEC) == 0);
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  const int children = 320, with_grandchild = children / 16;
  for (int i = 0; i < children; i++) {
    pid_t pid;
    CHECK_OK(libforks_fork(conn, &pid, NULL, NULL, i % 16 == 0 ? entry_with_grandchild : entry_pause));
  }
  close(report[1]);
  int ready = 0;
  pid_t grandchildren[children / 16];
  while (ready < with_grandchild) {
    char c;
    CHECK(read(report[0], &c, 1) == 1);
    CHECK(c == 'R');
    CHECK(read(report[0], &grandchildren[ready], sizeof(pid_t)) == sizeof(pid_t));
    ready++;
  }
  CHECK_OK(libforks_stop(conn, true));
  if (darwin_paths()) {
    not_on_darwin("a stop's SIGTERM reaching grandchildren the server adopted (no subreaper on macOS: checked alive and unsignalled, ended here)");
    usleep(100000);
    for (int i = 0; i < with_grandchild; i++) {
      CHECK(!process_exited(grandchildren[i]));
      CHECK(kill(grandchildren[i], SIGKILL) == 0);
      CHECK(wait_exited(grandchildren[i], 1000) >= 0);
    }
  }
  /* The server is gone: every copy of the write end with it. */
  int terminated = 0;
  char c;
  ssize_t n;
  while ((n = read(report[0], &c, 1)) == 1) {
    CHECK(c == 'T');
    terminated++;
  }
  CHECK(n == 0);
  if (darwin_paths()) {
    CHECK(terminated == 0);
    return 0;
  }
  if (terminated != with_grandchild) fprintf(stderr, "%d of %d adopted grandchildren got SIGTERM\n", terminated, with_grandchild);
  CHECK(terminated == with_grandchild);
  return 0;
}
