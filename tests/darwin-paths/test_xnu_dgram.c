// Checks tests/darwin-paths/xnu_dgram.c, the XNU datagram emulation:
// run with it preloaded (tests/darwin-paths/run.sh). Exits 0 when every
// check holds; prints each one.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, ...)                          \
  do {                                            \
    if (cond) {                                   \
      printf("ok   ");                            \
    } else {                                      \
      printf("FAIL ");                            \
      failures++;                                 \
    }                                             \
    printf(__VA_ARGS__);                          \
    printf("  [%s:%d]\n", __FILE__, __LINE__);    \
  } while (0)

static void pair(int fds[2]) {
  if (socketpair(AF_UNIX, SOCK_DGRAM, 0, fds) != 0) {
    perror("socketpair");
    exit(1);
  }
}

static int opt(int fd, int name) {
  int value = -1;
  socklen_t len = sizeof value;
  if (getsockopt(fd, SOL_SOCKET, name, &value, &len) != 0) return -1;
  return value;
}

static int set(int fd, int name, int value) {
  return setsockopt(fd, SOL_SOCKET, name, &value, sizeof value);
}

// Sends `size`-byte datagrams (no fds) until one fails; returns how many
// went, with the failing errno in *error.
static int fill(int fd, size_t size, int *error) {
  static char buf[1 << 17];
  int count = 0;
  while (count < 100000) {
    if (send(fd, buf, size, 0) < 0) {
      *error = errno;
      return count;
    }
    count++;
  }
  *error = 0;
  return count;
}

static ssize_t send_with_fds(int fd, size_t size, const int *fds, size_t fd_count) {
  static char buf[4096];
  char control[CMSG_SPACE(sizeof(int) * 16)];
  struct iovec iov = {buf, size};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = CMSG_SPACE(sizeof(int) * fd_count)};
  memset(control, 0, sizeof control);
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * fd_count);
  memcpy(CMSG_DATA(c), fds, sizeof(int) * fd_count);
  return sendmsg(fd, &msg, 0);
}

int main(void) {
  // A blocking send to a full receiver must fail at once, never block.
  alarm(20);
  setvbuf(stdout, NULL, _IOLBF, 0);
  int s[2];

  CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, s) == -1 && errno == EPROTONOSUPPORT, "no AF_UNIX SOCK_SEQPACKET pair");
  CHECK(socket(AF_UNIX, SOCK_SEQPACKET, 0) == -1 && errno == EPROTONOSUPPORT, "no AF_UNIX SOCK_SEQPACKET socket");
  CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, s) == -1 && errno == EPROTOTYPE, "no SOCK_CLOEXEC");

  pair(s);
  CHECK(opt(s[0], SO_SNDBUF) == 2048 && opt(s[1], SO_RCVBUF) == 4096, "defaults: SO_SNDBUF 2048, SO_RCVBUF 4096 (got %d, %d)", opt(s[0], SO_SNDBUF), opt(s[1], SO_RCVBUF));
  static char big[1 << 17];
  CHECK(send(s[0], big, 2049, 0) == -1 && errno == EMSGSIZE, "2,049 bytes: EMSGSIZE");
  CHECK(send(s[0], big, 2048, 0) == 2048, "2,048 bytes: sent");
  char got[4096];
  CHECK(recv(s[1], got, sizeof got, 0) == 2048, "and received whole");

  // 100 bytes + a 16-byte address each: 4096 / 116 = 35 fit.
  int error = 0;
  int count = fill(s[0], 100, &error);
  CHECK(count == 35 && error == ENOBUFS, "a full receiver: ENOBUFS after 35 datagrams of 100 bytes (got %d, %s)", count, strerror(error));
  CHECK(recv(s[1], got, sizeof got, 0) == 100, "one received");
  count = fill(s[0], 100, &error);
  CHECK(count == 1 && error == ENOBUFS, "room for exactly one more (got %d)", count);
  // A receive into a short buffer still frees the whole datagram.
  CHECK(recv(s[1], got, 10, 0) == 10, "a short receive returns what fits");
  count = fill(s[0], 100, &error);
  CHECK(count == 1 && error == ENOBUFS, "and frees the whole datagram (got %d)", count);
  CHECK(send(s[1], "x", 1, 0) == 1, "the other direction has its own queue");
  close(s[0]);
  close(s[1]);

  // Raised per socket: SO_SNDBUF on the sender, SO_RCVBUF on the receiver.
  pair(s);
  CHECK(set(s[0], SO_SNDBUF, 65536) == 0 && opt(s[0], SO_SNDBUF) == 65536, "SO_SNDBUF reads back as set");
  CHECK(send(s[0], big, 61440, 0) == -1 && errno == ENOBUFS, "60 KiB: fits the sender, not the 4 KiB receiver: ENOBUFS");
  CHECK(set(s[1], SO_RCVBUF, 262144) == 0, "SO_RCVBUF raised");
  count = fill(s[0], 61440, &error);
  CHECK(count == 4 && error == ENOBUFS, "four 60 KiB datagrams fit in 256 KiB (got %d)", count);
  CHECK(set(s[1], SO_RCVBUF, 64 << 20) == -1 && errno == ENOBUFS, "more than sb_max: ENOBUFS");
  close(s[0]);
  close(s[1]);

  // Fds cost 8 bytes each plus XNU's 12-byte header.
  pair(s);
  int fds[16];
  for (int i = 0; i < 16; i++) fds[i] = 0;
  count = 0;
  while (send_with_fds(s[0], 100, fds, 16) >= 0) count++;
  CHECK(count == 16 && errno == ENOBUFS, "100 bytes with 16 fds cost 256: 16 fit (got %d)", count);
  close(s[0]);
  close(s[1]);

  // The queue is the receiver's, whichever process sends.
  pair(s);
  count = fill(s[0], 100, &error);
  for (int i = 0; i < 10; i++) (void)recv(s[1], got, sizeof got, 0);
  pid_t pid = fork();
  if (pid == 0) _exit(fill(s[0], 100, &error) == 10 && error == ENOBUFS ? 0 : 1);
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "another process sees the same queue");
  for (int i = 0; i < 35; i++) (void)recv(s[1], got, sizeof got, MSG_DONTWAIT);
  CHECK(recv(s[1], got, sizeof got, MSG_DONTWAIT) == -1 && errno == EAGAIN, "the queue holds what was sent, no more");
  count = fill(s[0], 100, &error);
  CHECK(count == 35, "and is empty again after (got %d)", count);

  // A receiver that closed: the send reports it instead of ENOBUFS
  // forever: XNU's pending ECONNRESET once, then EDESTADDRREQ.
  close(s[1]);
  CHECK(send(s[0], big, 100, 0) == -1 && errno == ECONNRESET, "closed receiver: ECONNRESET, not ENOBUFS (%s)", strerror(errno));
  CHECK(send(s[0], big, 100, 0) == -1 && errno == EDESTADDRREQ, "then EDESTADDRREQ (%s)", strerror(errno));
  close(s[0]);

  // A peer that closed: what was queued first, then ECONNRESET once (a
  // receive or a read), then nothing more (EAGAIN, or a receive that waits).
  pair(s);
  CHECK(send(s[0], "hi", 2, 0) == 2, "queued before the peer closed");
  close(s[0]);
  CHECK(recv(s[1], got, sizeof got, 0) == 2, "a peer's datagram outlives it");
  CHECK(read(s[1], got, sizeof got) == -1 && errno == ECONNRESET, "then ECONNRESET (%s)", strerror(errno));
  CHECK(recv(s[1], got, sizeof got, MSG_DONTWAIT) == -1 && errno == EAGAIN, "reported once (%s)", strerror(errno));
  close(s[1]);
  // A copy in another process keeps the peer alive.
  pair(s);
  pid_t holder = fork();
  if (holder == 0) {
    pause();
    _exit(0);
  }
  close(s[0]);
  CHECK(recv(s[1], got, sizeof got, MSG_DONTWAIT) == -1 && errno == EAGAIN, "a peer held by another process is not gone (%s)", strerror(errno));
  kill(holder, SIGKILL);
  waitpid(holder, &status, 0);
  CHECK(recv(s[1], got, sizeof got, MSG_DONTWAIT) == -1 && errno == ECONNRESET, "gone with its last holder (%s)", strerror(errno));
  close(s[1]);

  pair(s);
  CHECK(set(s[0], 0x1022, 1) == 0, "SO_NOSIGPIPE accepted");
  close(s[0]);
  close(s[1]);

  // A stream socket raises SIGPIPE at a closed peer unless SO_NOSIGPIPE.
  signal(SIGPIPE, SIG_IGN);
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, s) == 0 && set(s[0], 0x1022, 1) == 0, "SO_NOSIGPIPE on a stream socket");
  close(s[1]);
  pid_t writer = fork();
  if (writer == 0) {
    signal(SIGPIPE, SIG_DFL);
    _exit(send(s[0], "x", 1, 0) == -1 && errno == EPIPE ? 0 : 1);
  }
  waitpid(writer, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "its send: EPIPE, no SIGPIPE");
  close(s[0]);

  // Other sockets are Linux's own.
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s) == 0 && send(s[0], big, 100000, MSG_DONTWAIT) > 2048, "stream sockets unchanged");

  printf("%s\n", failures ? "xnu_dgram: FAILED" : "xnu_dgram: all checks hold");
  return failures ? 1 : 0;
}
