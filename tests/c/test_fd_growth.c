/* 300 fork/exit cycles leave neither the caller nor the server with more
 * fds than before; 10,000 cycles leave no zombie and the same counts. */
#include "check.h"

static void cycles(libforks_ServerConn conn, int count) {
  for (int i = 0; i < count; i++) {
    pid_t pid;
    int socket_fd, exit_fd;
    CHECK_OK(libforks_fork(conn, &pid, &socket_fd, &exit_fd, entry_exit0));
    CHECK(read_exit_event(exit_fd, 5000).pid == pid);
    close(socket_fd);
  }
}

/* Anonymous memory a process has mapped, in kB. Not Pss: the server shares
 * its pages with the children it forks, so its proportional share moves
 * with how many are alive when it is read. */
static long anonymous_kb(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
  FILE *f = fopen(path, "r");
  CHECK(f != NULL);
  long anonymous = -1;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "Anonymous: %ld kB", &anonymous) == 1) break;
  }
  fclose(f);
  CHECK(anonymous > 0);
  return anonymous;
}

static int count_zombie_children(pid_t parent) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task/%d/children", parent, parent);
  FILE *f = fopen(path, "r");
  CHECK(f != NULL);
  int zombies = 0;
  for (int pid; fscanf(f, "%d", &pid) == 1;) zombies += process_exited(pid);
  fclose(f);
  return zombies;
}

int main(void) {
  test_deadline(110);
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  pid_t server = libforks_get_server_pid(conn);
  int server_before = server_fd_baseline(conn);
  cycles(conn, 10); /* warm up */
  int caller_before = count_fds(0);

  cycles(conn, 300);
  CHECK(count_fds(0) == caller_before);
  check_fd_count_settles(server, server_before);

  /* Unwaited exits are remembered (at most LIBFORKS_MAX_EXIT_RECORDS):
   * fill that table first, then the server's memory must stay flat. */
  cycles(conn, LIBFORKS_MAX_EXIT_RECORDS + 100);
  long anonymous_before = anonymous_kb(server);
  cycles(conn, 10000);
  CHECK(count_fds(0) == caller_before);
  check_fd_count_settles(server, server_before);
  CHECK(count_zombie_children(server) == 0);
  /* The server allocates nothing: its memory stays flat. */
  long anonymous_after = anonymous_kb(server);
  printf("server anonymous memory: %ld kB before, %ld kB after 10,000 forks\n", anonymous_before, anonymous_after);
  CHECK(anonymous_after <= anonymous_before + 64); /* a leak of even 8 bytes a fork would be 80 kB */
  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
