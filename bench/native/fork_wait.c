/* Case 1 and 3 baseline, "the physical limit": fork(2) + _exit(0) in the
 * child + waitpid(2) in the parent, timed per iteration, from a process
 * grown to the shape of a Bun process: --anon-kib KiB of touched
 * anonymous memory, then pages of --file (Bun's executable) up to --rss-kib
 * KiB resident.
 *
 *   fork_wait --rss-kib N --anon-kib N --file PATH --warmup N --iterations N
 *
 * With --burst N it instead forks N children that stay alive (pause),
 * timing how long N forks take, then kills and reaps them all (case 4). */
#include "common.h"
#include <signal.h>
#include <sys/wait.h>

static int burst(long count) {
  pid_t *pids = calloc((size_t)count, sizeof *pids);
  if (!pids) die("calloc");
  uint64_t start = now_ns();
  for (long i = 0; i < count; i++) {
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      for (;;) pause();
    }
    pids[i] = pid;
  }
  uint64_t forked = now_ns();
  for (long i = 0; i < count; i++) kill(pids[i], SIGKILL);
  for (long i = 0; i < count; i++) waitpid(pids[i], NULL, 0);
  uint64_t reaped = now_ns();
  char extra[128];
  snprintf(extra, sizeof extra, "\"children\":%ld,\"fork_ns\":%llu,\"reap_ns\":%llu", count,
           (unsigned long long)(forked - start), (unsigned long long)(reaped - forked));
  print_result("fork_burst", NULL, 0, reaped - start, extra);
  return 0;
}

int main(int argc, char **argv) {
  ballast(argc, argv);
  long burst_count = arg_long(argc, argv, "--burst", 0);
  if (burst_count > 0) return burst(burst_count);
  long warmup = arg_long(argc, argv, "--warmup", 10);
  long iterations = arg_long(argc, argv, "--iterations", 100);
  uint64_t *samples = samples_alloc(iterations);
  uint64_t start = 0;
  for (long i = -warmup; i < iterations; i++) {
    if (i == 0) start = now_ns();
    uint64_t t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) _exit(0);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) die("waitpid");
    }
    if (i >= 0) samples[i] = now_ns() - t0;
  }
  print_result("fork_wait", samples, iterations, now_ns() - start, "");
  return 0;
}
