/* A stop reports every exit on the event stream, even when the stream's
 * pipe is full as the last child is reaped: 600 children with their exits
 * on one stream (150 KiB of records; a pipe holds 64 KiB) are stopped
 * while nobody reads it for half a second. The server must keep what does
 * not fit, write it once the reader reads, and only then answer the stop
 * and end the stream, so all 600 exits arrive before end-of-file. */
#include "check.h"
#include <pthread.h>

#define CHILDREN 600

static int stream_fd;
static int exits;
static pid_t pids[CHILDREN];

static void *read_late(void *unused) {
  (void)unused;
  usleep(500 * 1000);
  libforks_EventRecord records[64];
  for (;;) {
    ssize_t n = libforks_events_read(stream_fd, records, sizeof records, 20000);
    CHECK(n >= 0);
    if (n == 0) return NULL; /* end-of-file: the server is gone */
    for (ssize_t i = 0; i < n / (ssize_t)sizeof records[0]; i++) {
      libforks_EventRecord *r = &records[i];
      CHECK(r->magic == libforks_EVENT_MAGIC && r->kind == libforks_EVENT_EXIT && r->tag < CHILDREN);
      CHECK(r->pid == pids[r->tag] && WIFSIGNALED(r->wait_status) && WTERMSIG(r->wait_status) == SIGTERM);
      exits++;
    }
  }
}

int main(void) {
  test_deadline(120);
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  uint32_t handle;
  CHECK_OK(libforks_events_open(conn, &stream_fd, &handle));
  /* Every answer and exit on the stream; the answers are read here. */
  int answered = 0;
  for (int i = 0; i < CHILDREN; i++) {
    libforks_ForkRequest request = {.size = sizeof request, .entrypoint = entry_pause, .socket_fd = -1, .exit_fd = -1,
                                    .exit_event = true, .events = handle, .tag = (uint64_t)i};
    int reply_fd;
    CHECK_OK(libforks_fork_async(conn, &request, &reply_fd));
    CHECK(reply_fd == -1);
    libforks_EventRecord r;
    CHECK(libforks_events_read(stream_fd, &r, sizeof r, 5000) == (ssize_t)sizeof r);
    CHECK(r.kind == libforks_EVENT_REPLY && r.result == libforks_OK && r.tag == (uint64_t)i && r.pid > 0);
    pids[i] = r.pid;
    answered++;
  }
  CHECK(answered == CHILDREN);
  pthread_t reader;
  CHECK(pthread_create(&reader, NULL, read_late, NULL) == 0);
  CHECK_OK(libforks_stop(conn, true));
  CHECK(pthread_join(reader, NULL) == 0);
  CHECK(exits == CHILDREN);
  close(stream_fd);
  return 0;
}
