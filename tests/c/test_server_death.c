/* A server killed by SIGKILL takes its children with it: each child dies
 * with the server (PR_SET_PDEATHSIG), native ones and exec'd programs
 * alike, so none is left running with nobody to reap or stop it.
 * stop_server_only's contract: the children keep running and the server
 * process stays as their reaper (serving nobody) until the last exits;
 * killing that reaper still takes them. */
#include "tree.h"

static const char *mark;

static void entry_program(libforks_ServerConn conn, int socket_fd) {
  (void)conn; (void)socket_fd;
  exec_marked_sh(mark, "exec sleep 1001");
}

static void entry_shell(libforks_ServerConn conn, int socket_fd) {
  (void)conn; (void)socket_fd;
  exec_marked_sh(mark, "sleep 1002; echo");
}

static void check_gone(pid_t pid, const char *what) {
  /* macOS has no PR_SET_PDEATHSIG: a SIGKILLed server's children outlive
   * it (README, Platforms). On the darwin paths that is what is checked,
   * and the test ends them itself. */
  if (darwin_paths()) {
    CHECK(!process_exited(pid));
    CHECK(kill(pid, SIGKILL) == 0);
    CHECK(wait_exited(pid, 1000) >= 0);
    return;
  }
  double took = wait_exited(pid, 1000);
  if (took < 0) fprintf(stderr, "%s %d still alive 1 s after its server was SIGKILLed\n", what, pid);
  CHECK(took >= 0);
}

int main(void) {
  test_deadline(60);
  if (darwin_paths()) not_on_darwin("children dying with a SIGKILLed server (no PR_SET_PDEATHSIG on macOS: they are checked alive and ended here)");
  libforks_ServerConn conn;
  pid_t pids[4];
  int exit_fds[4];

  /* 20 rounds: SIGKILL the server, every child is gone within 1 s */
  for (int round = 0; round < 20; round++) {
    mark = make_mark(round);
    CHECK_OK(libforks_start(&conn));
    pid_t server = libforks_get_server_pid(conn);
    for (int i = 0; i < 3; i++) CHECK_OK(libforks_fork(conn, &pids[i], NULL, &exit_fds[i], entry_pause));
    CHECK_OK(libforks_fork(conn, &pids[3], NULL, &exit_fds[3], entry_program));
    CHECK(wait_marked(mark, 1, 5000) == 1);
    /* Whether the tree has a cgroup (Linux with cgroup v2 delegated; never
     * on the darwin paths): only then is its directory checked below, as
     * a directory of that name may be a stale one of an earlier server
     * that had the same pid. */
    int cgroup = in_tree_cgroup(pids[0], server);
    CHECK(kill(server, SIGKILL) == 0);
    CHECK(wait_exited(server, 1000) >= 0);
    for (int i = 0; i < 4; i++) check_gone(pids[i], i < 3 ? "child" : "program");
    CHECK(count_marked(mark, NULL, 0) == 0);
    for (int i = 0; i < 4; i++) {
      char byte;
      CHECK(read(exit_fds[i], &byte, 1) == 0); /* no event: nobody reaped it for us */
      close(exit_fds[i]);
    }
    CHECK_RESULT(libforks_stop(conn, true), libforks_SERVER_GONE);
    char dir[1024];
    if (cgroup && tree_cgroup_dir(server, dir, sizeof dir)) CHECK(access(dir, F_OK) != 0); /* not left behind */
  }

  /* Where the tree has a cgroup, the owner's stop after a SIGKILL of the
   * server kills what the children started (a shell's sleep, left by the
   * shell's death) and removes the cgroup */
  mark = make_mark(50);
  CHECK_OK(libforks_start(&conn));
  pid_t killed_server = libforks_get_server_pid(conn);
  CHECK_OK(libforks_fork(conn, &pids[0], NULL, NULL, entry_shell));
  CHECK(wait_marked(mark, 2, 5000) == 2);
  char cgroup_dir[1024];
  int cgroup = in_tree_cgroup(pids[0], killed_server) && tree_cgroup_dir(killed_server, cgroup_dir, sizeof cgroup_dir);
  CHECK(kill(killed_server, SIGKILL) == 0);
  check_gone(pids[0], "shell");
  CHECK_RESULT(libforks_stop(conn, true), libforks_SERVER_GONE);
  if (cgroup) {
    CHECK(wait_marked(mark, 0, 1000) == 0);
    CHECK(access(cgroup_dir, F_OK) != 0 && errno == ENOENT);
    printf("tree cgroup: the owner's stop killed what a SIGKILLed server's children left, and removed it\n");
  } else {
    pid_t left[2];
    int n = count_marked(mark, left, 2);
    for (int i = 0; i < n; i++) kill(left[i], SIGKILL);
    printf("no tree cgroup here: what a SIGKILLed server's children started is not covered\n");
  }

  /* stop_server_only: children keep running, the server stays as their
   * reaper; it exits after the last one, leaving no zombie */
  mark = make_mark(100);
  CHECK_OK(libforks_start(&conn));
  pid_t server = libforks_get_server_pid(conn);
  CHECK_OK(libforks_fork(conn, &pids[0], NULL, &exit_fds[0], entry_pause));
  CHECK_OK(libforks_fork(conn, &pids[1], NULL, &exit_fds[1], entry_program));
  CHECK(wait_marked(mark, 1, 5000) == 1);
  double start = now_ms();
  CHECK_OK(libforks_stop_server_only(conn));
  CHECK(now_ms() - start < 1000);
  for (int i = 0; i < 2; i++) {
    char byte;
    CHECK(read(exit_fds[i], &byte, 1) == 0);
    close(exit_fds[i]);
  }
  usleep(100000);
  CHECK(!process_exited(pids[0]) && !process_exited(pids[1]) && !process_exited(server));
  CHECK(kill(pids[0], SIGKILL) == 0);
  CHECK(wait_exited(pids[0], 1000) >= 0);
  /* reaped by the server, not left a zombie */
  char path[64];
  snprintf(path, sizeof path, "/proc/%d", pids[0]);
  start = now_ms();
  while (access(path, F_OK) == 0 && now_ms() - start < 1000) usleep(1000);
  CHECK(access(path, F_OK) != 0);
  CHECK(!process_exited(server));
  CHECK(kill(pids[1], SIGTERM) == 0);
  CHECK(wait_exited(server, 1000) >= 0);

  /* a detached server that is SIGKILLed still takes its children; its
   * cgroup, which nobody is left to remove, goes when the next server
   * starts, and a live server's empty one stays */
  mark = make_mark(101);
  CHECK_OK(libforks_start(&conn));
  server = libforks_get_server_pid(conn);
  CHECK_OK(libforks_fork(conn, &pids[0], NULL, NULL, entry_program));
  CHECK(wait_marked(mark, 1, 5000) == 1);
  char detached_dir[1024];
  int detached_cgroup = in_tree_cgroup(pids[0], server) && tree_cgroup_dir(server, detached_dir, sizeof detached_dir);
  CHECK_OK(libforks_stop_server_only(conn));
  CHECK(kill(server, SIGKILL) == 0);
  check_gone(pids[0], "detached program");
  if (detached_cgroup) {
    CHECK(access(detached_dir, F_OK) == 0);
    /* A zombie still answers kill(pid, 0): the server counts as gone once
     * its reaper (init, here) took it. */
    snprintf(path, sizeof path, "/proc/%d", server);
    start = now_ms();
    while (access(path, F_OK) == 0 && now_ms() - start < 2000) usleep(1000);
    CHECK(access(path, F_OK) != 0);
    libforks_ServerConn idle, next;
    CHECK_OK(libforks_start(&idle));
    char idle_dir[1024];
    CHECK(tree_cgroup_dir(libforks_get_server_pid(idle), idle_dir, sizeof idle_dir));
    CHECK(access(idle_dir, F_OK) == 0);
    CHECK_OK(libforks_start(&next));
    CHECK(access(detached_dir, F_OK) != 0 && errno == ENOENT);
    CHECK(access(idle_dir, F_OK) == 0); /* a live server's, though empty */
    CHECK_OK(libforks_stop(next, true));
    CHECK_OK(libforks_stop(idle, true));
    CHECK(access(idle_dir, F_OK) != 0);
    printf("tree cgroup: a SIGKILLed detached server's was removed when the next server started\n");
  }
  return 0;
}
