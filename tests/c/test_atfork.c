/* A snapshot server forks its children with _Fork() where the C library
 * has it (zig/child_fork.zig): the caller's pthread_atfork handlers run
 * for the forks that make the server (middle process and server), not
 * once more per child; and the children still malloc, printf (stdio, a
 * fresh FILE and stdout) and dlopen, 200 times. Without _Fork the
 * handlers run per child, as fork() does. */
#include "check.h"
#include <dlfcn.h>
#include <pthread.h>
#include <sys/mman.h>

static int *child_handler_runs; /* shared with every process of the tree */
static char library[512];

static void on_fork_child(void) { __atomic_add_fetch(child_handler_runs, 1, __ATOMIC_SEQ_CST); }

static void busy_entry(libforks_ServerConn conn, int socket_fd) {
  (void)conn;
  (void)socket_fd;
  char *small = malloc(64), *big = malloc(4 << 20);
  if (!small || !big) _exit(10);
  memset(big, 1, 4 << 20);
  free(small);
  free(big);
  FILE *devnull = fopen("/dev/null", "w");
  if (!devnull || fprintf(devnull, "child %d\n", (int)getpid()) <= 0 || fclose(devnull) != 0) _exit(11);
  if (!freopen("/dev/null", "w", stdout) || printf("child %d\n", (int)getpid()) <= 0 || fflush(stdout) != 0) _exit(12);
  void *handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
  if (!handle || !dlsym(handle, "lib_exit42")) _exit(13);
  dlclose(handle);
  exit(0); /* through atexit and stdio flushing too */
}

int main(void) {
  test_deadline(60);
  const char *dir = getenv("LIBFORKS_TEST_DIR");
  CHECK(dir != NULL);
  snprintf(library, sizeof library, "%s/libentry.so", dir);
  child_handler_runs = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(child_handler_runs != MAP_FAILED);
  CHECK(pthread_atfork(NULL, NULL, on_fork_child) == 0);
  const int has_underscore_fork = dlsym(RTLD_DEFAULT, "_Fork") != NULL;

  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  int after_start = __atomic_load_n(child_handler_runs, __ATOMIC_SEQ_CST);
  CHECK(after_start == 2); /* the middle process and the server */

  const int children = 200;
  for (int i = 0; i < children; i++) {
    pid_t pid;
    int exit_fd;
    CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, busy_entry));
    libforks_ExitEvent event = read_exit_event(exit_fd, 10000);
    if (!WIFEXITED(event.wait_status) || WEXITSTATUS(event.wait_status) != 0) {
      fprintf(stderr, "child %d: wait status %#x\n", i, event.wait_status);
    }
    CHECK(event.pid == pid && WIFEXITED(event.wait_status) && WEXITSTATUS(event.wait_status) == 0);
  }
  int runs = __atomic_load_n(child_handler_runs, __ATOMIC_SEQ_CST);
  fprintf(stderr, "_Fork %s: the child handler ran %d times for %d children\n",
          has_underscore_fork ? "present" : "absent", runs - after_start, children);
  CHECK(runs == after_start + (has_underscore_fork ? 0 : children));
  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
