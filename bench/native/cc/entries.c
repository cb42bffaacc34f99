/* Native entrypoints of the Bun cases, compiled at run time by bun:ffi's
 * cc() (TinyCC) before the fork server starts, so that they are mapped in
 * the server and in every child. Signature: void entry(libforks_ServerConn
 * conn, int socket_fd); the connection is one pointer, passed as one. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Case 1's baseline of the process's own shape: a raw fork of this Bun
 * process (the fork system call itself, as a snapshot server makes it: no
 * atfork handlers), whose child exits at once, and waitpid. The child runs
 * no JavaScript and touches nothing: it only calls _exit. Returns the
 * child's pid, or -1. */
int bench_raw_fork_wait(void) {
  pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) _exit(0);
  if (pid < 0) return -1;
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return pid;
}

/* Case 1, 3, 6: the child exits at once. */
void bench_exit_now(void *conn, int socket_fd) {
  _exit(0);
}

/* Case 4, 6: the child stays alive until a signal ends it. */
void bench_pause(void *conn, int socket_fd) {
  for (;;) pause();
}

/* Case 5: echoes every message on its socket back with the fds it
 * carried, then closes its copies; exits at end-of-file. Speaks raw
 * SOCK_SEQPACKET messages, so the channel's 4-byte header is echoed too. */
void bench_echo_fds(void *conn, int socket_fd) {
  char data[256];
  char control_in[CMSG_SPACE(sizeof(int) * 8)];
  char control_out[CMSG_SPACE(sizeof(int) * 8)];
  for (;;) {
    struct iovec iov;
    struct msghdr in;
    iov.iov_base = data;
    iov.iov_len = sizeof data;
    memset(&in, 0, sizeof in);
    in.msg_iov = &iov;
    in.msg_iovlen = 1;
    in.msg_control = control_in;
    in.msg_controllen = sizeof control_in;
    ssize_t n = recvmsg(socket_fd, &in, MSG_CMSG_CLOEXEC);
    if (n <= 0) _exit(n == 0 ? 0 : 1);
    int fds[8];
    int count = 0;
    struct cmsghdr *c = CMSG_FIRSTHDR(&in);
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      if (count > 8) count = 8;
      memcpy(fds, CMSG_DATA(c), sizeof(int) * count);
    }
    struct msghdr out;
    iov.iov_len = n;
    memset(&out, 0, sizeof out);
    out.msg_iov = &iov;
    out.msg_iovlen = 1;
    if (count > 0) {
      memset(control_out, 0, sizeof control_out);
      out.msg_control = control_out;
      out.msg_controllen = CMSG_SPACE(sizeof(int) * count);
      struct cmsghdr *d = CMSG_FIRSTHDR(&out);
      d->cmsg_level = SOL_SOCKET;
      d->cmsg_type = SCM_RIGHTS;
      d->cmsg_len = CMSG_LEN(sizeof(int) * count);
      memcpy(CMSG_DATA(d), fds, sizeof(int) * count);
    }
    if (sendmsg(socket_fd, &out, MSG_NOSIGNAL) < 0) _exit(1);
    for (int i = 0; i < count; i++) close(fds[i]);
  }
}

/* Case 8: the kernel's part of stopping the very children a snapshot
 * server makes. This child, itself a copy of the Bun process, forks 1,000
 * copies of itself that pause, then times kill(SIGKILL) of each and
 * waitpid of each, and sends the nanoseconds as decimal text in one
 * channel message (a 4-byte header of 0, then the data). */
void bench_kill_reap(void *conn, int socket_fd) {
  static pid_t pids[1000];
  int count = 1000, i;
  struct timespec start, end;
  unsigned char message[4 + 32];
  long long ns;
  int length;
  for (i = 0; i < count; i++) {
    pids[i] = fork();
    if (pids[i] < 0) _exit(2);
    if (pids[i] == 0) {
      for (;;) pause();
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (i = 0; i < count; i++) kill(pids[i], SIGKILL);
  for (i = 0; i < count; i++) waitpid(pids[i], NULL, 0);
  clock_gettime(CLOCK_MONOTONIC, &end);
  ns = (long long)(end.tv_sec - start.tv_sec) * 1000000000LL + (end.tv_nsec - start.tv_nsec);
  memset(message, 0, 4);
  length = snprintf((char *)message + 4, 32, "%lld", ns);
  if (send(socket_fd, message, 4 + length, 0) != 4 + length) _exit(3);
  _exit(0);
}
