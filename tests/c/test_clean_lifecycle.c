/* A clean server's life: it is the libforks-server program (not a copy of
 * the caller, also when run from a memfd), gets the caller's environment,
 * stdio and inheritable fds only, leaks nothing when it cannot start, and
 * goes with its children when its owner is SIGKILLed. */
#include "check.h"
#include <dlfcn.h>
#include <libgen.h>

static char server_path[4096];

static void find_server(void) {
  Dl_info info;
  CHECK(dladdr((void *)libforks_start, &info) != 0 && info.dli_fname != NULL);
  char copy[2048];
  CHECK(strlen(info.dli_fname) < sizeof copy);
  strcpy(copy, info.dli_fname);
  snprintf(server_path, sizeof server_path, "%s/libforks-server", dirname(copy));
  CHECK(access(server_path, X_OK) == 0);
}

static libforks_StartOptions clean_options(const char *path, int fd) {
  libforks_StartOptions options = {
      .size = sizeof options, .mode = libforks_MODE_CLEAN, .server_path = path, .server_fd = fd};
  return options;
}


/* The target of fd number `fd` in process `pid` (0: this one), or "". */
static const char *fd_target(pid_t pid, int fd) {
  static char target[512];
  char link[64];
  if (pid) snprintf(link, sizeof link, "/proc/%d/fd/%d", pid, fd);
  else snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  target[n > 0 ? n : 0] = 0;
  return target;
}

/* Whether `pid` holds fd number `fd` on the same file as ours. */
static int holds_as_ours(pid_t pid, int fd) {
  char mine[512];
  snprintf(mine, sizeof mine, "%s", fd_target(0, fd));
  CHECK(mine[0] != 0);
  return strcmp(fd_target(pid, fd), mine) == 0;
}

/* Whether `pid` holds the file of our `fd` under any number. */
static int holds_anywhere(pid_t pid, int fd) {
  char mine[512];
  snprintf(mine, sizeof mine, "%s", fd_target(0, fd));
  for (int n = 0; n < 1024; n++) {
    if (strcmp(fd_target(pid, n), mine) == 0) return 1;
  }
  return 0;
}

/* A memfd at fd number `number`, inheritable or not. macOS has no memfd:
 * on the darwin paths a file of that name in the test directory. */
static int marked_fd(const char *name, int number, int inheritable) {
  int fd;
  if (darwin_paths()) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", getenv("LIBFORKS_TEST_DIR") ? getenv("LIBFORKS_TEST_DIR") : "/tmp", name);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    unlink(path);
  } else {
    fd = libforks_memfd(name);
  }
  CHECK(fd >= 0);
  if (fd != number) {
    CHECK(dup3(fd, number, inheritable ? 0 : O_CLOEXEC) == number);
    close(fd);
  } else if (inheritable) {
    CHECK(fcntl(fd, F_SETFD, 0) == 0);
  }
  return number;
}

static int environ_has(pid_t pid, const char *entry) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/environ", pid);
  int fd = open(path, O_RDONLY);
  CHECK(fd >= 0);
  static char all[1 << 16];
  ssize_t n = read(fd, all, sizeof all - 1);
  close(fd);
  CHECK(n > 0);
  for (char *p = all; p < all + n; p += strlen(p) + 1) {
    if (strcmp(p, entry) == 0) return 1;
  }
  return 0;
}

static int start_clean_with_sleep(pid_t *pids, void *context) {
  (void)context;
  libforks_ServerConn conn;
  libforks_StartOptions options = clean_options(server_path, -1);
  if (libforks_start_ex(&conn, &options) != libforks_OK) return 1;
  pids[0] = libforks_get_server_pid(conn);
  int socket_fd;
  if (libforks_fork(conn, &pids[1], &socket_fd, NULL, libforks_exec_entrypoint) != libforks_OK) return 2;
  const char *argv[] = {"sleep", "1000", NULL}, *envp[] = {NULL};
  if (libforks_send_exec_spec(socket_fd, "/bin/sleep", argv, envp, NULL, NULL, NULL, 0) != libforks_OK) return 3;
  if (libforks_read_exec_result(socket_fd, NULL) != libforks_OK) return 4;
  return 0;
}

/* A helper process starts a clean server running `sleep`, reports both
 * pids, and is SIGKILLed: both must be gone within 2 s. */
static void check_owner_death(void) {
  pid_t pids[2];
  pid_t owner = start_owner(start_clean_with_sleep, NULL, pids, 2, 0);
  CHECK(kill(owner, SIGKILL) == 0);
  CHECK(waitpid(owner, NULL, 0) == owner);
  check_all_exit(pids, 2, 2000, "their owner died");
}

int main(void) {
  test_deadline(20);
  find_server();
  char self[4096], exe[4096];
  program_of(getpid(), self, sizeof self);

  /* what the server gets from the caller */
  CHECK(setenv("LIBFORKS_CLEAN_MARK", "given", 1) == 0);
  /* Inherited fds keep their numbers, 3 too (where a server could be
   * tempted to put its own connection). */
  int inheritable = marked_fd("inheritable-at-3", 3, 1);
  int inheritable_high = marked_fd("inheritable-at-40", 40, 1);
  int private_fd = marked_fd("private-to-caller", 41, 0);
  libforks_ServerConn conn;
  libforks_StartOptions options = clean_options(server_path, -1);
  CHECK_OK(libforks_start_ex(&conn, &options));
  pid_t server = libforks_get_server_pid(conn);
  program_of(server, exe, sizeof exe);
  CHECK(strcmp(basename(exe), "libforks-server") == 0 && strcmp(exe, self) != 0);
  CHECK(environ_has(server, "LIBFORKS_CLEAN_MARK=given"));
  CHECK(holds_as_ours(server, inheritable_high));
  CHECK(holds_as_ours(server, inheritable));
  CHECK(!holds_anywhere(server, private_fd));
  CHECK_OK(libforks_stop(conn, true));
  CHECK(process_exited(server));
  close(inheritable);
  close(inheritable_high);
  close(private_fd);

  /* from a memfd: the program runs from it, not from a path */
  if (darwin_paths()) {
    not_on_darwin("a clean server run from an fd (no memfd or fexecve on macOS: INVALID_ARGUMENT checked instead)");
    options = clean_options(NULL, 0);
    CHECK_RESULT(libforks_start_ex(&conn, &options), libforks_INVALID_ARGUMENT);
    goto after_memfd;
  }
  int memfd = libforks_memfd("libforks-server");
  CHECK(memfd >= 0 && (fcntl(memfd, F_GETFD) & FD_CLOEXEC));
  int program = open(server_path, O_RDONLY);
  CHECK(program >= 0);
  char buffer[65536];
  for (ssize_t n; (n = read(program, buffer, sizeof buffer)) > 0;) CHECK(write(memfd, buffer, n) == n);
  close(program);
  options = clean_options(NULL, memfd);
  CHECK_OK(libforks_start_ex(&conn, &options));
  server = libforks_get_server_pid(conn);
  program_of(server, exe, sizeof exe);
  CHECK(strstr(exe, "memfd:") != NULL);
  CHECK(!holds_anywhere(server, memfd)); /* close-on-exec: exec'd, not kept */
  CHECK_OK(libforks_stop(conn, true));
  close(memfd);

after_memfd:;
  /* failures leave no fd behind; explicit snapshot mode works */
  int before = count_fds(0);
  options = clean_options("/nonexistent/libforks-server", -1);
  CHECK_RESULT(libforks_start_ex(&conn, &options), libforks_EXEC_ERROR);
  CHECK(libforks_last_errno() == ENOENT);
  options = clean_options(server_path, -1);
  CHECK_RESULT(libforks_start_ex(NULL, &options), libforks_INVALID_ARGUMENT);
  options.size = 0;
  CHECK_RESULT(libforks_start_ex(&conn, &options), libforks_INVALID_ARGUMENT);
  CHECK(count_fds(0) == before);
  libforks_StartOptions snapshot = {.size = sizeof snapshot, .mode = libforks_MODE_SNAPSHOT, .server_fd = -1};
  CHECK_OK(libforks_start_ex(&conn, &snapshot));
  program_of(libforks_get_server_pid(conn), exe, sizeof exe);
  CHECK(strcmp(exe, self) == 0); /* a copy of this program */
  pid_t pid;
  int exit_fd;
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_exit3));
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 3);
  CHECK_OK(libforks_stop(conn, true));

  check_owner_death();
  return 0;
}
