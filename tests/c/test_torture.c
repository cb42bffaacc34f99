/* Fork safety: while 4 threads hammer malloc/free and stdio, the server is
 * started (and stopped, and started again); then 1,000 children each
 * malloc, printf and dlopen. Any lock the children inherited held would
 * hang them: the alarm turns that into a failure. */
#include "check.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>

static atomic_int stop_hammering;
static FILE *sink;

/* GCC's AddressSanitizer runtime (libasan 8) does not lock its allocator
 * around fork(), unlike the C library's malloc: a child forked while
 * another thread holds one of its size-class locks inherits it held and
 * its first refill hangs. That is the sanitizer's limitation, not ours, so
 * under ASan the threads hammer stdio only. */
#if defined(__SANITIZE_ADDRESS__)
#define HAMMER_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAMMER_MALLOC 0
#endif
#endif
#ifndef HAMMER_MALLOC
#define HAMMER_MALLOC 1
#endif

static void *hammer(void *arg) {
  (void)arg;
  unsigned seed = (unsigned)(size_t)pthread_self();
  while (!atomic_load(&stop_hammering)) {
    void *blocks[16] = {0};
    if (HAMMER_MALLOC)
      for (int i = 0; i < 16; i++) blocks[i] = malloc(1 + rand_r(&seed) % 4096);
    fprintf(sink, "hammer %u\n", seed);
    for (int i = 0; i < 16; i++) free(blocks[i]);
  }
  return NULL;
}

static void entry_use_libc(libforks_ServerConn conn, int socket_fd) {
  (void)conn; (void)socket_fd;
  char *text = malloc(256);
  if (!text) _exit(1);
  snprintf(text, 256, "child %d", getpid());
  printf("%s\n", text);
  free(text);
  void *libm = dlopen("libm.so.6", RTLD_NOW);
  if (!libm) _exit(2);
  double (*cosine)(double) = (double (*)(double))dlsym(libm, "cos");
  if (!cosine || cosine(0.0) != 1.0) _exit(3);
  dlclose(libm);
  /* returning flushes stdio and exits 0 */
}

int main(void) {
  test_deadline(110);
  if (!HAMMER_MALLOC) fprintf(stderr, "threads hammer stdio only (AddressSanitizer's allocator is not fork-safe)\n");
  CHECK(freopen("/dev/null", "w", stdout) != NULL);
  sink = fopen("/dev/null", "w");
  CHECK(sink != NULL);
  pthread_t threads[4];
  for (int i = 0; i < 4; i++) CHECK(pthread_create(&threads[i], NULL, hammer, NULL) == 0);

  libforks_ServerConn conn;
  for (int round = 0; round < 5; round++) {
    CHECK_OK(libforks_start(&conn));
    if (round < 4) CHECK_OK(libforks_stop(conn, true));
  }

  int exit_fds[50];
  for (int batch = 0; batch < 20; batch++) {
    for (int i = 0; i < 50; i++) CHECK_OK(libforks_fork(conn, NULL, NULL, &exit_fds[i], entry_use_libc));
    for (int i = 0; i < 50; i++) {
      libforks_ExitEvent event = read_exit_event(exit_fds[i], 20000);
      if (!WIFEXITED(event.wait_status) || WEXITSTATUS(event.wait_status) != 0) {
        fprintf(stderr, "child %d: status %#x\n", event.pid, event.wait_status);
        exit(1);
      }
    }
  }
  atomic_store(&stop_hammering, 1);
  for (int i = 0; i < 4; i++) CHECK(pthread_join(threads[i], NULL) == 0);
  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
