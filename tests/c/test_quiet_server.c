/* The server's signals come through a signalfd (zig/signals.zig): it
 * installs no handler and ignores nothing (every signal blocked, every
 * disposition the default), so its children have nothing to reset but
 * their mask; an idle server is never woken (no periodic owner check
 * while it holds the owner's pidfd); terminal signals do not end it, and
 * SIGTERM still stops it and its children. Both kinds of server. */
#include "check.h"
#include <dlfcn.h>
#include <libgen.h>

static void pause_entry(libforks_ServerConn conn, int socket_fd) {
  (void)conn;
  (void)socket_fd;
  for (;;) pause();
}

/* The hexadecimal mask of a "Sig...:" line of /proc/<pid>/status. */
static unsigned long long status_mask(pid_t pid, const char *field) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  CHECK(f != NULL);
  unsigned long long mask = ~0ULL;
  size_t len = strlen(field);
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, field, len) == 0 && line[len] == ':') mask = strtoull(line + len + 1, NULL, 16);
  }
  fclose(f);
  CHECK(mask != ~0ULL);
  return mask;
}

static long context_switches(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  CHECK(f != NULL);
  long count = -1;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0) count = strtol(line + 24, NULL, 10);
  }
  fclose(f);
  CHECK(count >= 0);
  return count;
}

static unsigned long long bit(int sig) { return 1ULL << (sig - 1); }

static void check_quiet(pid_t server, const char *kind) {
  if (darwin_paths()) {
    not_on_darwin("no signalfd on macOS: the server catches SIGCHLD and SIGTERM with handlers on its wake pipe");
  } else {
    unsigned long long caught = status_mask(server, "SigCgt");
    unsigned long long ignored = status_mask(server, "SigIgn");
    unsigned long long blocked = status_mask(server, "SigBlk");
    if (caught != 0 || ignored != 0) fprintf(stderr, "%s server: SigCgt %llx SigIgn %llx\n", kind, caught, ignored);
    CHECK(caught == 0);
    CHECK(ignored == 0);
    for (int sig = 1; sig < 32; sig++) {
      if (sig == SIGKILL || sig == SIGSTOP) continue;
      CHECK(blocked & bit(sig));
    }
  }

  /* Idle, with a child running: nothing wakes the server. */
  usleep(100 * 1000);
  long before = context_switches(server);
  usleep(1200 * 1000);
  long after = context_switches(server);
  if (after != before) fprintf(stderr, "%s server woke %ld times while idle\n", kind, after - before);
  CHECK(after == before);
}

static void check_server(libforks_ServerConn conn, const char *kind) {
  pid_t server = libforks_get_server_pid(conn);
  CHECK(server > 0);
  pid_t child;
  int exit_fd;
  if (strcmp(kind, "clean") == 0) {
    CHECK_OK(libforks_fork_symbol(conn, &child, NULL, &exit_fd, "libc.so.6", "pause"));
  } else {
    CHECK_OK(libforks_fork(conn, &child, NULL, &exit_fd, pause_entry));
  }

  /* qemu-user catches every signal itself and runs a thread of its own:
   * the kernel's view of the server's dispositions and wake-ups is the
   * emulator's there, so only what the server does is checked. */
  if (!test_emulated()) check_quiet(server, kind);

  /* Terminal signals stay pending; the server serves on. */
  CHECK(kill(server, SIGINT) == 0 && kill(server, SIGHUP) == 0 && kill(server, SIGPIPE) == 0);
  pid_t second;
  int second_fd;
  if (strcmp(kind, "clean") == 0) {
    CHECK_OK(libforks_fork_symbol(conn, &second, NULL, &second_fd, "libc.so.6", "pause"));
  } else {
    CHECK_OK(libforks_fork(conn, &second, NULL, &second_fd, pause_entry));
  }

  /* SIGTERM: the server stops its children and exits. */
  CHECK(kill(server, SIGTERM) == 0);
  libforks_ExitEvent event = read_exit_event(exit_fd, 5000);
  CHECK(event.pid == child && WIFSIGNALED(event.wait_status) && WTERMSIG(event.wait_status) == SIGTERM);
  event = read_exit_event(second_fd, 5000);
  CHECK(event.pid == second && WIFSIGNALED(event.wait_status) && WTERMSIG(event.wait_status) == SIGTERM);
  CHECK(wait_exited(server, 5000) >= 0);
  libforks_stop(conn, true);
}

int main(void) {
  test_deadline(60);
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  check_server(conn, "snapshot");

  Dl_info info;
  CHECK(dladdr((void *)libforks_start, &info) && info.dli_fname);
  char copy[512], server_path[600];
  snprintf(copy, sizeof copy, "%s", info.dli_fname);
  snprintf(server_path, sizeof server_path, "%s/libforks-server", dirname(copy));
  libforks_StartOptions options = {sizeof options, libforks_MODE_CLEAN, server_path, -1};
  CHECK_OK(libforks_start_ex(&conn, &options));
  check_server(conn, "clean");
  return 0;
}
