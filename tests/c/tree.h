/* Helpers for the tests of tree supervision: processes of a test's tree
 * are found by a marker in their environment (LIBFORKS_TEST_MARK=<unique
 * string>), never by system-wide counts, since other tests run at the same
 * time. Every program the tests start below a child gets the marker. */
#ifndef LIBFORKS_TREE_H
#define LIBFORKS_TREE_H

#include "check.h"
#include <sys/prctl.h>

#define MARK_VARIABLE "LIBFORKS_TEST_MARK="

/* "LIBFORKS_TEST_MARK=tree-<pid>-<n>" in a static buffer. */
static inline const char *make_mark(int n) {
  static char mark[96];
  snprintf(mark, sizeof mark, MARK_VARIABLE "tree-%d-%d-%ld", getpid(), n, (long)time(NULL));
  return mark;
}

/* True when /proc/<pid>/environ holds `mark` as one whole entry. A zombie
 * has no environment, so it never matches (it is dead, only unreaped). */
static inline int has_mark(const char *pid, const char *mark) {
  char path[300];
  snprintf(path, sizeof path, "/proc/%s/environ", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  static char buf[1 << 16];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  size_t length = strlen(mark);
  for (ssize_t i = 0; i < n;) {
    if (strncmp(buf + i, mark, length) == 0 && buf[i + length] == 0) return 1;
    i += strlen(buf + i) + 1;
  }
  return 0;
}

/* Number of live processes carrying `mark`; their pids go to pids[] (up to
 * max) when given. */
static inline int count_marked(const char *mark, pid_t *pids, int max) {
  DIR *proc = opendir("/proc");
  CHECK(proc != NULL);
  int count = 0;
  for (struct dirent *e; (e = readdir(proc));) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    if (!has_mark(e->d_name, mark)) continue;
    if (pids && count < max) pids[count] = atoi(e->d_name);
    count++;
  }
  closedir(proc);
  return count;
}

/* Waits up to timeout_ms until exactly `expected` marked processes live;
 * returns how many there are at the end. */
/* SIGKILLs this test's processes that carry `mark`; returns how many. */
static inline int kill_marked(const char *mark) {
  pid_t pids[64];
  int n = count_marked(mark, pids, 64);
  for (int i = 0; i < n && i < 64; i++) kill(pids[i], SIGKILL);
  return n;
}

static inline int wait_marked(const char *mark, int expected, int timeout_ms) {
  double start = now_ms();
  int count;
  while ((count = count_marked(mark, NULL, 0)) != expected && now_ms() - start < timeout_ms) usleep(2000);
  return count;
}

static inline void print_marked(const char *mark) {
  pid_t pids[64];
  int count = count_marked(mark, pids, 64);
  for (int i = 0; i < count && i < 64; i++) {
    char command[160];
    snprintf(command, sizeof command, "ps -o pid,ppid,pgid,sid,stat,args -p %d | tail -n +2 >&2", pids[i]);
    if (system(command)) {}
  }
}

/* Runs `script` with /bin/sh and the marker in its environment: what a
 * child does to leave grandchildren behind. */
static inline void exec_marked_sh(const char *mark, const char *script) {
  char *const argv[] = {"sh", "-c", (char *)script, NULL};
  char *const envp[] = {(char *)mark, "PATH=/usr/bin:/bin", NULL};
  execve("/bin/sh", argv, envp);
  _exit(127);
}

/* The tree's cgroup of a child, if it is in one: 1 when /proc/<pid>/cgroup
 * names libforks-<server>. */
static inline int in_tree_cgroup(pid_t pid, pid_t server) {
  char path[64], name[64], line[512];
  snprintf(path, sizeof path, "/proc/%d/cgroup", pid);
  snprintf(name, sizeof name, "/libforks-%d", server);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  int found = 0;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "0::", 3) == 0 && strstr(line, name)) found = 1;
  }
  fclose(f);
  return found;
}

/* The directory of the tree's cgroup of `server` (a child of this
 * process's own cgroup v2 directory). 0 when there is no cgroup2 mount. */
static inline int tree_cgroup_dir(pid_t server, char *out, size_t size) {
  char line[1024], own[1024] = "", mount[1024] = "";
  FILE *f = fopen("/proc/self/cgroup", "r");
  CHECK(f != NULL);
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "0::", 3) == 0) memcpy(own, line + 3, strlen(line + 3) + 1);
  }
  fclose(f);
  own[strcspn(own, "\n")] = 0;
  f = fopen("/proc/self/mountinfo", "r");
  CHECK(f != NULL);
  while (fgets(line, sizeof line, f)) {
    char root[1024], point[1024];
    const char *type = strstr(line, " - cgroup2 ");
    if (type && sscanf(line, "%*s %*s %*s %1023s %1023s", root, point) == 2 && strcmp(root, "/") == 0) {
      memcpy(mount, point, strlen(point) + 1);
      break;
    }
  }
  fclose(f);
  if (!mount[0] || !own[0]) return 0;
  int n = snprintf(out, size, "%.400s%.400s/libforks-%d", mount, strcmp(own, "/") ? own : "", server);
  return n > 0 && (size_t)n < size;
}

#endif
