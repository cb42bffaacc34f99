/* The C tests' harness: each test_*.c is one program that exits 0 when
 * every check held. A failed check prints where and what, then exits 1;
 * alarm() turns a hang into a failure. */
#ifndef LIBFORKS_CHECK_H
#define LIBFORKS_CHECK_H

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libforks.h>
#include <libforks_ext.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The darwin-paths suite (tests/darwin-paths/run.sh) runs these tests
 * against a Linux build taking macOS's code paths. A check that cannot
 * hold there is adjusted under `if (darwin_paths())`, saying why with
 * not_on_darwin(), never dropped silently. */
static inline int darwin_paths(void) {
  const char *value = getenv("LIBFORKS_DARWIN_PATHS");
  return value != NULL && strcmp(value, "1") == 0;
}
#define not_on_darwin(why) fprintf(stderr, "%s:%d: darwin paths: not checked: %s\n", __FILE__, __LINE__, why)

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s (errno %d)\n", __FILE__,        \
              __LINE__, #cond, errno);                                         \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

#define CHECK_RESULT(expr, expected)                                           \
  do {                                                                         \
    libforks_Result got_ = (expr);                                             \
    if (got_ != (expected)) {                                                  \
      fprintf(stderr, "%s:%d: %s gave %s (last errno %d), expected %s\n",      \
              __FILE__, __LINE__, #expr, libforks_result_string(got_),         \
              libforks_last_errno(),                                           \
              libforks_result_string(expected));                               \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

#define CHECK_OK(expr) CHECK_RESULT(expr, libforks_OK)

/* True when the test runs under qemu-user (scripts/test-targets.sh sets
 * LIBFORKS_TEST_EMULATED=1 for the arm64 targets): every system call and
 * fork is many times slower there. */
static inline int test_emulated(void) {
  const char *value = getenv("LIBFORKS_TEST_EMULATED");
  return value != NULL && strcmp(value, "1") == 0;
}

/* Every test must finish; a hang is a failure. Under emulation the
 * deadline is five times longer: it says "does not hang", not how fast. */
static inline void test_deadline(unsigned seconds) { alarm(test_emulated() ? seconds * 5 : seconds); }

/* The program process `pid` runs, as /proc/<pid>/exe names it. Under
 * qemu-user that link names the emulator; binfmt_misc then passes the
 * program's path as the emulator's first argument (cmdline[1]). */
static inline void program_of(pid_t pid, char *out, size_t size) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
  ssize_t n = readlink(path, out, size - 1);
  CHECK(n > 0);
  out[n] = 0;
  const char *name = strrchr(out, '/');
  name = name ? name + 1 : out;
  if (strncmp(name, "qemu-", 5) != 0) return;
  snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0);
  char cmdline[4096];
  ssize_t got = read(fd, cmdline, sizeof cmdline - 1);
  close(fd);
  CHECK(got > 0);
  cmdline[got] = 0;
  size_t first = strlen(cmdline) + 1;
  CHECK((ssize_t)first < got);
  snprintf(out, size, "%s", cmdline + first);
  /* A program exec'd from an fd (fexecve of a memfd) is "/dev/fd/N" there;
   * the emulator maps the program from that file, so its maps name it. */
  if (strncmp(out, "/dev/fd/", 8) != 0 && strncmp(out, "/proc/", 6) != 0) return;
  snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
  FILE *maps = fopen(path, "r");
  CHECK(maps != NULL);
  char line[4096];
  while (fgets(line, sizeof line, maps)) {
    char *memfd = strstr(line, "/memfd:");
    if (memfd == NULL) continue;
    memfd[strcspn(memfd, "\n")] = 0;
    snprintf(out, size, "%s", memfd);
    break;
  }
  fclose(maps);
}

static inline double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Reads the ExitEvent from an exit fd (waiting at most timeout_ms), then
 * checks that end-of-file follows, and closes the fd. */
static inline libforks_ExitEvent read_exit_event(int exit_fd, int timeout_ms) {
  struct pollfd p = {.fd = exit_fd, .events = POLLIN};
  CHECK(poll(&p, 1, timeout_ms) == 1);
  libforks_ExitEvent event;
  CHECK(read(exit_fd, &event, sizeof event) == (ssize_t)sizeof event);
  char extra;
  CHECK(read(exit_fd, &extra, 1) == 0);
  close(exit_fd);
  return event;
}

/* Number of open fds of a process (pid 0: this one). */
static inline int count_fds(pid_t pid) {
  char path[64];
  if (pid == 0) snprintf(path, sizeof path, "/proc/self/fd");
  else snprintf(path, sizeof path, "/proc/%d/fd", pid);
  DIR *dir = opendir(path);
  CHECK(dir != NULL);
  int count = 0;
  for (struct dirent *e; (e = readdir(dir));) {
    if (e->d_name[0] != '.') count++;
  }
  closedir(dir);
  return count - (pid == 0); /* the directory's own fd */
}

/* Waits up to 2 s for pid's fd count to come back to `expected`: the
 * server closes a reply pipe or an exit pipe just after writing to it, so
 * the reader can count before the close. Lists the fds if it never does. */
static inline void check_fd_count_settles(pid_t pid, int expected) {
  double start = now_ms();
  while (count_fds(pid) != expected && now_ms() - start < 2000) usleep(1000);
  int now = count_fds(pid);
  if (now != expected) {
    fprintf(stderr, "fds of %d: %d expected, %d now\n", pid, expected, now);
    char command[128];
    snprintf(command, sizeof command, "ls -l /proc/%d/fd >&2", pid);
    if (system(command)) {}
  }
  CHECK(now == expected);
}

/* True when pid is gone, or a zombie (exited, not yet reaped by init). */
static inline int process_exited(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 1;
  char state = 0;
  int fields = fscanf(f, "%*d %*s %c", &state);
  fclose(f);
  return fields != 1 || state == 'Z';
}

/* Waits until pid has exited; returns the milliseconds it took, or -1. */
static inline double wait_exited(pid_t pid, int timeout_ms) {
  double start = now_ms();
  while (now_ms() - start < timeout_ms) {
    if (process_exited(pid)) return now_ms() - start;
    usleep(2000);
  }
  return -1;
}

/* For tests of what becomes of a server when its owner goes: forks an
 * owner process that runs `setup` (which starts a server and stores
 * `count` pids in `pids`; a nonzero return is the owner's exit code), sends
 * those pids back through a pipe, then pauses for ever, or exits 0 when
 * `then_exit` is set. Returns the owner's pid, with `pids` filled in. */
typedef int (*owner_setup)(pid_t *pids, void *context);
static inline pid_t start_owner(owner_setup setup, void *context, pid_t *pids, size_t count, int then_exit) {
  int report[2];
  CHECK(pipe(report) == 0);
  const ssize_t size = (ssize_t)(count * sizeof *pids);
  pid_t owner = fork();
  CHECK(owner >= 0);
  if (owner == 0) {
    close(report[0]);
    int code = setup(pids, context);
    if (code != 0) _exit(code);
    if (write(report[1], pids, size) != size) _exit(100);
    if (then_exit) exit(0);
    for (;;) pause();
  }
  close(report[1]);
  CHECK(read(report[0], pids, size) == size);
  close(report[0]);
  return owner;
}

/* Checks that every pid in `pids` (pids[0] being the server) has exited
 * within `timeout_ms`, naming each one that has not. */
static inline void check_all_exit(const pid_t *pids, size_t count, int timeout_ms, const char *after) {
  for (size_t i = 0; i < count; i++) {
    double took = wait_exited(pids[i], timeout_ms);
    if (took < 0) fprintf(stderr, "%s %d still alive %d ms after %s\n", i ? "child" : "server", pids[i], timeout_ms, after);
    CHECK(took >= 0);
  }
}

/* zig/protocol.zig's request header, for tests that speak the wire
 * protocol themselves, as a hostile peer would. */
struct raw_request {
  uint32_t magic;
  uint16_t version, op;
  uint32_t flags;
  int32_t number;
  uint64_t entry;
  uint32_t payload_len, signal;
  uint64_t tag; /* with an event stream (Flags.to_events) */
  uint32_t events, reserved;
};
enum { RAW_FORK = 1, RAW_KILL_ALL = 2, RAW_WAIT = 3, RAW_WAIT_ALL = 4, RAW_STOP = 5 };

/* Sends one request with `fds` attached (the first is the reply pipe's
 * write end) on a connection's socket. Returns 0, or -1 with errno. */
static inline int send_raw_request(int conn_fd, uint16_t op, int32_t number, uint32_t flags,
                                   const int *fds, size_t fd_count) {
  struct raw_request r = {0x4b52464c, 1, op, flags, number, 0, 0, 0, 0, 0, 0};
  return libforks_write_socket_fds(conn_fd, &r, sizeof r, fds, fd_count) == (int)sizeof r ? 0 : -1;
}

/* Fills a pipe through its write end until it holds no more, then leaves
 * that end blocking (O_NONBLOCK is shared with every copy of it, the
 * server's included). Returns the bytes written. */
static inline size_t fill_pipe(int write_fd) {
  static const char chunk[4096];
  size_t total = 0;
  CHECK(fcntl(write_fd, F_SETFL, fcntl(write_fd, F_GETFL) | O_NONBLOCK) == 0);
  for (;;) {
    ssize_t n = write(write_fd, chunk, sizeof chunk);
    if (n <= 0) break;
    total += (size_t)n;
  }
  CHECK(errno == EAGAIN);
  CHECK(fcntl(write_fd, F_SETFL, fcntl(write_fd, F_GETFL) & ~O_NONBLOCK) == 0);
  return total;
}

/* Reads a pipe to end-of-file; returns the bytes read. */
static inline size_t drain_pipe(int read_fd) {
  char buf[4096];
  size_t total = 0;
  ssize_t n;
  while ((n = read(read_fd, buf, sizeof buf)) > 0) total += (size_t)n;
  CHECK(n == 0);
  return total;
}

/* utime + stime of a process, in clock ticks (/proc/<pid>/stat). */
static inline long process_cpu_ticks(pid_t pid) {
  char path[64], line[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  CHECK(f != NULL);
  CHECK(fgets(line, sizeof line, f) != NULL);
  fclose(f);
  const char *rest = strrchr(line, ')');
  CHECK(rest != NULL);
  long utime = 0, stime = 0;
  /* after the name: state (3) ... utime (14), stime (15) */
  CHECK(sscanf(rest + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime) == 2);
  return utime + stime;
}

/* CPU the process used over `ms` milliseconds, in milliseconds. */
static inline double cpu_ms_over(pid_t pid, int ms) {
  long before = process_cpu_ticks(pid);
  usleep((useconds_t)ms * 1000);
  return (double)(process_cpu_ticks(pid) - before) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

/* Whether fd becomes readable within timeout_ms. */
static inline int readable_within(int fd, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int n;
  while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {}
  return n == 1;
}

/* Children used by many tests. */
static inline void entry_exit0(libforks_ServerConn conn, int socket_fd) {
  (void)conn; (void)socket_fd;
  _exit(0);
}
static inline void entry_exit3(libforks_ServerConn conn, int socket_fd) {
  (void)conn; (void)socket_fd;
  _exit(3);
}
static inline void entry_pause(libforks_ServerConn conn, int socket_fd) {
  (void)conn; (void)socket_fd;
  for (;;) pause();
}

/* The server's fd count to compare later counts with. The server makes
 * the next child's connection pair while idle, from its first loop on, so
 * a count right after libforks_start may miss that pair; and it closes a
 * child's exit pipe and connection just after writing its exit event. So:
 * one child first, then the count once two reads 50 ms apart agree. */
static inline int server_fd_baseline(libforks_ServerConn conn) {
  pid_t server = libforks_get_server_pid(conn);
  pid_t pid;
  int exit_fd;
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_exit3));
  CHECK(read_exit_event(exit_fd, 10000).pid == pid);
  close(exit_fd);
  int count = count_fds(server);
  for (int i = 0; i < 40; i++) {
    usleep(50 * 1000);
    int again = count_fds(server);
    if (again == count) break;
    count = again;
  }
  return count;
}

#endif
