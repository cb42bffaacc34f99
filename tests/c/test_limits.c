/* Exhaustion. RLIMIT_NPROC reached: FORK_ERROR with EAGAIN, and the server
 * serves again once children exit. RLIMIT_NOFILE reached in the caller: a
 * creation error, no half-made child, no leaked fd. Runs as an unprivileged
 * user (root is exempt from RLIMIT_NPROC). */
#include "check.h"
#include <pwd.h>
#include <sys/resource.h>
#include <sys/stat.h>

static void nproc_limit(void) {
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  /* Count this user's processes, then allow 5 more. */
  struct rlimit limit;
  CHECK(getrlimit(RLIMIT_NPROC, &limit) == 0);
  pid_t pids[64];
  int exit_fds[64], forked = 0;
  libforks_Result result = libforks_OK;
  /* The server inherited the limit at start; lower it there by forking
   * from a server started after lowering ours. */
  CHECK_OK(libforks_stop(conn, true));
  int running = 0;
  DIR *proc = opendir("/proc");
  CHECK(proc != NULL);
  for (struct dirent *e; (e = readdir(proc));) {
    char path[300];
    struct stat st;
    snprintf(path, sizeof path, "/proc/%s", e->d_name);
    if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && stat(path, &st) == 0 && st.st_uid == getuid()) running++;
  }
  closedir(proc);
  limit.rlim_cur = running + 1 /* server */ + 5;
  CHECK(setrlimit(RLIMIT_NPROC, &limit) == 0);
  CHECK_OK(libforks_start(&conn));
  while (forked < 64) {
    result = libforks_fork(conn, &pids[forked], NULL, &exit_fds[forked], entry_pause);
    if (result != libforks_OK) break;
    forked++;
  }
  CHECK_RESULT(result, libforks_FORK_ERROR);
  CHECK(libforks_last_errno() == EAGAIN);
  CHECK(forked >= 1 && forked <= 10);
  /* room again once children exit */
  CHECK_OK(libforks_kill_all(conn, SIGKILL));
  for (int i = 0; i < forked; i++) read_exit_event(exit_fds[i], 5000);
  pid_t pid;
  int exit_fd;
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_exit3));
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 3);
  CHECK_OK(libforks_stop(conn, true));
}

static void nofile_limit(void) {
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  pid_t server = libforks_get_server_pid(conn);
  int server_fds = server_fd_baseline(conn);
  /* Fill our fd table but for a few, then fork until creation fails. */
  struct rlimit limit = {64, 64};
  CHECK(setrlimit(RLIMIT_NOFILE, &limit) == 0);
  int filler[64], filled = 0;
  while (filled < 64 && (filler[filled] = dup(0)) >= 0) filled++;
  CHECK(errno == EMFILE);
  /* Six free: enough to count fds, too few for a fork (six at once). */
  for (int i = 0; i < 6; i++) close(filler[--filled]);
  int before = count_fds(0);
  libforks_Result result = libforks_OK;
  int exit_fds[8], forked = 0;
  for (int i = 0; i < 8 && result == libforks_OK; i++) {
    int socket_fd;
    result = libforks_fork(conn, NULL, &socket_fd, &exit_fds[forked], entry_exit0);
    if (result == libforks_OK) {
      close(socket_fd);
      forked++;
    }
  }
  CHECK(result == libforks_PIPE_CREATION_ERROR || result == libforks_SOCKET_CREATION_ERROR);
  CHECK(libforks_last_errno() == EMFILE);
  for (int i = 0; i < forked; i++) read_exit_event(exit_fds[i], 5000);
  CHECK(count_fds(0) == before);
  CHECK_OK(libforks_wait_all(conn));
  /* no half-made child: every child the server made was reported */
  check_fd_count_settles(server, server_fds);
  for (int i = 0; i < filled; i++) close(filler[i]);
  CHECK_OK(libforks_stop(conn, true));
}

/* RLIMIT_NOFILE too low for the server's tables: it accepts the children
 * its fds allow and answers LIMIT_ERROR past that, leaking nothing, and
 * serves again once children exit. */
static void server_nofile_limit(void) {
  struct rlimit limit = {96, 96};
  CHECK(setrlimit(RLIMIT_NOFILE, &limit) == 0);
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  int before = count_fds(0);
  int exit_fds[64], forked = 0;
  libforks_Result result = libforks_OK;
  while (forked < 64) {
    result = libforks_fork(conn, NULL, NULL, &exit_fds[forked], entry_pause);
    if (result != libforks_OK) break;
    forked++;
  }
  CHECK_RESULT(result, libforks_LIMIT_ERROR);
  CHECK(forked >= 8); /* a low limit still holds a fair number */
  CHECK(count_fds(0) == before + forked); /* only the exit fds we hold */
  CHECK_OK(libforks_kill_all(conn, SIGKILL));
  for (int i = 0; i < forked; i++) read_exit_event(exit_fds[i], 5000);
  int exit_fd;
  CHECK_OK(libforks_fork(conn, NULL, NULL, &exit_fd, entry_exit3));
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 3);
  CHECK_OK(libforks_stop(conn, true));
}

int main(void) {
  test_deadline(60);
  pid_t low = fork();
  CHECK(low >= 0);
  if (low == 0) {
    server_nofile_limit();
    _exit(0);
  }
  int low_status;
  CHECK(waitpid(low, &low_status, 0) == low && WIFEXITED(low_status) && WEXITSTATUS(low_status) == 0);
  pid_t child = fork();
  CHECK(child >= 0);
  if (child == 0) {
    if (getuid() == 0) {
      struct passwd *nobody = getpwnam("nobody");
      CHECK(nobody != NULL);
      CHECK(setgid(nobody->pw_gid) == 0 && setuid(nobody->pw_uid) == 0);
    }
    nproc_limit();
    _exit(0);
  }
  int status;
  CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  nofile_limit();
  return 0;
}
