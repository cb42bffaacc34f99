/* What libforks_start makes: the server is not the caller's child (it is
 * re-parented at once, nothing to reap), and every child is a copy of the
 * caller as it was at the start call, not as it is at the fork. */
#include "check.h"

static int counter;
static char *heap_text;

static void entry_report_state(libforks_ServerConn conn, int socket_fd) {
  (void)conn;
  char report[64];
  int n = snprintf(report, sizeof report, "%d %s %d", counter, heap_text ? heap_text : "(null)", (int)getppid());
  if (write(socket_fd, report, n) != n) _exit(1);
  _exit(0);
}

static pid_t parent_of(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  CHECK(f != NULL);
  int ppid = -1;
  CHECK(fscanf(f, "%*d %*s %*c %d", &ppid) == 1);
  fclose(f);
  return ppid;
}

int main(void) {
  test_deadline(20);
  counter = 1;
  heap_text = strdup("before");
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  pid_t server = libforks_get_server_pid(conn);

  /* not our child, and no other child of ours is left to reap */
  CHECK(server > 0 && server != getpid());
  CHECK(parent_of(server) != getpid());
  errno = 0;
  CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD);

  /* changes made after start do not reach children */
  counter = 2;
  strcpy(heap_text, "after!");
  pid_t pid;
  int socket_fd, exit_fd;
  CHECK_OK(libforks_fork(conn, &pid, &socket_fd, &exit_fd, entry_report_state));
  char report[64] = {0}, expected[64];
  CHECK(read(socket_fd, report, sizeof report - 1) > 0);
  snprintf(expected, sizeof expected, "1 before %d", (int)server); /* and a child of the server */
  if (strcmp(report, expected) != 0) fprintf(stderr, "child reported \"%s\", expected \"%s\"\n", report, expected);
  CHECK(strcmp(report, expected) == 0);
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 0);
  close(socket_fd);

  /* a second server snapshots the state of its own start */
  libforks_ServerConn later;
  CHECK_OK(libforks_start(&later));
  CHECK(libforks_get_server_pid(later) != server);
  CHECK_OK(libforks_fork(later, &pid, &socket_fd, &exit_fd, entry_report_state));
  memset(report, 0, sizeof report);
  CHECK(read(socket_fd, report, sizeof report - 1) > 0);
  snprintf(expected, sizeof expected, "2 after! %d", (int)libforks_get_server_pid(later));
  CHECK(strcmp(report, expected) == 0);
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 0);
  close(socket_fd);
  CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD);

  CHECK_OK(libforks_stop(later, true));
  CHECK_OK(libforks_stop(conn, true));
  free(heap_text);
  return 0;
}
