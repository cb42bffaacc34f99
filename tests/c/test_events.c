/* Event streams: answers and exits as tagged records on one pipe. A
 * reader that does not read for a while loses nothing: 600 forks with
 * their exits, sent while the stream is full, all arrive once, in order
 * per child (the answer before the exit); the server stops reading the
 * connection meanwhile (WOULD_BLOCK) instead of dropping or blocking, and
 * serves it again once the reader reads. Waits and kills answer there
 * too; a closed read end closes the stream. */
#include "check.h"

#define FORKS 600


static int replied[FORKS], exited[FORKS];

/* Reads `count` records from the stream, waiting up to 5 s for each read. */
static void read_records(int fd, libforks_EventRecord *records, int count) {
  int have = 0;
  while (have < count) {
    ssize_t n = libforks_events_read(fd, &records[have], (size_t)(count - have) * sizeof records[0], 5000);
    CHECK(n > 0);
    have += (int)(n / (ssize_t)sizeof records[0]);
  }
}

/* Exits 0 when its connection, a child's, may not spawn without a socket. */
static void entry_outcome_in_answer(libforks_ServerConn conn, int socket_fd) {
  (void)socket_fd;
  _exit(libforks_spawn_outcome_in_answer(conn) ? 1 : 0);
}
static pid_t pids[FORKS];

static int drain(int fd, int timeout_ms) {
  libforks_EventRecord records[64];
  ssize_t n = libforks_events_read(fd, records, sizeof records, timeout_ms);
  if (n < 0) {
    CHECK(errno == EAGAIN);
    return 0;
  }
  CHECK(n > 0 && n % (ssize_t)sizeof records[0] == 0);
  for (ssize_t i = 0; i < n / (ssize_t)sizeof records[0]; i++) {
    libforks_EventRecord *r = &records[i];
    CHECK(r->magic == libforks_EVENT_MAGIC && r->tag < FORKS);
    if (r->kind == libforks_EVENT_REPLY) {
      CHECK(r->result == libforks_OK && r->pid > 0 && replied[r->tag] == 0 && exited[r->tag] == 0);
      replied[r->tag] = 1;
      pids[r->tag] = r->pid;
    } else {
      CHECK(r->kind == libforks_EVENT_EXIT && replied[r->tag] == 1 && exited[r->tag] == 0);
      CHECK(r->pid == pids[r->tag] && WIFEXITED(r->wait_status) && WEXITSTATUS(r->wait_status) == 0);
      exited[r->tag] = 1;
    }
  }
  return (int)(n / (ssize_t)sizeof records[0]);
}

int main(void) {
  test_deadline(90);
  CHECK(sizeof(libforks_EventRecord) == libforks_EVENT_RECORD_SIZE);
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  int fd;
  uint32_t handle;
  CHECK_OK(libforks_events_open(conn, &fd, &handle));
  CHECK(handle != 0 && (fcntl(fd, F_GETFL) & O_NONBLOCK) && (fcntl(fd, F_GETFD) & FD_CLOEXEC));

  /* Fork without reading until the server stops taking requests. */
  int sent = 0, would_block = 0, records = 0;
  while (sent < FORKS) {
    libforks_ForkRequest request = {.size = sizeof request, .entrypoint = entry_exit0, .socket_fd = -1, .exit_fd = -1,
                                    .nonblocking = true, .exit_event = true, .events = handle, .tag = (uint64_t)sent};
    int reply_fd = 0;
    libforks_Result result = libforks_fork_async(conn, &request, &reply_fd);
    if (result == libforks_WOULD_BLOCK) {
      would_block++;
      /* Give the server time to fill the stream, then read some. */
      if (would_block % 50 == 0) records += drain(fd, 100);
      else usleep(1000);
      continue;
    }
    CHECK_OK(result);
    CHECK(reply_fd == -1);
    sent++;
  }
  if (darwin_paths()) {
    /* Each datagram receiver queues 256 KiB there (sys.datagram_queue),
     * which holds every one of these requests: the sender may never see
     * the connection fill up. */
    not_on_darwin("that the requests fill the owner's connection while the stream is not read");
  } else {
    CHECK(would_block > 0);
  }
  while (records < 2 * FORKS) {
    int got = drain(fd, 5000);
    CHECK(got > 0);
    records += got;
  }
  for (int i = 0; i < FORKS; i++) CHECK(replied[i] && exited[i]);

  /* A wait and a kill answered on the stream. */
  libforks_ForkRequest sleeper = {.size = sizeof sleeper, .library = "libc.so.6", .symbol = "pause", .socket_fd = -1, .exit_fd = -1};
  int reply_fd;
  libforks_Reply reply;
  CHECK_OK(libforks_fork_async(conn, &sleeper, &reply_fd));
  CHECK_OK(libforks_reply_read(reply_fd, &reply));
  libforks_EventRequest wait = {.size = sizeof wait, .op = libforks_EVENT_OP_WAIT, .pid = reply.pid, .events = handle, .tag = 7001};
  CHECK_OK(libforks_send_event_request(conn, &wait));
  libforks_EventRequest kill = {.size = sizeof kill, .op = libforks_EVENT_OP_KILL, .pid = reply.pid, .signal = SIGKILL, .events = handle, .tag = 7002};
  CHECK_OK(libforks_send_event_request(conn, &kill));
  libforks_EventRecord got[2];
  read_records(fd, got, 2);
  CHECK(got[0].tag == 7002 && got[0].result == libforks_OK);
  CHECK(got[1].tag == 7001 && got[1].pid == reply.pid && WTERMSIG(got[1].wait_status) == SIGKILL);

  /* A caller built before the event-stream fields passes 48 as size: its
   * request is served as before, on a reply fd and an exit pipe. */
  int old_exit[2];
  CHECK(libforks_pipe(old_exit) == 0);
  libforks_ForkRequest old = {.size = 48, .entrypoint = entry_exit3, .socket_fd = -1, .exit_fd = old_exit[1],
                              .exit_event = true, .events = handle, .tag = 99};
  CHECK_OK(libforks_fork_async(conn, &old, &reply_fd));
  close(old_exit[1]);
  CHECK(reply_fd >= 0);
  CHECK_OK(libforks_reply_read(reply_fd, &reply));
  libforks_ExitEvent old_event = read_exit_event(old_exit[0], 5000);
  CHECK(old_event.pid == reply.pid && WEXITSTATUS(old_event.wait_status) == 3);
  close(old_exit[0]);

    /* Someone else's handle is refused: a request naming it is not served. */
  libforks_EventRequest bad = {.size = sizeof bad, .op = libforks_EVENT_OP_WAIT_ALL, .events = handle + 1, .tag = 1};
  CHECK_OK(libforks_send_event_request(conn, &bad));
  libforks_EventRecord none;
  CHECK(libforks_events_read(fd, &none, sizeof none, 200) == -1 && errno == EAGAIN);

  /* A program started from the request alone: its spec and fds travel
   * with it; the outcome comes on the control socket, pid and exit on the
   * stream. */
  for (int missing = 0; missing < 2; missing++) {
    int control[2], out[2];
    CHECK(libforks_socketpair(control) == 0 && libforks_pipe(out) == 0);
    static const char ok[] = "/bin/sh\0sh\0-c\0echo $X; exit 5\0X=spawned\0";
    static const char bad[] = "/nonexistent/program\0program\0X=1\0";
    int fds[1] = {out[1]}, targets[1] = {1};
    libforks_SpawnRequest spawn = {.size = sizeof spawn, .strings = missing ? bad : ok,
                                   .strings_len = missing ? sizeof bad - 1 : sizeof ok - 1,
                                   .argc = missing ? 1 : 3, .envc = 1, .fds = fds, .targets = targets, .fd_count = 1,
                                   .socket_fd = control[1], .events = handle, .tag = 8000 + (uint64_t)missing};
    CHECK_OK(libforks_spawn_async(conn, &spawn));
    close(control[1]);
    close(out[1]);
    int step = 0;
    if (missing) {
      CHECK_RESULT(libforks_read_exec_result(control[0], &step), libforks_EXEC_ERROR);
      CHECK(libforks_last_errno() == ENOENT && step == 4);
    } else {
      CHECK_OK(libforks_read_exec_result(control[0], &step));
      char text[32] = {0};
      CHECK(readable_within(out[0], 5000) && read(out[0], text, sizeof text - 1) == 8 && strcmp(text, "spawned\n") == 0);
    }
    close(out[0]);
    libforks_EventRecord events[2];
    read_records(fd, events, 2);
    CHECK(events[0].kind == libforks_EVENT_REPLY && events[0].tag == 8000 + (uint64_t)missing && events[0].pid > 0);
    CHECK(events[1].kind == libforks_EVENT_EXIT && events[1].pid == events[0].pid);
    CHECK(WEXITSTATUS(events[1].wait_status) == (missing ? 127 : 5));
  }

  /* The same without a control socket (socket_fd -1), where the owner's
   * programs start in place (Linux): the answer says whether the program
   * was exec'd, and which step failed. Elsewhere it is refused: on the
   * darwin paths, and under qemu-user, which runs a CLONE_VM | CLONE_VFORK
   * clone as a plain fork, so an in-place child's report could not reach
   * the server. */
  if (!libforks_spawn_outcome_in_answer(conn)) {
    CHECK(darwin_paths() || test_emulated());
    if (test_emulated()) printf("under emulation: no outcome in the answer (qemu-user's clone shares no memory)\n");
    libforks_SpawnRequest spawn = {.size = sizeof spawn, .strings = "/bin/true\0true\0", .strings_len = 15, .argc = 1,
                                   .socket_fd = -1, .events = handle, .tag = 8100};
    CHECK_RESULT(libforks_spawn_async(conn, &spawn), libforks_INVALID_ARGUMENT);
  }
  for (int missing = 0; missing < 2 && libforks_spawn_outcome_in_answer(conn); missing++) {
    int out[2];
    CHECK(libforks_pipe(out) == 0);
    static const char ok[] = "/bin/sh\0sh\0-c\0echo $X; exit 6\0X=in answer\0";
    static const char bad[] = "/nonexistent/program\0program\0X=1\0";
    int fds[1] = {out[1]}, targets[1] = {1};
    int before = count_fds(0);
    libforks_SpawnRequest spawn = {.size = sizeof spawn, .strings = missing ? bad : ok,
                                   .strings_len = missing ? sizeof bad - 1 : sizeof ok - 1,
                                   .argc = missing ? 1 : 3, .envc = 1, .fds = fds, .targets = targets, .fd_count = 1,
                                   .socket_fd = -1, .events = handle, .tag = 8100 + (uint64_t)missing};
    CHECK_OK(libforks_spawn_async(conn, &spawn));
    CHECK(count_fds(0) == before); /* no socket made or kept for it */
    close(out[1]);
    libforks_EventRecord events[2];
    read_records(fd, events, 2);
    CHECK(events[0].kind == libforks_EVENT_REPLY && events[0].tag == 8100 + (uint64_t)missing);
    CHECK(events[0].result == libforks_OK && events[0].pid > 0);
    if (missing) {
      CHECK(events[0].exec_error == ENOENT && events[0].exec_step == 4);
    } else {
      CHECK(events[0].exec_error == 0 && events[0].exec_step == 0);
      char text[32] = {0};
      CHECK(readable_within(out[0], 5000) && read(out[0], text, sizeof text - 1) == 10 && strcmp(text, "in answer\n") == 0);
    }
    close(out[0]);
    CHECK(events[1].kind == libforks_EVENT_EXIT && events[1].pid == events[0].pid);
    CHECK(WEXITSTATUS(events[1].wait_status) == (missing ? 127 : 6));
  }
  /* A child's connection cannot: its programs are ordinary forks. */
  pid_t reporter;
  int reporter_exit;
  CHECK_OK(libforks_fork(conn, &reporter, NULL, &reporter_exit, entry_outcome_in_answer));
  libforks_ExitEvent reported;
  CHECK(readable_within(reporter_exit, 5000) && read(reporter_exit, &reported, sizeof reported) == sizeof reported);
  CHECK(reported.pid == reporter && WIFEXITED(reported.wait_status) && WEXITSTATUS(reported.wait_status) == 0);
  close(reporter_exit);
  CHECK(!libforks_spawn_outcome_in_answer((libforks_ServerConn){0}));

  /* The server ends: end-of-file. */
  CHECK_OK(libforks_stop(conn, true));
  CHECK(libforks_events_read(fd, &none, sizeof none, 5000) == 0);
  close(fd);
  return 0;
}
