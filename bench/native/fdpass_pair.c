/* Case 5 baseline: a C pair passing one fd back and forth over a
 * SOCK_SEQPACKET socketpair (the socket type of a libforks channel). The
 * parent sends 8 bytes plus one fd (a pipe's write end) with sendmsg; the
 * forked child receives it with recvmsg, sends the same bytes and fd back,
 * and closes its copy; the parent receives and closes the returned copy.
 * One iteration is one such round trip.
 *
 *   fdpass_pair --warmup N --iterations N */
#include "common.h"
#include <signal.h>
#include <sys/wait.h>

int main(int argc, char **argv) {
  long warmup = arg_long(argc, argv, "--warmup", 100);
  long iterations = arg_long(argc, argv, "--iterations", 10000);
  int pair[2];
  pid_t pid = fork_peer(pair);
  if (pid == 0) {
    char buf[64];
    for (;;) {
      int fds[BENCH_MAX_FDS], count;
      ssize_t n = recv_fds(pair[1], buf, sizeof buf, fds, &count);
      if (n <= 0) _exit(0);
      if (send_fds(pair[1], buf, (size_t)n, fds, count) < 0) _exit(1);
      for (int j = 0; j < count; j++) close(fds[j]);
    }
  }
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) die("pipe");
  uint64_t *samples = samples_alloc(iterations);
  char data[8] = "fdpass!";
  char back[64];
  uint64_t start = 0;
  for (long i = -warmup; i < iterations; i++) {
    if (i == 0) start = now_ns();
    uint64_t t0 = now_ns();
    if (send_fds(pair[0], data, sizeof data, &pipe_fds[1], 1) < 0) die("sendmsg");
    int fds[BENCH_MAX_FDS], count;
    ssize_t n = recv_fds(pair[0], back, sizeof back, fds, &count);
    if (n != (ssize_t)sizeof data || count != 1) die("recvmsg");
    close(fds[0]);
    if (i >= 0) samples[i] = now_ns() - t0;
  }
  uint64_t elapsed = now_ns() - start;
  close(pair[0]);
  waitpid(pid, NULL, 0);
  print_result("fdpass_pair", samples, iterations, elapsed, "");
  return 0;
}
