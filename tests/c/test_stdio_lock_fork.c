/* Another thread holds stdout's lock (flockfile) while libforks_start
 * runs. glibc's fork resets every stream lock in the child; musl's does
 * not, so without libforks taking the standard streams' locks around its
 * fork the server inherits stdout locked, and every child whose entrypoint
 * returns blocks forever in the exit's fflush(NULL). 100 such children
 * must all exit. */
#include <pthread.h>

#include "check.h"

static int held_pipe[2];

static void *hold_stdout(void *arg) {
  (void)arg;
  flockfile(stdout);
  char ready = 1;
  CHECK(write(held_pipe[1], &ready, 1) == 1);
  /* Long enough that libforks_start runs while the lock is held. */
  struct timespec pause = {.tv_sec = 0, .tv_nsec = 300 * 1000 * 1000};
  nanosleep(&pause, NULL);
  funlockfile(stdout);
  return NULL;
}

static void entry_prints_and_returns(libforks_ServerConn conn, int socket_fd) {
  (void)conn; (void)socket_fd;
  printf("child %d\n", (int)getpid());
}

#define CHILDREN 100

int main(void) {
  test_deadline(100);
  /* The children's lines are of no interest; their buffers are. */
  int null_fd = open("/dev/null", O_WRONLY);
  CHECK(null_fd >= 0 && dup2(null_fd, STDOUT_FILENO) == STDOUT_FILENO);
  close(null_fd);
  CHECK(pipe(held_pipe) == 0);
  pthread_t holder;
  CHECK(pthread_create(&holder, NULL, hold_stdout, NULL) == 0);
  char ready;
  CHECK(read(held_pipe[0], &ready, 1) == 1);

  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  CHECK(pthread_join(holder, NULL) == 0);

  pid_t pids[CHILDREN];
  int exit_fds[CHILDREN];
  for (int i = 0; i < CHILDREN; i++) {
    CHECK_OK(libforks_fork(conn, &pids[i], NULL, &exit_fds[i], entry_prints_and_returns));
  }
  /* Generous: "does not hang", not a speed claim (qemu is slow). */
  double deadline = now_ms() + 60000;
  int stuck = 0;
  for (int i = 0; i < CHILDREN; i++) {
    struct pollfd p = {.fd = exit_fds[i], .events = POLLIN};
    int left = (int)(deadline - now_ms());
    if (poll(&p, 1, left > 0 ? left : 0) != 1) {
      stuck++;
      continue;
    }
    libforks_ExitEvent event;
    CHECK(read(exit_fds[i], &event, sizeof event) == (ssize_t)sizeof event);
    CHECK(event.pid == pids[i] && WIFEXITED(event.wait_status) && WEXITSTATUS(event.wait_status) == 0);
    close(exit_fds[i]);
  }
  if (stuck > 0) fprintf(stderr, "%d of %d children never exited (stdout locked in the server?)\n", stuck, CHILDREN);
  /* stop kills what is still running, so a failure leaves nothing behind. */
  CHECK_OK(libforks_stop(conn, true));
  CHECK(stuck == 0);
  return 0;
}
