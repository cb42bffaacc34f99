/* Where libforks_fork_symbol loads things: a library by path is loaded by
 * the child only (never mapped in the server), its symbols may use the
 * socket, and a symbol the caller sees but the server's image lacks makes
 * the child exit 127. Names longer than LIBFORKS_MAX_SYMBOL: LIMIT_ERROR. */
#include "check.h"
#include <dlfcn.h>
#include <libgen.h>

/* A real entrypoint whose name is longer than LIBFORKS_MAX_SYMBOL, so the
 * only reason to refuse it is the limit. */
#define TIMES10(s) s s s s s s s s s s
#define LONG_NAME TIMES10(TIMES10(TIMES10("long_symbol_"))) /* 12,000 chars */
void long_named_entry(libforks_ServerConn conn, int socket_fd) __asm__(LONG_NAME);
void long_named_entry(libforks_ServerConn conn, int socket_fd) {
  (void)conn; (void)socket_fd;
  _exit(0);
}

static char *fixture_path(void) {
  static char path[4096];
  const char *dir = getenv("LIBFORKS_TEST_DIR");
  if (dir) {
    snprintf(path, sizeof path, "%s/libentry.so", dir);
  } else {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    CHECK(n > 0);
    exe[n] = 0;
    snprintf(path, sizeof path, "%s/libentry.so", dirname(exe));
  }
  CHECK(access(path, R_OK) == 0);
  return path;
}

static int maps_mention(pid_t pid, const char *needle) {
  char path[64], line[4096];
  snprintf(path, sizeof path, "/proc/%d/maps", pid);
  FILE *f = fopen(path, "r");
  CHECK(f != NULL);
  int found = 0;
  while (fgets(line, sizeof line, f)) found |= strstr(line, needle) != NULL;
  fclose(f);
  return found;
}

/* Starts a server whose stderr (so its children's) is a temporary file. */
static int start_with_stderr_file(libforks_ServerConn *conn) {
  char path[] = "/tmp/libforks-stderr-XXXXXX";
  int file = mkstemp(path);
  CHECK(file >= 0);
  unlink(path);
  int saved = dup(STDERR_FILENO);
  CHECK(saved >= 0 && dup2(file, STDERR_FILENO) == STDERR_FILENO);
  libforks_Result r = libforks_start(conn);
  CHECK(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
  close(saved);
  CHECK_OK(r);
  return file;
}

int main(void) {
  test_deadline(20);
  const char *library = fixture_path();
  CHECK(dlopen(library, RTLD_NOW | RTLD_NOLOAD) == NULL); /* not loaded at start */
  libforks_ServerConn conn, quiet;
  CHECK_OK(libforks_start(&conn));
  int child_stderr = start_with_stderr_file(&quiet);
  pid_t server = libforks_get_server_pid(conn);
  pid_t pid;
  int socket_fd, exit_fd;
  libforks_ExitEvent event;

  /* a library by path, loaded after start: the child loads it, not the server */
  CHECK_OK(libforks_fork_symbol(conn, &pid, NULL, &exit_fd, library, "lib_exit42"));
  event = read_exit_event(exit_fd, 5000);
  CHECK(event.pid == pid && WIFEXITED(event.wait_status) && WEXITSTATUS(event.wait_status) == 42);
  CHECK(!maps_mention(server, "libentry.so"));
  int status = -1;
  CHECK_OK(libforks_wait(conn, pid, &status, 0, NULL));
  CHECK(WEXITSTATUS(status) == 42);

  /* a library symbol that uses its socket: libforks' own exec entrypoint */
  Dl_info info;
  CHECK(dladdr((void *)libforks_start, &info) != 0 && info.dli_fname != NULL);
  CHECK_OK(libforks_fork_symbol(conn, &pid, &socket_fd, &exit_fd, info.dli_fname, "libforks_exec_entrypoint"));
  int out[2];
  CHECK(pipe(out) == 0);
  const char *argv[] = {"echo", "by symbol", NULL}, *envp[] = {NULL};
  int target = 1;
  CHECK_OK(libforks_send_exec_spec(socket_fd, "/bin/echo", argv, envp, NULL, &out[1], &target, 1));
  CHECK_OK(libforks_read_exec_result(socket_fd, NULL));
  close(out[1]);
  char text[32] = {0};
  CHECK(read(out[0], text, sizeof text - 1) == 10 && strcmp(text, "by symbol\n") == 0);
  close(out[0]);
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 0);

  /* checked in the caller before forking */
  CHECK_RESULT(libforks_fork_symbol(conn, &pid, NULL, NULL, library, "no_such_entry"), libforks_LOAD_ERROR);
  CHECK_RESULT(libforks_fork_symbol(conn, &pid, NULL, NULL, NULL, "no_such_entry_in_program"), libforks_LOAD_ERROR);

  /* A symbol the caller sees (loaded globally after start) but the server's
   * image lacks: the caller's check passes, the child cannot find it and
   * exits with status 127 (or the call refuses it with LOAD_ERROR). */
  CHECK(dlopen(library, RTLD_NOW | RTLD_GLOBAL) != NULL);
  CHECK(dlsym(RTLD_DEFAULT, "lib_exit42") != NULL);
  exit_fd = -1;
  libforks_Result r = libforks_fork_symbol(quiet, &pid, NULL, &exit_fd, NULL, "lib_exit42");
  CHECK(r == libforks_OK || r == libforks_LOAD_ERROR);
  if (r == libforks_OK) {
    event = read_exit_event(exit_fd, 5000);
    CHECK(event.pid == pid && WIFEXITED(event.wait_status) && WEXITSTATUS(event.wait_status) == 127);
    char said[1024] = {0};
    CHECK(pread(child_stderr, said, sizeof said - 1, 0) > 0);
    CHECK(strstr(said, "lib_exit42") != NULL); /* the reason names the symbol */
  }
  close(child_stderr);
  CHECK_OK(libforks_stop(quiet, true));

  /* beyond LIBFORKS_MAX_SYMBOL (last: the other checks do not depend on it) */
  CHECK(strlen(LONG_NAME) > LIBFORKS_MAX_SYMBOL);
  CHECK_RESULT(libforks_fork_symbol(conn, &pid, NULL, NULL, NULL, LONG_NAME), libforks_LIMIT_ERROR);

  CHECK_OK(libforks_stop(conn, true));
  CHECK(wait_exited(server, 1000) >= 0);
  return 0;
}
