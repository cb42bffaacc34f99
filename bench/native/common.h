/* Shared helpers of the C baselines: argument parsing, a monotonic clock,
 * memory ballast that matches a Bun process's resident size, and the one
 * JSON line every baseline prints on stdout. Header-only on purpose: each
 * baseline is one executable built from one .c file by `zig build bench`. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --name value, or the default. */
static inline long arg_long(int argc, char **argv, const char *name, long fallback) {
  for (int i = 1; i + 1 < argc; i++) {
    if (strcmp(argv[i], name) == 0) return strtol(argv[i + 1], NULL, 10);
  }
  return fallback;
}

/* --name value, or the default. */
static inline const char *arg_str(int argc, char **argv, const char *name, const char *fallback) {
  for (int i = 1; i + 1 < argc; i++) {
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return fallback;
}

static inline void die(const char *what) {
  fprintf(stderr, "bench baseline: %s: %s\n", what, strerror(errno));
  exit(2);
}

static inline void self_rss(long *rss_kib, long *anon_kib);

/* Grows this process with private, touched (dirty) anonymous memory until
 * its anonymous resident size (RssAnon) is about `anon_kib` KiB: the pages
 * fork(2) must copy-on-write-protect. Every page gets a non-zero byte, so
 * none is left unpopulated. */
static inline void ballast_anon(long anon_kib) {
  long rss, anon;
  self_rss(&rss, &anon);
  long kib = anon_kib - (anon > 0 ? anon : 0);
  if (kib <= 0) return;
  size_t bytes = (size_t)kib * 1024;
  unsigned char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die("mmap ballast");
  long page = sysconf(_SC_PAGESIZE);
  for (size_t off = 0; off < bytes; off += (size_t)page) p[off] = (unsigned char)(1 + (off / (size_t)page) % 251);
}

/* Then maps `path` read-only and reads one byte per page until the
 * resident size (VmRSS) is about `rss_kib`: file-backed resident pages,
 * like a Bun process's own executable text, whose page tables fork(2)
 * does not copy. */
static inline void ballast_file(long rss_kib, const char *path) {
  long rss, anon;
  self_rss(&rss, &anon);
  long kib = rss_kib - (rss > 0 ? rss : 0);
  if (kib <= 0 || path == NULL) return;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open file ballast");
  struct stat st;
  if (fstat(fd, &st) != 0) die("fstat file ballast");
  size_t bytes = (size_t)kib * 1024;
  if (bytes > (size_t)st.st_size) bytes = (size_t)st.st_size;
  volatile unsigned char *p = mmap(NULL, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) die("mmap file ballast");
  close(fd);
  long page = sysconf(_SC_PAGESIZE);
  unsigned sum = 0;
  for (size_t off = 0; off < bytes; off += (size_t)page) sum += p[off];
  (void)sum;
}

/* --anon-kib A (default: --rss-kib) of anonymous memory, then pages of
 * --file F up to --rss-kib in total: the shape of the Bun process measured. */
static inline void *ballast(int argc, char **argv) {
  long rss_kib = arg_long(argc, argv, "--rss-kib", 0);
  long anon_kib = arg_long(argc, argv, "--anon-kib", rss_kib);
  ballast_anon(anon_kib);
  ballast_file(rss_kib, arg_str(argc, argv, "--file", NULL));
  return NULL;
}

/* VmRSS and RssAnon of this process, in KiB. */
static inline void self_rss(long *rss_kib, long *anon_kib) {
  *rss_kib = -1;
  *anon_kib = -1;
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return;
  char line[256];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "VmRSS:", 6) == 0) *rss_kib = strtol(line + 6, NULL, 10);
    if (strncmp(line, "RssAnon:", 8) == 0) *anon_kib = strtol(line + 8, NULL, 10);
  }
  fclose(f);
}

/* {"name":..., "rss_kib":..., "rss_anon_kib":..., "elapsed_ns":..., "samples_ns":[...]} */
static inline void print_result(const char *name, const uint64_t *samples, long count, uint64_t elapsed_ns, const char *extra_json) {
  long rss, anon;
  self_rss(&rss, &anon);
  printf("{\"name\":\"%s\",\"rss_kib\":%ld,\"rss_anon_kib\":%ld,\"elapsed_ns\":%llu", name, rss, anon, (unsigned long long)elapsed_ns);
  if (extra_json && *extra_json) printf(",%s", extra_json);
  printf(",\"samples_ns\":[");
  for (long i = 0; i < count; i++) printf(i ? ",%llu" : "%llu", (unsigned long long)samples[i]);
  printf("]}\n");
  fflush(stdout);
}

/* A SOCK_SEQPACKET socket pair and a forked peer process. Returns 0 in the
 * peer, which keeps pair[1]; the caller keeps pair[0] and gets the pid. */
static inline pid_t fork_peer(int pair[2]) {
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) die("socketpair");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  close(pair[pid == 0 ? 0 : 1]);
  return pid;
}

/* Most fds one message of a baseline carries. */
#define BENCH_MAX_FDS 4

/* Sends len bytes and `count` fds (SCM_RIGHTS, at most BENCH_MAX_FDS) in
 * one message; retries on EINTR. Returns what sendmsg returned. */
static inline ssize_t send_fds(int sock, const void *data, size_t len, const int *fds, int count) {
  struct iovec iov = {(void *)data, len};
  union {
    char buf[CMSG_SPACE(sizeof(int) * BENCH_MAX_FDS)];
    struct cmsghdr align;
  } control;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (count > 0) {
    if (count > BENCH_MAX_FDS) die("send_fds: too many fds");
    memset(&control, 0, sizeof control);
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)count);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)count);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)count);
  }
  ssize_t n;
  while ((n = sendmsg(sock, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  return n;
}

/* Receives one message: up to len bytes, and up to BENCH_MAX_FDS fds
 * (close-on-exec) into fds, their number into *fd_count; retries on EINTR.
 * Returns what recvmsg returned. */
static inline ssize_t recv_fds(int sock, void *data, size_t len, int fds[BENCH_MAX_FDS], int *fd_count) {
  struct iovec iov = {data, len};
  union {
    char buf[CMSG_SPACE(sizeof(int) * BENCH_MAX_FDS)];
    struct cmsghdr align;
  } control;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  ssize_t n;
  while ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  *fd_count = 0;
  if (n <= 0) return n;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    if (*fd_count + count > BENCH_MAX_FDS) die("recv_fds: too many fds");
    memcpy(fds + *fd_count, CMSG_DATA(c), sizeof(int) * (size_t)count);
    *fd_count += count;
  }
  return n;
}

static inline uint64_t *samples_alloc(long count) {
  uint64_t *s = calloc((size_t)(count > 0 ? count : 1), sizeof *s);
  if (!s) die("calloc samples");
  return s;
}

#endif
