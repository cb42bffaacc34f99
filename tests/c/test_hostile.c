/* 100,000 random frames from hostile peers on live connections while
 * another client keeps forking: every fork succeeds, the server survives.
 *
 * Each hostile child (a child of the server, sending on its own
 * connection) mixes well-formed requests with random fields (4 in 5)
 * and random bytes, with 0-4 random fds attached, FRAMES_PER_PEER times.
 * The server discards what it cannot decode without closing the connection,
 * so afterwards the same child's own request must still be answered; then
 * the next child takes over. */
#include "check.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define FRAMES 100000
#define FRAMES_PER_PEER 2000

static libforks_ServerConn conn;
static atomic_int done;

static void entry_hostile(libforks_ServerConn own, int socket_fd) {
  int fd = libforks_conn_fd(own);
  unsigned seed = (unsigned)getpid();
  int sent = 0;
  unsigned char frame[6000];
  while (sent < FRAMES_PER_PEER) {
    size_t len;
    if (rand_r(&seed) % 5 != 0) {
      struct raw_request h = {0x4b52464c, 1, (uint16_t)(RAW_KILL_ALL + rand_r(&seed) % 2), (uint32_t)(rand_r(&seed) % 2) << 5,
                         0, 0, 0, 0, 0, 0, 0};
      h.number = h.op == 2 ? 0 : (rand_r(&seed) % 2 ? -1 : (int32_t)(rand_r(&seed) % 100000 + 1));
      if (h.op == 3) h.flags = 1u << 5; /* waits never block: WNOHANG */
      memcpy(frame, &h, sizeof h);
      len = sizeof h;
    } else {
      len = 1 + rand_r(&seed) % sizeof frame;
      for (size_t i = 0; i < len; i++) frame[i] = (unsigned char)rand_r(&seed);
      if (rand_r(&seed) % 2) memcpy(frame, "LFRK", 4 < len ? 4 : len);
    }
    int pipes[2][2], fds[4], count = rand_r(&seed) % 5;
    if (pipe(pipes[0]) || pipe(pipes[1])) _exit(2);
    for (int i = 0; i < 4; i++) fds[i] = pipes[i / 2][i % 2];
    if (len == sizeof(struct raw_request) && count == 0) count = 1;
    int ok = libforks_write_socket_fds(fd, frame, len, fds, count) == (int)len;
    for (int i = 0; i < 4; i++) close(fds[i]);
    if (!ok) _exit(3); /* the server closed this child's connection */
    sent++;
    /* drain replies to the well-formed ones: not needed, pipes closed */
  }
  /* The socket still serves this child after all that garbage. */
  if (libforks_kill_all(own, 0) != libforks_OK) _exit(4);
  if (write(socket_fd, &sent, sizeof sent) != sizeof sent) _exit(1);
  _exit(0);
}

static void *forker(void *arg) {
  long *forks = arg;
  while (!atomic_load(&done)) {
    pid_t pid;
    int exit_fd;
    CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_exit3));
    libforks_ExitEvent event = read_exit_event(exit_fd, 10000);
    CHECK(event.pid == pid && WEXITSTATUS(event.wait_status) == 3);
    (*forks)++;
  }
  return NULL;
}

int main(void) {
  test_deadline(110);
  signal(SIGPIPE, SIG_IGN);
  CHECK_OK(libforks_start(&conn));
  long forks = 0;
  pthread_t thread;
  CHECK(pthread_create(&thread, NULL, forker, &forks) == 0);
  long frames = 0, peers = 0;
  double start = now_ms();
  while (frames < FRAMES) {
    int socket_fd, exit_fd;
    CHECK_OK(libforks_fork(conn, NULL, &socket_fd, &exit_fd, entry_hostile));
    int sent = 0;
    CHECK(read(socket_fd, &sent, sizeof sent) == sizeof sent);
    close(socket_fd);
    CHECK(sent == FRAMES_PER_PEER);
    CHECK(WEXITSTATUS(read_exit_event(exit_fd, 10000).wait_status) == 0);
    frames += sent;
    peers++;
  }
  atomic_store(&done, 1);
  CHECK(pthread_join(thread, NULL) == 0);
  printf("%ld frames from %ld peers in %.0f ms; %ld forks meanwhile\n", frames, peers, now_ms() - start, forks);
  CHECK(forks > 0);
  CHECK_OK(libforks_kill_all(conn, 0)); /* still serving */
  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
