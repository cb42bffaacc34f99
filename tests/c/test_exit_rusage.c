/* libforks_ForkRequest.exit_rusage: the exit fd carries the child's
 * struct rusage right after its libforks_ExitEvent, in one write; without
 * it the exit fd carries the 8-byte event alone. */
#include "check.h"
#include <sys/resource.h>
#include <time.h>

/* Burns about 50 ms of user CPU time, so the rusage cannot be zero. */
static void entry_spin(libforks_ServerConn conn, int socket_fd) {
  (void)conn;
  (void)socket_fd;
  struct timespec start, now;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &start);
  volatile unsigned long sink = 0;
  do {
    for (int i = 0; i < 100000; i++) sink += (unsigned long)i;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  } while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) < 50000000L);
  _exit(4);
}

struct exit_message {
  libforks_ExitEvent event;
  struct rusage rusage;
};

static ssize_t read_all_exit(int fd, void *buffer, size_t size) {
  struct pollfd ready = {.fd = fd, .events = POLLIN};
  CHECK(poll(&ready, 1, 10000) == 1);
  ssize_t n = read(fd, buffer, size);
  char more;
  CHECK(read(fd, &more, 1) == 0); /* then end-of-file */
  return n;
}

int main(void) {
  test_deadline(60);
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  int exits[2], reply_fd;
  libforks_Reply reply;

  CHECK(libforks_pipe(exits) == 0);
  libforks_ForkRequest with = {.size = sizeof with, .entrypoint = entry_spin, .socket_fd = -1, .exit_fd = exits[1], .exit_rusage = true};
  CHECK_OK(libforks_fork_async(conn, &with, &reply_fd));
  close(exits[1]);
  CHECK_OK(libforks_reply_read(reply_fd, &reply));
  struct exit_message message;
  memset(&message, 0, sizeof message);
  // What arrives is libforks_EXIT_MESSAGE_SIZE bytes: all of a glibc
  // struct rusage, the part before musl's reserved tail.
  CHECK(read_all_exit(exits[0], &message, sizeof message) == libforks_EXIT_MESSAGE_SIZE);
  close(exits[0]);
  CHECK(message.event.pid == reply.pid && WEXITSTATUS(message.event.wait_status) == 4);
  long user_us = message.rusage.ru_utime.tv_sec * 1000000L + message.rusage.ru_utime.tv_usec;
  CHECK(user_us >= 20000);
  CHECK(message.rusage.ru_maxrss > 0);
  printf("exit rusage: %ld us user, maxrss %ld kB\n", user_us, message.rusage.ru_maxrss);

  /* Without the flag: the event alone. */
  CHECK(libforks_pipe(exits) == 0);
  libforks_ForkRequest without = {.size = sizeof without, .entrypoint = entry_exit3, .socket_fd = -1, .exit_fd = exits[1]};
  CHECK_OK(libforks_fork_async(conn, &without, &reply_fd));
  close(exits[1]);
  CHECK_OK(libforks_reply_read(reply_fd, &reply));
  CHECK(read_all_exit(exits[0], &message, sizeof message) == (ssize_t)sizeof(libforks_ExitEvent));
  close(exits[0]);
  CHECK(message.event.pid == reply.pid && WEXITSTATUS(message.event.wait_status) == 3);

  /* exit_rusage needs an exit fd. */
  libforks_ForkRequest no_fd = {.size = sizeof no_fd, .entrypoint = entry_exit0, .socket_fd = -1, .exit_fd = -1, .exit_rusage = true};
  CHECK_RESULT(libforks_fork_async(conn, &no_fd, &reply_fd), libforks_INVALID_ARGUMENT);

  CHECK_OK(libforks_wait_all(conn));
  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
