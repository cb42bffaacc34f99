/* A program run through libforks_exec_entrypoint starts clean although its
 * caller ignores SIGPIPE and SIGXFSZ (as Bun does) and blocks signals:
 * ignored dispositions and the signal mask survive execve, so the child
 * must have reset them. Checked from the program's own /proc/self/status,
 * on a snapshot and on a clean server. */
#include "check.h"
#include <dlfcn.h>
#include <libgen.h>

struct status {
  unsigned long long ignored, blocked;
  pid_t pid, ppid;
};

static struct status status_of_program(libforks_ServerConn conn, pid_t *pid) {
  int socket_fd, exit_fd, out[2];
  CHECK(pipe(out) == 0);
  CHECK_OK(libforks_fork(conn, pid, &socket_fd, &exit_fd, libforks_exec_entrypoint));
  const char *argv[] = {"cat", "/proc/self/status", NULL}, *envp[] = {NULL};
  int target = 1;
  CHECK_OK(libforks_send_exec_spec(socket_fd, "/bin/cat", argv, envp, NULL, &out[1], &target, 1));
  CHECK_OK(libforks_read_exec_result(socket_fd, NULL));
  close(out[1]);
  FILE *f = fdopen(out[0], "r");
  CHECK(f != NULL);
  struct status s = {~0ULL, ~0ULL, -1, -1};
  char line[256];
  while (fgets(line, sizeof line, f)) {
    sscanf(line, "SigIgn: %llx", &s.ignored);
    sscanf(line, "SigBlk: %llx", &s.blocked);
    sscanf(line, "Pid: %d", &s.pid);
    sscanf(line, "PPid: %d", &s.ppid);
  }
  fclose(f);
  libforks_ExitEvent event = read_exit_event(exit_fd, 5000);
  CHECK(event.pid == *pid && WIFEXITED(event.wait_status) && WEXITSTATUS(event.wait_status) == 0);
  return s;
}

static void check_program(libforks_ServerConn conn) {
  pid_t pid;
  struct status s = status_of_program(conn, &pid);
  if (s.ignored || s.blocked) fprintf(stderr, "program: SigIgn %llx SigBlk %llx\n", s.ignored, s.blocked);
  CHECK(s.ignored == 0 && s.blocked == 0);
  CHECK(s.pid == pid);                             /* the same process, exec'd */
  CHECK(s.ppid == libforks_get_server_pid(conn)); /* a child of the server */
}

static void on_term(int sig) { (void)sig; }

int main(void) {
  test_deadline(20);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGTERM, on_term);
  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGUSR1);
  sigaddset(&blocked, SIGINT);
  CHECK(sigprocmask(SIG_BLOCK, &blocked, NULL) == 0);

  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  check_program(conn);
  CHECK_OK(libforks_stop(conn, true));

  Dl_info info;
  CHECK(dladdr((void *)libforks_start, &info) != 0 && info.dli_fname != NULL);
  char copy[2048], server_path[4096];
  CHECK(strlen(info.dli_fname) < sizeof copy);
  strcpy(copy, info.dli_fname);
  snprintf(server_path, sizeof server_path, "%s/libforks-server", dirname(copy));
  libforks_StartOptions options = {
      .size = sizeof options, .mode = libforks_MODE_CLEAN, .server_path = server_path, .server_fd = -1};
  CHECK_OK(libforks_start_ex(&conn, &options));
  check_program(conn);
  CHECK_OK(libforks_stop(conn, true));

  /* the caller's own settings are untouched */
  struct sigaction action;
  CHECK(sigaction(SIGPIPE, NULL, &action) == 0 && action.sa_handler == SIG_IGN);
  CHECK(sigaction(SIGTERM, NULL, &action) == 0 && action.sa_handler == on_term);
  sigset_t now;
  CHECK(sigprocmask(SIG_BLOCK, NULL, &now) == 0 && sigismember(&now, SIGUSR1) && sigismember(&now, SIGINT));
  return 0;
}
