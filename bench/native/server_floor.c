/* Case 7 reference, "the floor of any fork server": the barest server that
 * makes the same hops as libforks and nothing else, timed like
 * libforks_fork --clean.
 *
 *   server_floor [--rss-kib N --anon-kib N --file PATH] --warmup N --iterations N [--with supervise]
 *
 * Per round trip the client makes a reply pipe and an exit pipe and sends
 * their write ends (SCM_RIGHTS) with a one-byte request on a SOCK_SEQPACKET
 * socket pair. The server, a small process of its own (forked first, so
 * as tiny as this program), polls that socket and a wake pipe, forks, and
 * writes the pid on the reply pipe; the child _exits at once; SIGCHLD
 * writes to the wake pipe, and the server reaps with wait4 and writes the
 * status on the exit pipe, which the client reads. No protocol, no checks,
 * no per-child state beyond one exit pipe: what is left is the cost of
 * the hops themselves, three process wake-ups more than fork + waitpid.
 * With the ballast options (case 1) this program grows to a Bun process's
 * shape before it forks the server, so the server, and each fork it
 * makes, has that size: the floor of a snapshot server.
 *
 * `--with supervise` adds what supervising the tree costs per child, as a
 * libforks child pays it: the server is a subreaper and makes a cgroup
 * v2 (when one is writable); each child arms PR_SET_PDEATHSIG, checks its
 * parent with getppid, joins the cgroup (a write of "0" to its
 * cgroup.procs) and sets an empty signal mask before it exits. The
 * difference between the two runs is what those steps cost; the rest of
 * libforks' gap to the floor is its protocol and tables. */
#include "common.h"
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

static int wake_pipe[2];
static int supervise;
static int cgroup_procs = -1;
static char cgroup_dir[4096];

/* The cgroup v2 directory of this process: the "0::" line of
 * /proc/self/cgroup under the cgroup2 mount. Empty when there is none. */
static void find_cgroup(char *out, size_t size) {
  char mount[1024] = "", line[4096], path[2048] = "";
  FILE *f = fopen("/proc/self/mountinfo", "r");
  while (f && fgets(line, sizeof line, f)) {
    char point[1024], type[64];
    if (sscanf(line, "%*s %*s %*s %*s %1023s %*[^-]- %63s", point, type) == 2 && strcmp(type, "cgroup2") == 0) {
      snprintf(mount, sizeof mount, "%s", point);
      break;
    }
  }
  if (f) fclose(f);
  f = fopen("/proc/self/cgroup", "r");
  while (f && fgets(line, sizeof line, f)) {
    if (strncmp(line, "0::", 3) == 0) {
      line[strcspn(line, "\n")] = 0;
      snprintf(path, sizeof path, "%s", line + 3);
    }
  }
  if (f) fclose(f);
  out[0] = 0;
  if (mount[0]) snprintf(out, size, "%s%s", mount, strcmp(path, "/") == 0 ? "" : path);
}

static void start_supervising(void) {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) die("PR_SET_CHILD_SUBREAPER");
  char parent[2048], procs[4200];
  find_cgroup(parent, sizeof parent);
  if (!parent[0]) return;
  snprintf(cgroup_dir, sizeof cgroup_dir, "%s/bench-floor-%d", parent, getpid());
  if (mkdir(cgroup_dir, 0755) != 0) {
    cgroup_dir[0] = 0;
    return;
  }
  snprintf(procs, sizeof procs, "%s/cgroup.procs", cgroup_dir);
  cgroup_procs = open(procs, O_WRONLY | O_CLOEXEC);
}

/* The child's share: what a libforks child does before its entry. */
static void supervised_child(pid_t server) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != server) _exit(1);
  if (cgroup_procs >= 0 && write(cgroup_procs, "0", 1) != 1) _exit(1);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

static void on_child(int sig) {
  (void)sig;
  int saved = errno;
  char byte = 'c';
  if (write(wake_pipe[1], &byte, 1) < 0) {
  }
  errno = saved;
}

static void serve(int socket_fd) {
  if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) die("pipe2");
  struct sigaction action = {.sa_handler = on_child, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
  sigaction(SIGCHLD, &action, NULL);
  if (supervise) start_supervising();
  pid_t self = getpid();
  int exit_fd = -1; /* one child at a time: the client waits for each */
  for (;;) {
    struct pollfd ready[2] = {{wake_pipe[0], POLLIN, 0}, {socket_fd, POLLIN, 0}};
    if (poll(ready, 2, -1) < 0) continue; /* EINTR: SIGCHLD */
    if (ready[1].revents) {
      char byte;
      int fds[BENCH_MAX_FDS], count;
      if (recv_fds(socket_fd, &byte, 1, fds, &count) != 1 || count != 2) {
        if (cgroup_dir[0]) rmdir(cgroup_dir); /* every child was reaped */
        _exit(0); /* the client is done */
      }
      pid_t pid = fork();
      if (pid == 0) {
        if (supervise) supervised_child(self);
        _exit(0);
      }
      if (write(fds[0], &pid, sizeof pid) != sizeof pid) die("write pid");
      close(fds[0]);
      exit_fd = fds[1];
    }
    if (ready[0].revents) {
      char drain[16];
      while (read(wake_pipe[0], drain, sizeof drain) > 0) {
      }
      int status;
      while (wait4(-1, &status, WNOHANG, NULL) > 0) {
        if (write(exit_fd, &status, sizeof status) != sizeof status) die("write status");
        close(exit_fd);
      }
    }
  }
}

int main(int argc, char **argv) {
  long warmup = arg_long(argc, argv, "--warmup", 10);
  long iterations = arg_long(argc, argv, "--iterations", 100);
  supervise = strcmp(arg_str(argc, argv, "--with", ""), "supervise") == 0;
  ballast(argc, argv);
  int pair[2];
  pid_t server = fork_peer(pair);
  if (server == 0) serve(pair[1]);
  uint64_t *samples = samples_alloc(iterations);
  uint64_t start = 0;
  for (long i = -warmup; i < iterations; i++) {
    if (i == 0) start = now_ns();
    uint64_t t0 = now_ns();
    int reply[2], exit_pipe[2];
    if (pipe2(reply, O_CLOEXEC) != 0 || pipe2(exit_pipe, O_CLOEXEC) != 0) die("pipe2");
    int fds[2] = {reply[1], exit_pipe[1]};
    if (send_fds(pair[0], "f", 1, fds, 2) != 1) die("sendmsg");
    close(reply[1]);
    close(exit_pipe[1]);
    pid_t pid;
    int status;
    if (read(reply[0], &pid, sizeof pid) != sizeof pid) die("read pid");
    if (read(exit_pipe[0], &status, sizeof status) != sizeof status) die("read status");
    close(reply[0]);
    close(exit_pipe[0]);
    if (i >= 0) samples[i] = now_ns() - t0;
  }
  print_result("server_floor", samples, iterations, now_ns() - start, supervise ? "\"with\":\"supervise\"" : "");
  if (send_fds(pair[0], "q", 1, NULL, 0) != 1) die("sendmsg");
  waitpid(server, NULL, 0);
  return 0;
}
