/* The small utilities: libforks_version, libforks_set_nonblocking,
 * libforks_memfd, libforks_pipe, and libforks_last_errno kept per thread
 * (errno set as well). */
#include "check.h"
#include <pthread.h>

static libforks_ServerConn conn;

/* In a fresh thread: nothing failed yet, then its own failure. */
static void *other_thread(void *arg) {
  (void)arg;
  long ok = libforks_last_errno() == 0;
  errno = 0;
  ok &= libforks_set_nonblocking(-1, true) == -1 && errno == EBADF;
  ok &= libforks_last_errno() == EBADF;
  return (void *)ok;
}

int main(void) {
  test_deadline(20);
  const char *version = libforks_version();
  int major, minor, patch, end = 0;
  CHECK(version != NULL && sscanf(version, "%d.%d.%d%n", &major, &minor, &patch, &end) == 3);
  CHECK(end == (int)strlen(version) || version[end] == '-' || version[end] == '+');
  CHECK(libforks_version() == version || strcmp(libforks_version(), version) == 0);

  /* set_nonblocking both ways */
  int p[2];
  CHECK(libforks_pipe(p) == 0);
  CHECK((fcntl(p[0], F_GETFD) & FD_CLOEXEC) && (fcntl(p[1], F_GETFD) & FD_CLOEXEC));
  CHECK(libforks_set_nonblocking(p[0], true) == 0);
  CHECK(fcntl(p[0], F_GETFL) & O_NONBLOCK);
  char byte;
  CHECK(read(p[0], &byte, 1) == -1 && errno == EAGAIN);
  CHECK(libforks_set_nonblocking(p[0], false) == 0);
  CHECK(!(fcntl(p[0], F_GETFL) & O_NONBLOCK));
  CHECK(write(p[1], "z", 1) == 1 && read(p[0], &byte, 1) == 1 && byte == 'z'); /* blocking works again */
  errno = 0;
  CHECK(libforks_set_nonblocking(-1, true) == -1 && errno == EBADF);

  /* memfd: close-on-exec, named, readable and writable */
  int memfd = libforks_memfd("libforks-test-memfd");
  if (darwin_paths()) {
    /* macOS has no memfd: the call says so by its errno. */
    not_on_darwin("memfd (none on macOS: ENOSYS checked instead)");
    CHECK(memfd == -1 && libforks_last_errno() == ENOSYS);
  } else {
    CHECK(memfd >= 0 && (fcntl(memfd, F_GETFD) & FD_CLOEXEC));
    char link[64], target[256] = {0};
    snprintf(link, sizeof link, "/proc/self/fd/%d", memfd);
    CHECK(readlink(link, target, sizeof target - 1) > 0 && strstr(target, "memfd:libforks-test-memfd") != NULL);
    CHECK(write(memfd, "hello", 5) == 5);
    char back[8] = {0};
    CHECK(pread(memfd, back, 5, 0) == 5 && strcmp(back, "hello") == 0);
    close(memfd);
  }

  /* last_errno: the failing call's errno, per thread, errno set too */
  CHECK_OK(libforks_start(&conn));
  errno = 0;
  CHECK_RESULT(libforks_wait(conn, getpid(), NULL, 0, NULL), libforks_WAIT_ERROR);
  CHECK(errno == ECHILD && libforks_last_errno() == ECHILD);
  pthread_t thread;
  void *ok;
  CHECK(pthread_create(&thread, NULL, other_thread, NULL) == 0);
  CHECK(pthread_join(thread, &ok) == 0 && ok == (void *)1);
  CHECK(libforks_last_errno() == ECHILD); /* untouched by the other thread */

  close(p[0]);
  close(p[1]);
  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
