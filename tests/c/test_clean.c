/* libforks_start_ex in clean mode: the server runs libforks-server. */
#include "check.h"
#include <dlfcn.h>
#include <libgen.h>
#include <sys/resource.h>

static char server_path[512];

static void find_server(void) {
  /* Beside the library this program was linked with. */
  Dl_info info;
  CHECK(dladdr((void *)libforks_start, &info) && info.dli_fname);
  char copy[512];
  snprintf(copy, sizeof copy, "%s", info.dli_fname);
  snprintf(server_path, sizeof server_path, "%s/libforks-server", dirname(copy));
}

/* {library, symbol} entrypoints: the server looks up the ones whose
 * library it has mapped itself (the C library), once, and hands the child
 * the address; others the child loads. Both kinds twice, then more
 * distinct ones than the server remembers (16): libentry.so under 20
 * spellings of its path, each loaded by its child. */
static void entries(libforks_ServerConn conn, const char *library) {
  pid_t pid;
  int exit_fd;
  for (int round = 0; round < 2; round++) {
    CHECK_OK(libforks_fork_symbol(conn, &pid, NULL, &exit_fd, "libc.so.6", "abort"));
    libforks_ExitEvent event = read_exit_event(exit_fd, 5000);
    CHECK(event.pid == pid && WIFSIGNALED(event.wait_status) && WTERMSIG(event.wait_status) == SIGABRT);
    CHECK_OK(libforks_fork_symbol(conn, &pid, NULL, &exit_fd, library, "lib_exit42"));
    CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 42);
  }
  char directory[512], spelled[600];
  snprintf(directory, sizeof directory, "%s", library);
  *strrchr(directory, '/') = 0;
  for (int i = 0; i < 20; i++) {
    int n = snprintf(spelled, sizeof spelled, "%s/", directory);
    for (int j = 0; j < i; j++) n += snprintf(spelled + n, sizeof spelled - n, "./");
    snprintf(spelled + n, sizeof spelled - n, "libentry.so");
    CHECK_OK(libforks_fork_symbol(conn, &pid, NULL, &exit_fd, spelled, "lib_exit42"));
    CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 42);
  }
  CHECK_OK(libforks_fork_symbol(conn, &pid, NULL, &exit_fd, "libc.so.6", "abort"));
  CHECK(WTERMSIG(read_exit_event(exit_fd, 5000).wait_status) == SIGABRT);
}

int main(void) {
  test_deadline(60);
  /* children that abort() leave no core file behind */
  struct rlimit no_core = {0, 0};
  CHECK(setrlimit(RLIMIT_CORE, &no_core) == 0);
  find_server();
  libforks_ServerConn conn;
  libforks_StartOptions options = {sizeof options, libforks_MODE_CLEAN, server_path, -1};
  CHECK_OK(libforks_start_ex(&conn, &options));
  pid_t server = libforks_get_server_pid(conn);
  char exe[512] = {0};
  program_of(server, exe, sizeof exe);
  CHECK(strstr(exe, "libforks-server") != NULL);

  /* function pointers of this program are refused; symbols and exec work */
  pid_t pid;
  int socket_fd, exit_fd;
  CHECK_RESULT(libforks_fork(conn, &pid, NULL, &exit_fd, entry_exit3), libforks_INVALID_ARGUMENT);
  CHECK_RESULT(libforks_fork_symbol(conn, &pid, NULL, &exit_fd, NULL, "entry_exit3"), libforks_INVALID_ARGUMENT);
  char library[512];
  snprintf(library, sizeof library, "%s/libentry.so", getenv("LIBFORKS_TEST_DIR"));
  CHECK_OK(libforks_fork_symbol(conn, &pid, NULL, &exit_fd, library, "lib_exit42"));
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 42);
  entries(conn, library);

  CHECK_OK(libforks_fork(conn, &pid, &socket_fd, &exit_fd, libforks_exec_entrypoint));
  const char *argv[] = {"sh", "-c", "exit 6", NULL}, *envp[] = {NULL};
  CHECK_OK(libforks_send_exec_spec(socket_fd, "/bin/sh", argv, envp, NULL, NULL, NULL, 0));
  CHECK_OK(libforks_read_exec_result(socket_fd, NULL));
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 6);

  /* waits and kill_all as usual (pause: past the remembered entrypoints,
   * so the child loads it) */
  CHECK_OK(libforks_fork_symbol(conn, &pid, NULL, &exit_fd, "libc.so.6", "pause"));
  int status;
  CHECK_RESULT(libforks_wait(conn, pid, &status, WNOHANG, NULL), libforks_WOULD_BLOCK);
  CHECK_OK(libforks_kill_all(conn, SIGTERM));
  CHECK_OK(libforks_wait(conn, pid, &status, 0, NULL));
  CHECK(WTERMSIG(status) == SIGTERM);
  read_exit_event(exit_fd, 5000);
  CHECK_OK(libforks_stop(conn, true));
  CHECK(process_exited(server));

  /* a server started from a memfd (as inside a single-file executable) */
  if (darwin_paths()) {
    not_on_darwin("a clean server started from a memfd (macOS has no memfd: libforks_memfd's ENOSYS checked instead)");
    CHECK(libforks_memfd("libforks-server") == -1 && errno == ENOSYS);
  } else {
    int memfd = libforks_memfd("libforks-server");
    CHECK(memfd >= 0);
    int file = open(server_path, O_RDONLY);
    CHECK(file >= 0);
    char buffer[65536];
    for (ssize_t n; (n = read(file, buffer, sizeof buffer)) > 0;) CHECK(write(memfd, buffer, n) == n);
    close(file);
    libforks_StartOptions from_memfd = {sizeof from_memfd, libforks_MODE_CLEAN, NULL, memfd};
    CHECK_OK(libforks_start_ex(&conn, &from_memfd));
    close(memfd);
    CHECK_OK(libforks_fork_symbol(conn, &pid, NULL, &exit_fd, library, "lib_exit42"));
    CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 42);
    CHECK_OK(libforks_stop(conn, true));
  }

  /* bad options */
  libforks_StartOptions missing = {sizeof missing, libforks_MODE_CLEAN, "/nonexistent/libforks-server", -1};
  CHECK_RESULT(libforks_start_ex(&conn, &missing), libforks_EXEC_ERROR);
  CHECK(libforks_last_errno() == ENOENT);
  libforks_StartOptions neither = {sizeof neither, libforks_MODE_CLEAN, NULL, -1};
  CHECK_RESULT(libforks_start_ex(&conn, &neither), libforks_INVALID_ARGUMENT);
  libforks_StartOptions unknown = {sizeof unknown, 7, server_path, -1};
  CHECK_RESULT(libforks_start_ex(&conn, &unknown), libforks_INVALID_ARGUMENT);
  libforks_StartOptions small = {4, libforks_MODE_CLEAN, server_path, -1};
  CHECK_RESULT(libforks_start_ex(&conn, &small), libforks_INVALID_ARGUMENT);
  CHECK_OK(libforks_start_ex(&conn, NULL)); /* snapshot */
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_exit3));
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 3);
  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
