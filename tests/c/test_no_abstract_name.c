/* No socket of a server has an address: not the owner's connection (at
 * either end), not a child's. Linux autobinds an abstract name to a
 * socket with SO_PASSCRED that sends; the server turns SO_PASSCRED on only
 * after its one send on the owner's socket. Checked in /proc/net/unix
 * after forks, waits and a refused stop. A plain fork of the owner that
 * sends a stop on its copy of the owner's socket is still refused by the
 * server (NOT_OWNER from the kernel-stamped pid). */
#include "check.h"

/* Socket inode of fd `fd` of process `pid` (0: this one), or 0. */
static unsigned long socket_inode(pid_t pid, int fd) {
  char path[64], link[64];
  if (pid == 0) snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  else snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, fd);
  ssize_t n = readlink(path, link, sizeof link - 1);
  if (n <= 0) return 0;
  link[n] = 0;
  unsigned long inode = 0;
  return sscanf(link, "socket:[%lu]", &inode) == 1 ? inode : 0;
}

/* The address /proc/net/unix shows for a socket inode: "" when none. */
static void check_unbound(unsigned long inode, const char *what) {
  FILE *f = fopen("/proc/net/unix", "r");
  CHECK(f != NULL);
  char line[512];
  int found = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned long this_inode;
    char path[256] = "";
    if (sscanf(line, "%*s %*s %*s %*s %*s %*s %lu %255s", &this_inode, path) < 1) continue;
    if (this_inode != inode) continue;
    found = 1;
    if (path[0]) fprintf(stderr, "%s (socket %lu) has the address %s\n", what, inode, path);
    CHECK(path[0] == 0);
  }
  fclose(f);
  CHECK(found);
}

static void entry_report_conn(libforks_ServerConn conn, int socket_fd) {
  int fd = libforks_conn_fd(conn);
  /* a request of its own, and a stop it may not make */
  if (libforks_kill_all(conn, 0) != libforks_OK) _exit(1);
  if (write(socket_fd, &fd, sizeof fd) != sizeof fd) _exit(2);
  for (;;) pause();
}

int main(void) {
  test_deadline(30);
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  pid_t server = libforks_get_server_pid(conn);

  pid_t pid;
  int socket_fd, status;
  CHECK_OK(libforks_fork(conn, &pid, &socket_fd, NULL, entry_report_conn));
  int child_conn;
  CHECK(readable_within(socket_fd, 5000));
  CHECK(read(socket_fd, &child_conn, sizeof child_conn) == sizeof child_conn);
  CHECK_RESULT(libforks_wait(conn, pid, &status, WNOHANG, NULL), libforks_WOULD_BLOCK);

  /* A plain fork holds a copy of the owner's socket and asks for a stop.
   * macOS stamps no sender on a datagram (no SO_PASSCRED): the server
   * cannot tell the copy from the owner, and such a stop is not refused
   * (README, docs/guarantees.md), so it is not sent there. */
  if (darwin_paths()) {
    not_on_darwin("a stop sent on a plain fork's copy of the owner's socket refused with NOT_OWNER (no sender pid on macOS)");
    goto after_copy;
  }
  pid_t copy = fork();
  CHECK(copy >= 0);
  if (copy == 0) {
    int reply[2];
    if (pipe(reply) != 0) _exit(2);
    if (send_raw_request(libforks_conn_fd(conn), RAW_STOP, 0, 0, &reply[1], 1) != 0) _exit(3);
    close(reply[1]);
    libforks_Reply answer;
    _exit(libforks_reply_read(reply[0], &answer) == libforks_NOT_OWNER ? 0 : 4);
  }
  CHECK(waitpid(copy, &status, 0) == copy && WIFEXITED(status) && WEXITSTATUS(status) == 0);
after_copy:;

  int sockets = 0;
  char dir_path[64];
  snprintf(dir_path, sizeof dir_path, "/proc/%d/fd", server);
  DIR *dir = opendir(dir_path);
  CHECK(dir != NULL);
  for (struct dirent *e; (e = readdir(dir));) {
    unsigned long inode = socket_inode(server, atoi(e->d_name));
    if (inode == 0) continue;
    check_unbound(inode, "a server socket");
    sockets++;
  }
  closedir(dir);
  CHECK(sockets >= 2); /* the owner's connection and the child's */
  check_unbound(socket_inode(0, libforks_conn_fd(conn)), "the owner's end");
  check_unbound(socket_inode(pid, child_conn), "the child's end");
  printf("%d server sockets and both clients' ends: no address\n", sockets);

  CHECK_OK(libforks_kill_all(conn, SIGKILL));
  CHECK_OK(libforks_wait(conn, pid, &status, 0, NULL));
  close(socket_fd);
  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
