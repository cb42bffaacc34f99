/* One hostile child does everything a child can do against its server at
 * once, and the owner does not notice beyond its own numbers.
 *
 * The hostile child H ignores SIGTERM, sends a request whose reply pipe it
 * filled (O_NONBLOCK cleared), forks a child with an exit pipe it filled
 * the same way, waits for each of its siblings, holds as many pending
 * waits and forks as it may, starts a grandchild G that floods the server
 * for FLOOD_MS (garbage frames, requests with full reply pipes, kill_all,
 * wait), then shuts its own connection down (SHUT_RDWR).
 *
 * Meanwhile the owner's fork + wait round trips take under 100 ms (99th
 * percentile; see below),
 * H's waits for its siblings get ECHILD and the siblings' statuses reach
 * the owner, the server uses under 100 ms of CPU in the second after the
 * flood, stop answers within 100 ms, and everything is gone within 2 s.
 * Then the same again with an owner that is SIGKILLed during the flood:
 * the server and all its children are gone within 2 s. */
#include "check.h"

#define SIBLINGS 3
#define FLOOD_MS 2500

/* Sibling i exits 10 + i when a byte arrives. */
static void entry_sibling(libforks_ServerConn conn, int socket_fd) {
  (void)conn;
  int i;
  char byte;
  if (read(socket_fd, &i, sizeof i) != sizeof i || read(socket_fd, &byte, 1) != 1) _exit(1);
  _exit(10 + i);
}

static void entry_flooder(libforks_ServerConn conn, int socket_fd) {
  (void)socket_fd;
  signal(SIGTERM, SIG_IGN);
  int fd = libforks_conn_fd(conn);
  int full[2];
  if (pipe(full) != 0) _exit(2);
  fill_pipe(full[1]);
  unsigned seed = (unsigned)getpid();
  double start = now_ms();
  while (now_ms() - start < FLOOD_MS) {
    unsigned char garbage[64];
    for (size_t i = 0; i < sizeof garbage; i++) garbage[i] = (unsigned char)rand_r(&seed);
    libforks_write_socket_fds(fd, garbage, sizeof garbage, &full[1], 1);
    send_raw_request(fd, RAW_KILL_ALL, SIGKILL, 0, &full[1], 1);
    send_raw_request(fd, RAW_WAIT, -1, 0, &full[1], 1);
    libforks_kill_all(conn, SIGKILL);
    libforks_wait(conn, -1, NULL, WNOHANG, NULL);
  }
  for (;;) pause();
}

static void entry_hostile(libforks_ServerConn conn, int socket_fd) {
  signal(SIGTERM, SIG_IGN);
  pid_t siblings[SIBLINGS];
  if (read(socket_fd, siblings, sizeof siblings) != sizeof siblings) _exit(1);
  int fd = libforks_conn_fd(conn);

  /* a reply pipe it filled */
  int reply[2];
  if (pipe(reply) != 0) _exit(2);
  fill_pipe(reply[1]);
  if (send_raw_request(fd, RAW_KILL_ALL, 0, 0, &reply[1], 1) != 0) _exit(3);

  /* an exit pipe it filled, for a child it then kills */
  int exit_pipe[2], reply_fd;
  if (pipe(exit_pipe) != 0) _exit(4);
  fill_pipe(exit_pipe[1]);
  libforks_ForkRequest request = {.size = sizeof request, .entrypoint = entry_exit3, .socket_fd = -1,
                                  .exit_fd = exit_pipe[1]};
  if (libforks_fork_async(conn, &request, &reply_fd) != libforks_OK) _exit(5);
  fcntl(exit_pipe[1], F_SETFL, fcntl(exit_pipe[1], F_GETFL) & ~O_NONBLOCK);

  /* its siblings: not its to wait for */
  int refused = 0;
  for (int i = 0; i < SIBLINGS; i++) {
    int status;
    if (libforks_wait(conn, siblings[i], &status, 0, NULL) == libforks_WAIT_ERROR && libforks_last_errno() == ECHILD)
      refused++;
  }

  /* the flooder, then as many children and pending waits as it may have */
  if (libforks_fork(conn, NULL, NULL, NULL, entry_flooder) != libforks_OK) _exit(6);
  int forked = 0;
  while (libforks_fork(conn, NULL, NULL, NULL, entry_pause) == libforks_OK) forked++;
  for (int i = 0; i < 2 * LIBFORKS_MAX_PENDING_PER_PEER; i++) {
    int wait_fd;
    if (libforks_wait_async(conn, -1, 0, &wait_fd) != libforks_OK) break;
  }

  int report[2] = {refused, forked};
  if (write(socket_fd, report, sizeof report) != sizeof report) _exit(7);
  if (shutdown(fd, SHUT_RDWR) != 0) _exit(8);
  for (int i = 0; i < 1000; i++) libforks_kill_all(conn, SIGKILL); /* fails at once now */
  for (;;) pause();
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

struct setup {
  pid_t siblings[SIBLINGS];
  int sibling_fds[SIBLINGS];
  int hostile_fd;
  double flood_started;
};

static void start_hostile(libforks_ServerConn conn, struct setup *s) {
  for (int i = 0; i < SIBLINGS; i++) {
    CHECK_OK(libforks_fork(conn, &s->siblings[i], &s->sibling_fds[i], NULL, entry_sibling));
    CHECK(write(s->sibling_fds[i], &i, sizeof i) == sizeof i);
  }
  CHECK_OK(libforks_fork(conn, NULL, &s->hostile_fd, NULL, entry_hostile));
  CHECK(write(s->hostile_fd, s->siblings, sizeof s->siblings) == sizeof s->siblings);
  CHECK(readable_within(s->hostile_fd, 30000));
  int report[2];
  CHECK(read(s->hostile_fd, report, sizeof report) == sizeof report);
  s->flood_started = now_ms();
  printf("hostile child: %d of %d sibling waits refused, %d children forked before its quota\n", report[0],
         SIBLINGS, report[1]);
  CHECK(report[0] == SIBLINGS);
  CHECK(report[1] <= LIBFORKS_MAX_CHILDREN_PER_PEER);
}

/* The server and its children (all of them are its direct children). */
static int server_tree(pid_t server, pid_t *out, int max) {
  int n = 0;
  out[n++] = server;
  DIR *dir = opendir("/proc");
  CHECK(dir != NULL);
  for (struct dirent *e; (e = readdir(dir));) {
    pid_t pid = atoi(e->d_name);
    if (pid <= 0) continue;
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    if (fgets(line, sizeof line, f)) {
      const char *rest = strrchr(line, ')');
      int ppid = 0;
      if (rest && sscanf(rest + 2, "%*c %d", &ppid) == 1 && ppid == server && n < max) out[n++] = pid;
    }
    fclose(f);
  }
  closedir(dir);
  return n;
}

static void check_tree_gone(const pid_t *tree, int n, const char *after) {
  double start = now_ms();
  for (int i = 0; i < n; i++) {
    double left = 2000 - (now_ms() - start);
    if (left < 0 || wait_exited(tree[i], (int)left) < 0) {
      fprintf(stderr, "pid %d of the server's tree still there 2 s after %s\n", tree[i], after);
      CHECK(0);
    }
  }
  printf("after %s: %d processes gone in %.0f ms\n", after, n, now_ms() - start);
}

static void with_owner(void) {
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  pid_t server = libforks_get_server_pid(conn);
  struct setup s;
  start_hostile(conn, &s);

  static double took[100000];
  int trips = 0;
  while (now_ms() - s.flood_started < FLOOD_MS - 500 && trips < 100000) {
    double start = now_ms();
    pid_t pid;
    int status;
    CHECK_OK(libforks_fork(conn, &pid, NULL, NULL, entry_exit3));
    CHECK_OK(libforks_wait(conn, pid, &status, 0, NULL));
    CHECK(WEXITSTATUS(status) == 3);
    took[trips++] = now_ms() - start;
  }
  qsort(took, (size_t)trips, sizeof took[0], compare_doubles);
  double p99 = took[trips * 99 / 100], worst = took[trips - 1];
  printf("%d fork + wait round trips during the flood: median %.2f ms, p99 %.2f ms, slowest %.1f ms\n", trips,
         took[trips / 2], p99, worst);
  /* The 99th percentile, not the slowest: on these shared 2-core machines
   * the same loop with no hostile child at all has single trips of 0.5 s
   * (waiting for a CPU). A server held by a peer never answers. */
  CHECK(trips >= 100 && p99 < 100 && worst < 2000);

  for (int i = 0; i < SIBLINGS; i++) {
    CHECK(write(s.sibling_fds[i], "x", 1) == 1);
    int status;
    CHECK_OK(libforks_wait(conn, s.siblings[i], &status, 0, NULL));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 10 + i);
    close(s.sibling_fds[i]);
  }

  double flood_left = FLOOD_MS + 200 - (now_ms() - s.flood_started);
  if (flood_left > 0) usleep((useconds_t)(flood_left * 1000));
  double cpu = cpu_ms_over(server, 1000);
  printf("server CPU in the second after the flood: %.0f ms\n", cpu);
  CHECK(cpu < 100);

  static pid_t tree[LIBFORKS_MAX_CHILDREN + 1];
  int n = server_tree(server, tree, LIBFORKS_MAX_CHILDREN + 1);
  int reply_fd;
  double start = now_ms();
  CHECK_OK(libforks_stop_async(conn, false, false, &reply_fd));
  CHECK(readable_within(reply_fd, 100));
  libforks_Reply reply;
  CHECK_OK(libforks_reply_read(reply_fd, &reply));
  printf("stop answered in %.1f ms\n", now_ms() - start);
  CHECK_OK(libforks_stop_finish(conn));
  check_tree_gone(tree, n, "stop");
  close(s.hostile_fd);
}

static void owner_killed(void) {
  int report[2];
  CHECK(pipe(report) == 0);
  pid_t owner = fork();
  CHECK(owner >= 0);
  if (owner == 0) {
    close(report[0]);
    libforks_ServerConn conn;
    CHECK_OK(libforks_start(&conn));
    struct setup s;
    start_hostile(conn, &s);
    pid_t server = libforks_get_server_pid(conn);
    CHECK(write(report[1], &server, sizeof server) == sizeof server);
    for (;;) pause();
  }
  close(report[1]);
  CHECK(readable_within(report[0], 30000));
  pid_t server;
  CHECK(read(report[0], &server, sizeof server) == sizeof server);
  close(report[0]);
  usleep(300 * 1000); /* in the middle of the flood */
  static pid_t tree[LIBFORKS_MAX_CHILDREN + 1];
  int n = server_tree(server, tree, LIBFORKS_MAX_CHILDREN + 1);
  CHECK(kill(owner, SIGKILL) == 0);
  CHECK(waitpid(owner, NULL, 0) == owner);
  check_tree_gone(tree, n, "the owner's SIGKILL");
}

int main(void) {
  test_deadline(100);
  signal(SIGPIPE, SIG_IGN);
  with_owner();
  owner_killed();
  return 0;
}
