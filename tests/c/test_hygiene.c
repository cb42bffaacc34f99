/* What a child inherits: an empty signal mask and default dispositions,
 * the caller's inheritable fds but none of its close-on-exec ones, and
 * close-on-exec fds from the library. */
#include "check.h"

static void on_term(int sig) { (void)sig; }

static int inheritable_fd = -1, private_fd = -1, late_fd = -1;
static char inheritable_path[64], private_path[64], late_path[64];

/* A distinct file for each fd, so the child can tell which it holds. */
static int open_marked(char *path, int flags) {
  strcpy(path, "/tmp/libforks-hygiene-XXXXXX");
  int fd = mkostemp(path, flags);
  CHECK(fd >= 0);
  unlink(path);
  strcat(path, " (deleted)");
  return fd;
}

/* Whether process `pid` (0: this one) has `path` open. */
static int process_holds_file(pid_t pid, const char *path) {
  char dir_path[64];
  snprintf(dir_path, sizeof dir_path, pid ? "/proc/%d/fd" : "/proc/self/fd", pid);
  DIR *dir = opendir(dir_path);
  if (!dir) return -1;
  int found = 0;
  for (struct dirent *e; (e = readdir(dir));) {
    char link[384], target[256];
    snprintf(link, sizeof link, "%s/%s", dir_path, e->d_name);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0) continue;
    target[n] = 0;
    found |= strcmp(target, path) == 0;
  }
  closedir(dir);
  return found;
}

static int holds_file(const char *path) { return process_holds_file(0, path); }

/* Reports one byte per check over the socket: 1 = as expected. */
static void entry_report(libforks_ServerConn conn, int socket_fd) {
  (void)conn;
  unsigned char report[9];
  sigset_t mask;
  sigprocmask(SIG_SETMASK, NULL, &mask);
  int empty = 1;
  for (int sig = 1; sig < 32; sig++) empty &= !sigismember(&mask, sig);
  report[0] = empty;
  int signals[] = {SIGPIPE, SIGXFSZ, SIGINT, SIGTERM, SIGCHLD};
  for (int i = 0; i < 5; i++) {
    struct sigaction action;
    sigaction(signals[i], NULL, &action);
    report[1 + i] = action.sa_handler == SIG_DFL;
  }
  /* By identity, not number: the child's own fds may reuse the numbers. */
  report[6] = holds_file(inheritable_path);
  report[7] = !holds_file(private_path);
  report[8] = !holds_file(late_path);
  if (write(socket_fd, report, sizeof report) != sizeof report) _exit(1);
  _exit(0);
}

static void entry_cloexec_check(libforks_ServerConn conn, int socket_fd) {
  (void)conn;
  int fd;
  char byte;
  if (libforks_read_socket_fds(socket_fd, &byte, 1, &fd, 1) != 1 || fd < 0) _exit(1);
  _exit((fcntl(fd, F_GETFD) & FD_CLOEXEC) && (fcntl(socket_fd, F_GETFD) & FD_CLOEXEC) ? 0 : 2);
}

int main(void) {
  test_deadline(60);
  /* The caller looks like Bun: SIGPIPE and SIGXFSZ ignored, a handler for
   * SIGTERM, SIGUSR1 blocked, private close-on-exec fds. */
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN);
  signal(SIGTERM, on_term);
  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGUSR1);
  sigprocmask(SIG_BLOCK, &blocked, NULL);
  inheritable_fd = open_marked(inheritable_path, 0);
  private_fd = open_marked(private_path, O_CLOEXEC);

  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  late_fd = open_marked(late_path, 0);

  pid_t pid;
  int socket_fd, exit_fd;
  CHECK_OK(libforks_fork(conn, &pid, &socket_fd, &exit_fd, entry_report));
  CHECK(fcntl(socket_fd, F_GETFD) & FD_CLOEXEC);
  CHECK(fcntl(exit_fd, F_GETFD) & FD_CLOEXEC);
  unsigned char report[9];
  CHECK(read(socket_fd, report, sizeof report) == sizeof report);
  const char *what[] = {"empty mask", "SIGPIPE default", "SIGXFSZ default", "SIGINT default", "SIGTERM default",
                        "SIGCHLD default", "inheritable fd kept", "close-on-exec fd closed", "fd opened after start absent"};
  for (int i = 0; i < 9; i++) {
    if (!report[i]) fprintf(stderr, "child: not %s\n", what[i]);
    CHECK(report[i]);
  }
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 0);
  close(socket_fd);

  /* the server itself: none of the caller's close-on-exec fds */
  pid_t server = libforks_get_server_pid(conn);
  CHECK(process_holds_file(server, private_path) == 0);
  CHECK(process_holds_file(server, inheritable_path) == 1);
  CHECK(process_holds_file(server, late_path) == 0);

  /* received fds and the child's socket are close-on-exec */
  int pipe_fds[2];
  CHECK(pipe(pipe_fds) == 0); /* deliberately inheritable */
  CHECK_OK(libforks_fork(conn, &pid, &socket_fd, &exit_fd, entry_cloexec_check));
  CHECK(libforks_write_socket_fds(socket_fd, "x", 1, &pipe_fds[0], 1) == 1);
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 0);
  close(socket_fd);
  close(pipe_fds[0]);
  close(pipe_fds[1]);

  /* every fd the library makes is close-on-exec */
  int pair[2], fds[2], doorbell;
  CHECK(libforks_socketpair(pair) == 0 && libforks_pipe(fds) == 0);
  CHECK_OK(libforks_doorbell_open(&doorbell));
  int made[] = {pair[0], pair[1], fds[0], fds[1], doorbell};
  for (int i = 0; i < 5; i++) CHECK(fcntl(made[i], F_GETFD) & FD_CLOEXEC);
  CHECK_OK(libforks_doorbell_close(doorbell));
  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
