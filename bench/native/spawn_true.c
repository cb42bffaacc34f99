/* Case 2 reference: posix_spawn("/bin/true") + waitpid from C, the way a
 * runtime starts a program without fork's page-table copy (glibc uses
 * clone(CLONE_VM | CLONE_VFORK)).
 *
 *   spawn_true --rss-kib N --warmup N --iterations N */
#include "common.h"
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

int main(int argc, char **argv) {
  ballast(argc, argv);
  long warmup = arg_long(argc, argv, "--warmup", 10);
  long iterations = arg_long(argc, argv, "--iterations", 100);
  uint64_t *samples = samples_alloc(iterations);
  char *child_argv[] = {"/bin/true", NULL};
  uint64_t start = 0;
  for (long i = -warmup; i < iterations; i++) {
    if (i == 0) start = now_ns();
    uint64_t t0 = now_ns();
    pid_t pid;
    int err = posix_spawn(&pid, "/bin/true", NULL, NULL, child_argv, environ);
    if (err != 0) {
      errno = err;
      die("posix_spawn");
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) die("waitpid");
    }
    if (i >= 0) samples[i] = now_ns() - t0;
  }
  print_result("spawn_true", samples, iterations, now_ns() - start, "");
  return 0;
}
