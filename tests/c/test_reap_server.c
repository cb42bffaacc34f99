/* The caller reaps whatever it created. libforks_start's double fork
 * re-parents the server to init, except when the caller is a subreaper
 * or PID 1 (a container's init): then the server becomes the caller's
 * child, and stop (or free_conn) must reap it. 50 start/stop cycles, 10
 * start/free cycles, in a subreaper and as PID 1 of a new pid namespace
 * (when this runs as root): no zombie is left. */
#include "check.h"
#include <sched.h>
#include <sys/prctl.h>

/* Zombies among this process's children (thread-self: in a new pid
 * namespace /proc still shows the outer one's pids, and so does this). */
static int count_zombie_children(void) {
  FILE *f = fopen("/proc/thread-self/children", "r");
  CHECK(f != NULL);
  int zombies = 0;
  pid_t pid;
  while (fscanf(f, "%d", &pid) == 1) zombies += process_exited(pid);
  fclose(f);
  return zombies;
}

static int cycles(void) {
  for (int i = 0; i < 50; i++) {
    libforks_ServerConn conn;
    if (libforks_start(&conn) != libforks_OK) return 10;
    pid_t pid;
    if (libforks_fork(conn, &pid, NULL, NULL, entry_pause) != libforks_OK) return 11;
    if (libforks_stop(conn, true) != libforks_OK) return 12;
  }
  for (int i = 0; i < 10; i++) {
    libforks_ServerConn conn;
    if (libforks_start(&conn) != libforks_OK) return 13;
    libforks_free_conn(conn);
  }
  /* a server SIGKILLed from outside, then stopped: reaped too */
  libforks_ServerConn conn;
  if (libforks_start(&conn) != libforks_OK) return 14;
  kill(libforks_get_server_pid(conn), SIGKILL);
  if (libforks_stop(conn, true) != libforks_SERVER_GONE) return 15;
  int zombies = count_zombie_children();
  if (zombies) fprintf(stderr, "%d zombie servers left\n", zombies);
  return zombies ? 1 : 0;
}

int main(void) {
  test_deadline(100);
  if (darwin_paths()) {
    /* macOS has no subreaper and no pid namespace: the double fork always
     * re-parents the server to launchd, and the library reaps no server
     * there. What holds: a plain caller is left no zombie. */
    not_on_darwin("a subreaper or PID 1 caller reaps its servers (neither exists on macOS; a plain caller checked instead)");
    pid_t plain = fork();
    CHECK(plain >= 0);
    if (plain == 0) _exit(cycles());
    int status;
    CHECK(waitpid(plain, &status, 0) == plain && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("plain caller: 61 servers, no zombie\n");
    return 0;
  }
  /* in a subreaper, in a child so this process stays as it was */
  pid_t runner = fork();
  CHECK(runner >= 0);
  if (runner == 0) {
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) _exit(20);
    _exit(cycles());
  }
  int status;
  CHECK(waitpid(runner, &status, 0) == runner);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fprintf(stderr, "subreaper runner: status %#x\n", status);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  printf("subreaper: 61 servers, no zombie\n");

  /* as PID 1 of a new pid namespace */
  if (unshare(CLONE_NEWPID) != 0) {
    printf("no new pid namespace here (errno %d): PID 1 case not run\n", errno);
    return 0;
  }
  runner = fork();
  CHECK(runner >= 0);
  if (runner == 0) {
    if (getpid() != 1) _exit(21);
    _exit(cycles());
  }
  CHECK(waitpid(runner, &status, 0) == runner);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fprintf(stderr, "PID 1 runner: status %#x\n", status);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  printf("PID 1: 61 servers, no zombie\n");
  return 0;
}
