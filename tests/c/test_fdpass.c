/* libforks_write_socket_fds / libforks_read_socket_fds between two sockets
 * of this process: what arrives, the unused slots, the maximum fd count,
 * truncated messages, end-of-file, EPIPE without SIGPIPE, stream sockets
 * (a large send completed, fds with the first byte) and EINTR. SIGPIPE
 * keeps its default disposition here: a raised SIGPIPE kills the test. */
#include "check.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

static int is_cloexec(int fd) { return (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

static int same_file(int a, int b) {
  char pa[64], pb[64], ta[256] = {0}, tb[256] = {0};
  snprintf(pa, sizeof pa, "/proc/self/fd/%d", a);
  snprintf(pb, sizeof pb, "/proc/self/fd/%d", b);
  return readlink(pa, ta, sizeof ta - 1) > 0 && readlink(pb, tb, sizeof tb - 1) > 0 && strcmp(ta, tb) == 0;
}

enum { STREAM_BYTES = 1 << 20 };
static int stream_pair[2], stream_fd_to_send;
static char stream_data[STREAM_BYTES];

static volatile sig_atomic_t interrupted;
static void on_usr1(int sig) { (void)sig; interrupted++; }

static atomic_int stream_sent;
static void *send_stream(void *arg) {
  (void)arg;
  long sent = libforks_write_socket_fds(stream_pair[0], stream_data, STREAM_BYTES, &stream_fd_to_send, 1);
  atomic_store(&stream_sent, 1);
  return (void *)sent;
}

static int eintr_pair[2];
static void *receive_through_signals(void *arg) {
  (void)arg;
  char data[8] = {0};
  int fd = -2;
  long n = libforks_read_socket_fds(eintr_pair[1], data, sizeof data, &fd, 1);
  return (void *)(n == 5 && memcmp(data, "later", 5) == 0 && fd >= 0 ? (long)fd : -1L);
}

int main(void) {
  test_deadline(20);
  int before = count_fds(0);
  int pair[2], p[2], fds[8];
  char data[16];
  CHECK(libforks_socketpair(pair) == 0 && pipe(p) == 0);

  /* three fds: stored first, the other slots -1, close-on-exec, the same files */
  int sent[3] = {p[0], p[1], STDERR_FILENO};
  CHECK(libforks_write_socket_fds(pair[0], "abc", 3, sent, 3) == 3);
  memset(fds, 0x55, sizeof fds);
  CHECK(libforks_read_socket_fds(pair[1], data, sizeof data, fds, 5) == 3 && memcmp(data, "abc", 3) == 0);
  for (int i = 0; i < 3; i++) CHECK(fds[i] >= 0 && is_cloexec(fds[i]) && same_file(fds[i], sent[i]));
  CHECK(fds[3] == -1 && fds[4] == -1);
  CHECK(fds[5] == 0x55555555); /* beyond max_fd_count: untouched */
  CHECK(write(fds[1], "!", 1) == 1 && read(p[0], data, 1) == 1 && data[0] == '!');
  for (int i = 0; i < 3; i++) close(fds[i]);

  /* no fds */
  CHECK(libforks_write_socket_fds(pair[0], "x", 1, NULL, 0) == 1);
  CHECK(libforks_read_socket_fds(pair[1], data, sizeof data, fds, 2) == 1 && fds[0] == -1 && fds[1] == -1);

  /* LIBFORKS_MAX_FDS in one message */
  static int many[LIBFORKS_MAX_FDS], got[LIBFORKS_MAX_FDS];
  for (int i = 0; i < LIBFORKS_MAX_FDS; i++) CHECK((many[i] = dup(p[1])) >= 0);
  CHECK(libforks_write_socket_fds(pair[0], "m", 1, many, LIBFORKS_MAX_FDS) == 1);
  for (int i = 0; i < LIBFORKS_MAX_FDS; i++) close(many[i]);
  CHECK(libforks_read_socket_fds(pair[1], data, sizeof data, got, LIBFORKS_MAX_FDS) == 1);
  for (int i = 0; i < LIBFORKS_MAX_FDS; i++) {
    CHECK(got[i] >= 0 && same_file(got[i], p[1]));
    close(got[i]);
  }

  /* a message longer than the buffer: EMSGSIZE, its fds closed */
  int mid = count_fds(0);
  CHECK(libforks_write_socket_fds(pair[0], "0123456789", 10, p, 2) == 10);
  errno = 0;
  CHECK(libforks_read_socket_fds(pair[1], data, 4, fds, 2) == -1 && errno == EMSGSIZE);
  CHECK(count_fds(0) == mid);

  /* the peer closed: end-of-file one way, EPIPE (and no SIGPIPE) the other */
  close(pair[0]);
  CHECK(libforks_read_socket_fds(pair[1], data, sizeof data, fds, 2) == 0);
  close(pair[1]);
  CHECK(libforks_socketpair(pair) == 0);
  close(pair[1]);
  errno = 0;
  CHECK(libforks_write_socket_fds(pair[0], "x", 1, &p[0], 1) == -1 && errno == EPIPE);
  close(pair[0]);
  int stream[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, stream) == 0);
  close(stream[1]);
  errno = 0;
  CHECK(libforks_write_socket_fds(stream[0], "x", 1, NULL, 0) == -1 && errno == EPIPE);
  close(stream[0]);

  /* A stream socket with a small buffer and a slow reader, the sender
   * interrupted by signals (no SA_RESTART): sendmsg returns short counts
   * or EINTR, and 1 MiB still arrives whole, the fd with the first byte. */
  struct sigaction action = {.sa_handler = on_usr1};
  CHECK(sigaction(SIGUSR1, &action, NULL) == 0);
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, stream_pair) == 0);
  int small = 4096;
  CHECK(setsockopt(stream_pair[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  for (int i = 0; i < STREAM_BYTES; i++) stream_data[i] = (char)(i * 7);
  stream_fd_to_send = p[1];
  pthread_t sender;
  CHECK(pthread_create(&sender, NULL, send_stream, NULL) == 0);
  static char received[STREAM_BYTES];
  int first_fd = -1;
  long n = libforks_read_socket_fds(stream_pair[1], received, 1000, &first_fd, 1);
  CHECK(n > 0 && first_fd >= 0 && same_file(first_fd, p[1]));
  close(first_fd);
  long total = n;
  for (int round = 0; total < STREAM_BYTES; round++) {
    usleep(100);
    if (round % 16 == 0 && !atomic_load(&stream_sent)) pthread_kill(sender, SIGUSR1);
    /* Never ask for more than the buffer holds: qemu-user fails a read
     * whose count runs past mapped memory (EFAULT) even when fewer bytes
     * would arrive. */
    long room = STREAM_BYTES - total;
    n = read(stream_pair[1], received + total, room < 4096 ? room : 4096);
    CHECK(n > 0);
    total += n;
  }
  void *result;
  CHECK(pthread_join(sender, &result) == 0 && (long)result == STREAM_BYTES);
  CHECK(memcmp(received, stream_data, STREAM_BYTES) == 0);
  CHECK(interrupted > 0);
  close(stream_pair[0]);
  close(stream_pair[1]);

  /* signals while a receive blocks: EINTR is retried */
  interrupted = 0;
  CHECK(libforks_socketpair(eintr_pair) == 0);
  pthread_t receiver;
  CHECK(pthread_create(&receiver, NULL, receive_through_signals, NULL) == 0);
  for (int i = 0; i < 5; i++) {
    usleep(20000);
    CHECK(pthread_kill(receiver, SIGUSR1) == 0);
  }
  usleep(20000);
  CHECK(libforks_write_socket_fds(eintr_pair[0], "later", 5, &p[0], 1) == 5);
  CHECK(pthread_join(receiver, &result) == 0 && (long)result >= 0);
  CHECK(interrupted >= 1); /* signals may merge under load */
  close((int)(long)result);
  close(eintr_pair[0]);
  close(eintr_pair[1]);

  close(p[0]);
  close(p[1]);
  CHECK(count_fds(0) == before);
  return 0;
}
