/* libforks_socket_hangup. On the darwin paths (SOCK_DGRAM pairs, where
 * XNU wakes no receive waiting on the survivor when an end closes) it
 * sends an empty message, which the peer reads as end-of-file; it never
 * waits, so a full peer queue is ENOBUFS and a gone peer EPIPE. On Linux
 * it sends nothing: a SOCK_SEQPACKET peer's end-of-file comes with the
 * last close, and an empty record would end it while copies remain. */
#include "check.h"
#include <pthread.h>
#include <sys/socket.h>

static int pair[2];
static void *receive_waiting(void *arg) {
  (void)arg;
  char data[8];
  int fd = -2;
  return (void *)(long)libforks_read_socket_fds(pair[1], data, sizeof data, &fd, 1);
}

int main(void) {
  test_deadline(20);
  int before = count_fds(0);
  char data[1000] = {0};
  int fd = -2;

  errno = 0;
  CHECK(libforks_socket_hangup(-1) == -1 && errno == EINVAL);

  /* a receive already waiting in another thread: hang-up then close wakes
   * it with end-of-file (on XNU the close alone would not) */
  CHECK(libforks_socketpair(pair) == 0);
  pthread_t thread;
  CHECK(pthread_create(&thread, NULL, receive_waiting, NULL) == 0);
  usleep(100 * 1000);
  CHECK(libforks_socket_hangup(pair[0]) == 0);
  CHECK(close(pair[0]) == 0);
  void *received;
  CHECK(pthread_join(thread, &received) == 0 && (long)received == 0);
  close(pair[1]);

  /* what it sends: an empty message on the darwin paths, nothing on Linux
   * (a message sent after it is the first thing read) */
  CHECK(libforks_socketpair(pair) == 0 && libforks_set_nonblocking(pair[1], true) == 0);
  CHECK(libforks_socket_hangup(pair[0]) == 0);
  CHECK(libforks_write_socket_fds(pair[0], "after", 5, NULL, 0) == 5);
  long n = libforks_read_socket_fds(pair[1], data, sizeof data, &fd, 1);
  if (darwin_paths()) {
    CHECK(n == 0);
    n = libforks_read_socket_fds(pair[1], data, sizeof data, &fd, 1);
  }
  CHECK(n == 5 && memcmp(data, "after", 5) == 0 && fd == -1);
  errno = 0;
  CHECK(libforks_read_socket_fds(pair[1], data, sizeof data, &fd, 1) == -1 && errno == EAGAIN);

  /* the peer gone: EPIPE on the darwin paths (never SIGPIPE: its default
   * disposition would end this test), nothing to say on Linux */
  close(pair[1]);
  errno = 0;
  n = libforks_socket_hangup(pair[0]);
  CHECK(darwin_paths() ? n == -1 && errno == EPIPE : n == 0);
  close(pair[0]);

  /* darwin paths, a full peer queue: ENOBUFS at once, never a wait (XNU
   * refuses a datagram for a full receiver); once the peer reads one
   * message, it fits. (Linux sends nothing, so nothing is refused.) */
  if (darwin_paths()) {
    CHECK(libforks_socketpair(pair) == 0 && libforks_set_nonblocking(pair[0], true) == 0);
    /* Filled with 999-byte messages, then 1-byte ones: what is left is
     * less than one costs (its bytes and a 16-byte address), and less than
     * the empty message's 16 bytes too. */
    int queued = 0;
    while (libforks_write_socket_fds(pair[0], data, 999, NULL, 0) == 999) queued++;
    CHECK(errno == ENOBUFS && queued > 0);
    while (libforks_write_socket_fds(pair[0], data, 1, NULL, 0) == 1) queued++;
    CHECK(errno == ENOBUFS);
    errno = 0;
    CHECK(libforks_socket_hangup(pair[0]) == -1 && errno == ENOBUFS);
    CHECK(libforks_read_socket_fds(pair[1], data, sizeof data, &fd, 1) == 999);
    CHECK(libforks_socket_hangup(pair[0]) == 0);
    CHECK(close(pair[0]) == 0);
    for (int i = 1; i < queued; i++) CHECK(libforks_read_socket_fds(pair[1], data, sizeof data, &fd, 1) > 0);
    CHECK(libforks_read_socket_fds(pair[1], data, sizeof data, &fd, 1) == 0);
    close(pair[1]);
  }

  CHECK(count_fds(0) == before);
  printf("ok\n");
  return 0;
}
