/* Native entrypoints for demo.ts, compiled at run time with bun:ffi cc().
 * Signature: void entry(libforks_ServerConn conn, int socket_fd). */
#include <unistd.h>

/* Does some "work", then exits with code 42. */
void compute(void *conn, int socket_fd) {
  usleep(50 * 1000);
  _exit(42);
}

/* Runs until it is killed. */
void serve_forever(void *conn, int socket_fd) {
  for (;;) pause();
}
