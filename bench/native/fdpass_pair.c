/* Case 5 baseline: a C pair passing one fd back and forth over a
 * SOCK_SEQPACKET socketpair (the socket type of a libforks channel). The
 * parent sends 8 bytes plus one fd (a pipe's write end) with sendmsg; the
 * forked child receives it with recvmsg, sends the same bytes and fd back,
 * and closes its copy; the parent receives and closes the returned copy.
 * One iteration is one such round trip.
 *
 *   fdpass_pair --warmup N --iterations N */
#include "common.h"
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

static ssize_t send_fd(int sock, const void *data, size_t len, int fd) {
  struct iovec iov = {(void *)data, len};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (fd >= 0) {
    memset(&control, 0, sizeof control);
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  ssize_t n;
  while ((n = sendmsg(sock, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  return n;
}

static ssize_t recv_fd(int sock, void *data, size_t len, int *fd) {
  struct iovec iov = {data, len};
  union {
    char buf[CMSG_SPACE(sizeof(int) * 4)];
    struct cmsghdr align;
  } control;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  ssize_t n;
  while ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  *fd = -1;
  if (n > 0) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(fd, CMSG_DATA(c), sizeof(int));
    }
  }
  return n;
}

int main(int argc, char **argv) {
  long warmup = arg_long(argc, argv, "--warmup", 100);
  long iterations = arg_long(argc, argv, "--iterations", 10000);
  int pair[2];
  pid_t pid = fork_peer(pair);
  if (pid == 0) {
    char buf[64];
    for (;;) {
      int fd;
      ssize_t n = recv_fd(pair[1], buf, sizeof buf, &fd);
      if (n <= 0) _exit(0);
      if (send_fd(pair[1], buf, (size_t)n, fd) < 0) _exit(1);
      if (fd >= 0) close(fd);
    }
  }
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) die("pipe");
  uint64_t *samples = samples_alloc(iterations);
  char data[8] = "fdpass!";
  char back[64];
  uint64_t start = 0;
  for (long i = -warmup; i < iterations; i++) {
    if (i == 0) start = now_ns();
    uint64_t t0 = now_ns();
    if (send_fd(pair[0], data, sizeof data, pipe_fds[1]) < 0) die("sendmsg");
    int fd;
    ssize_t n = recv_fd(pair[0], back, sizeof back, &fd);
    if (n != (ssize_t)sizeof data || fd < 0) die("recvmsg");
    close(fd);
    if (i >= 0) samples[i] = now_ns() - t0;
  }
  uint64_t elapsed = now_ns() - start;
  close(pair[0]);
  waitpid(pid, NULL, 0);
  print_result("fdpass_pair", samples, iterations, elapsed, "");
  return 0;
}
