/* Case 1 baseline: the same library driven from C. libforks_start, then
 * per iteration libforks_fork(entry that _exit(0)s) and a blocking read of
 * the exit fd, from a process grown to --rss-kib KiB before the server
 * starts (so the server, a copy of this process, has a Bun process's size).
 *
 *   libforks_fork --rss-kib N --anon-kib N --file PATH --warmup N --iterations N
 *   libforks_fork ... --burst N [--stop 1]
 *   libforks_fork --clean SERVER_PATH --warmup N --iterations N
 *
 * --clean: the server is a clean one (libforks_start_ex running the
 * libforks-server program at SERVER_PATH) and each child is
 * libforks_fork_symbol("libc.so.6", "_exit"), as in case 7: the same
 * round trip as Bun's there, minus Bun's event loop. */
#include "common.h"
#include <libforks.h>
#include <signal.h>

static void entry(libforks_ServerConn conn, int socket_fd) {
  (void)conn;
  (void)socket_fd;
  _exit(0);
}

static void pause_entry(libforks_ServerConn conn, int socket_fd) {
  (void)conn;
  (void)socket_fd;
  for (;;) pause();
}

/* --burst N: N children alive at once (pause), forked back to back with
 * blocking libforks_fork; then libforks_kill_all(SIGKILL) and every exit
 * fd read. Case 4's "same library from C" figure. With --stop, the end is
 * libforks_stop(conn, true) instead (case 8), the exit fds closed unread
 * first (a caller that stops does not read them). */
static int burst(libforks_ServerConn conn, long count, int stop) {
  int *exit_fds = calloc((size_t)count, sizeof *exit_fds);
  if (!exit_fds) die("calloc");
  uint64_t start = now_ns();
  for (long i = 0; i < count; i++) {
    pid_t pid;
    libforks_Result r = libforks_fork(conn, &pid, NULL, &exit_fds[i], pause_entry);
    if (r != libforks_OK) {
      fprintf(stderr, "libforks_fork: %s\n", libforks_result_string(r));
      return 2;
    }
  }
  uint64_t forked = now_ns();
  if (stop) {
    for (long i = 0; i < count; i++) close(exit_fds[i]);
    forked = now_ns();
    if (libforks_stop(conn, true) != libforks_OK) die("libforks_stop");
    uint64_t stopped = now_ns();
    char extra[128];
    snprintf(extra, sizeof extra, "\"children\":%ld,\"fork_ns\":%llu,\"stop_ns\":%llu", count,
             (unsigned long long)(forked - start), (unsigned long long)(stopped - forked));
    print_result("libforks_stop", NULL, 0, stopped - start, extra);
    return 0;
  }
  if (libforks_kill_all(conn, SIGKILL) != libforks_OK) die("libforks_kill_all");
  for (long i = 0; i < count; i++) {
    libforks_ExitEvent event;
    while (read(exit_fds[i], &event, sizeof event) < 0 && errno == EINTR) {
    }
    close(exit_fds[i]);
  }
  uint64_t reaped = now_ns();
  char extra[128];
  snprintf(extra, sizeof extra, "\"children\":%ld,\"fork_ns\":%llu,\"reap_ns\":%llu", count,
           (unsigned long long)(forked - start), (unsigned long long)(reaped - forked));
  print_result("libforks_burst", NULL, 0, reaped - start, extra);
  libforks_stop(conn, true);
  return 0;
}

int main(int argc, char **argv) {
  ballast(argc, argv);
  long warmup = arg_long(argc, argv, "--warmup", 10);
  long iterations = arg_long(argc, argv, "--iterations", 100);
  const char *clean_server = arg_str(argc, argv, "--clean", NULL);
  libforks_ServerConn conn;
  libforks_StartOptions options = {
      .size = sizeof options, .mode = libforks_MODE_CLEAN, .server_path = clean_server, .server_fd = -1};
  libforks_Result r = libforks_start_ex(&conn, clean_server ? &options : NULL);
  if (r != libforks_OK) {
    fprintf(stderr, "libforks_start: %s\n", libforks_result_string(r));
    return 2;
  }
  long burst_count = arg_long(argc, argv, "--burst", 0);
  if (burst_count > 0) return burst(conn, burst_count, arg_long(argc, argv, "--stop", 0) != 0);
  uint64_t *samples = samples_alloc(iterations);
  uint64_t start = 0;
  for (long i = -warmup; i < iterations; i++) {
    if (i == 0) start = now_ns();
    uint64_t t0 = now_ns();
    pid_t pid;
    int exit_fd;
    r = clean_server ? libforks_fork_symbol(conn, &pid, NULL, &exit_fd, "libc.so.6", "_exit")
                     : libforks_fork(conn, &pid, NULL, &exit_fd, entry);
    if (r != libforks_OK) {
      fprintf(stderr, "libforks_fork: %s\n", libforks_result_string(r));
      return 2;
    }
    libforks_ExitEvent event;
    ssize_t n;
    while ((n = read(exit_fd, &event, sizeof event)) < 0 && errno == EINTR) {
    }
    if (n != (ssize_t)sizeof event || event.pid != pid) die("read exit fd");
    close(exit_fd);
    if (i >= 0) samples[i] = now_ns() - t0;
  }
  print_result("libforks_fork", samples, iterations, now_ns() - start, "");
  libforks_stop(conn, true);
  return 0;
}
