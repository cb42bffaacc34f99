/* Case 7 reference, "the floor of any fork server": the barest server that
 * makes the same hops as libforks and nothing else, timed like
 * libforks_fork --clean.
 *
 *   server_floor --warmup N --iterations N
 *
 * Per round trip the client makes a reply pipe and an exit pipe and sends
 * their write ends (SCM_RIGHTS) with a one-byte request on a SOCK_SEQPACKET
 * socket pair. The server, a small process of its own (forked first, so
 * as tiny as this program), polls that socket and a wake pipe, forks, and
 * writes the pid on the reply pipe; the child _exits at once; SIGCHLD
 * writes to the wake pipe, and the server reaps with wait4 and writes the
 * status on the exit pipe, which the client reads. No protocol, no checks,
 * no per-child state beyond one exit pipe: what is left is the cost of
 * the hops themselves, three process wake-ups more than fork + waitpid. */
#include "common.h"
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

static int wake_pipe[2];

static void on_child(int sig) {
  (void)sig;
  int saved = errno;
  char byte = 'c';
  if (write(wake_pipe[1], &byte, 1) < 0) {
  }
  errno = saved;
}

/* One byte and up to two fds; returns the number of fds received, or -1. */
static int receive(int socket_fd, char *byte, int fds[2]) {
  char control[CMSG_SPACE(2 * sizeof(int))];
  struct iovec io = {byte, 1};
  struct msghdr message = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
  if (recvmsg(socket_fd, &message, MSG_CMSG_CLOEXEC) <= 0) return -1;
  struct cmsghdr *header = CMSG_FIRSTHDR(&message);
  if (!header || header->cmsg_type != SCM_RIGHTS) return 0;
  int count = (int)((header->cmsg_len - CMSG_LEN(0)) / sizeof(int));
  memcpy(fds, CMSG_DATA(header), (size_t)count * sizeof(int));
  return count;
}

static void send_request(int socket_fd, char byte, const int fds[2], int count) {
  char control[CMSG_SPACE(2 * sizeof(int))];
  struct iovec io = {&byte, 1};
  struct msghdr message = {.msg_iov = &io, .msg_iovlen = 1};
  if (count > 0) {
    message.msg_control = control;
    message.msg_controllen = CMSG_SPACE((size_t)count * sizeof(int));
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN((size_t)count * sizeof(int));
    memcpy(CMSG_DATA(header), fds, (size_t)count * sizeof(int));
  }
  if (sendmsg(socket_fd, &message, MSG_NOSIGNAL) != 1) die("sendmsg");
}

static void serve(int socket_fd) {
  if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) die("pipe2");
  struct sigaction action = {.sa_handler = on_child, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
  sigaction(SIGCHLD, &action, NULL);
  int exit_fd = -1; /* one child at a time: the client waits for each */
  for (;;) {
    struct pollfd ready[2] = {{wake_pipe[0], POLLIN, 0}, {socket_fd, POLLIN, 0}};
    if (poll(ready, 2, -1) < 0) continue; /* EINTR: SIGCHLD */
    if (ready[1].revents) {
      char byte;
      int fds[2];
      if (receive(socket_fd, &byte, fds) != 2) _exit(0); /* the client is done */
      pid_t pid = fork();
      if (pid == 0) _exit(0);
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
    send_request(pair[0], 'f', fds, 2);
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
  print_result("server_floor", samples, iterations, now_ns() - start, "");
  send_request(pair[0], 'q', NULL, 0);
  waitpid(server, NULL, 0);
  return 0;
}
