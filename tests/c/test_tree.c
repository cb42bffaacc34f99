/* The server supervises the tree, not the list of its children. Each
 * process below a child carries a marker in its environment (tree.h).
 *
 * 1. 50 rounds: the owner is SIGKILLed while one child runs a shell that
 *    started three sleeps (grandchildren) and another double-forked a
 *    setsid daemon: nothing of the tree is left 1 s later.
 * 2. stop(wait) returns only once the tree is gone; killAll(SIGKILL)
 *    takes the orphans the server adopted.
 * 3. Where a writable cgroup v2 exists (this says which), every child is
 *    in the tree's cgroup, and it is removed when the server exits.
 * macOS supervises the list (no subreaper, PR_SET_PDEATHSIG, cgroup or
 * /proc children): on the darwin paths each step checks that the direct
 * children go and what they started is left (the three sleeps and the
 * daemon), which the test then ends itself. */
#include "tree.h"

static const char *mark;

/* A shell with three grandchildren: `sh -c "sleep 1001; echo"` and two
 * more in the background. */
static void entry_shell(libforks_ServerConn conn, int socket_fd) {
  (void)conn; (void)socket_fd;
  exec_marked_sh(mark, "sleep 1001 & sleep 1002 & sleep 1003; echo");
}

/* The classic daemon: fork, setsid, fork, the middle exits; the daemon
 * is no descendant of anyone alive in the tree but the server. */
static void entry_daemonize(libforks_ServerConn conn, int socket_fd) {
  (void)conn; (void)socket_fd;
  pid_t first = fork();
  if (first == 0) {
    setsid();
    if (fork() == 0) exec_marked_sh(mark, "exec sleep 1004");
    _exit(0);
  }
  waitpid(first, NULL, 0);
  exec_marked_sh(mark, "exec sleep 1005");
}

/* sh + 3 sleeps; the daemon; the daemonizer's own sleep. */
#define TREE_SIZE 6

/* What a stop or the owner's death leaves of that tree: nothing, or on
 * the darwin paths the 3 sleeps and the daemon (ended by the caller). */
static int left_of_tree(void) { return darwin_paths() ? 4 : 0; }

static void end_what_is_left(void) {
  if (!darwin_paths()) return;
  kill_marked(mark);
  CHECK(wait_marked(mark, 0, 1000) == 0);
}

static int start_tree(pid_t *pids, void *context) {
  (void)context;
  libforks_ServerConn conn;
  if (libforks_start(&conn) != libforks_OK) return 1;
  pids[0] = libforks_get_server_pid(conn);
  if (libforks_fork(conn, &pids[1], NULL, NULL, entry_shell) != libforks_OK) return 2;
  if (libforks_fork(conn, &pids[2], NULL, NULL, entry_daemonize) != libforks_OK) return 2;
  return 0;
}

static void owner_death_round(int round) {
  mark = make_mark(round);
  pid_t pids[3];
  pid_t owner = start_owner(start_tree, NULL, pids, 3, 0);
  int found = wait_marked(mark, TREE_SIZE, 5000);
  if (found != TREE_SIZE) fprintf(stderr, "round %d: %d marked processes, expected %d\n", round, found, TREE_SIZE);
  CHECK(found == TREE_SIZE);

  CHECK(kill(owner, SIGKILL) == 0);
  CHECK(waitpid(owner, NULL, 0) == owner);
  double start = now_ms();
  int left = wait_marked(mark, left_of_tree(), 1000);
  if (left != left_of_tree()) {
    fprintf(stderr, "round %d: %d processes of the tree still alive 1 s after the owner died:\n", round, left);
    print_marked(mark);
  }
  CHECK(left == left_of_tree());
  for (int i = 0; i < 3; i++) CHECK(wait_exited(pids[i], (int)(1000 - (now_ms() - start)) + 1) >= 0);
  end_what_is_left();
}

int main(void) {
  test_deadline(110);
  if (darwin_paths()) not_on_darwin("the tree taken with the owner's death, a stop and killAll (macOS: the direct children, checked instead)");
  for (int round = 0; round < 50; round++) owner_death_round(round);
  printf(darwin_paths() ? "50 rounds: owner SIGKILLed, its direct children gone within 1 s\n"
                        : "50 rounds: owner SIGKILLed, nothing of the tree left within 1 s\n");

  /* stop(wait) returns once the tree is gone, grandchildren included */
  mark = make_mark(100);
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  pid_t server = libforks_get_server_pid(conn), shell, daemonizer;
  CHECK_OK(libforks_fork(conn, &shell, NULL, NULL, entry_shell));
  CHECK_OK(libforks_fork(conn, &daemonizer, NULL, NULL, entry_daemonize));
  CHECK(wait_marked(mark, TREE_SIZE, 5000) == TREE_SIZE);
  int cgroup = in_tree_cgroup(shell, server);
  printf("tree cgroup: %s\n", cgroup ? "yes (a writable cgroup v2 is mounted)" : "no (subreaper only)");
  char cgroup_dir[512] = "";
  if (cgroup) {
    /* The daemon is in it too: it cannot leave. */
    pid_t marked[TREE_SIZE];
    CHECK(count_marked(mark, marked, TREE_SIZE) == TREE_SIZE);
    for (int i = 0; i < TREE_SIZE; i++) CHECK(in_tree_cgroup(marked[i], server));
    CHECK(tree_cgroup_dir(server, cgroup_dir, sizeof cgroup_dir));
    CHECK(access(cgroup_dir, F_OK) == 0);
  }
  CHECK_OK(libforks_stop(conn, true));
  CHECK(count_marked(mark, NULL, 0) == left_of_tree());
  end_what_is_left();
  CHECK(process_exited(server));
  if (cgroup) CHECK(access(cgroup_dir, F_OK) != 0 && errno == ENOENT);

  /* killAll(SIGKILL) takes adopted orphans (the daemon) too; the server
   * keeps serving */
  mark = make_mark(101);
  CHECK_OK(libforks_start(&conn));
  CHECK_OK(libforks_fork(conn, &daemonizer, NULL, NULL, entry_daemonize));
  CHECK(wait_marked(mark, 2, 5000) == 2);
  CHECK_OK(libforks_kill_all(conn, SIGKILL));
  /* darwin paths: the daemon is left */
  CHECK(wait_marked(mark, darwin_paths() ? 1 : 0, 1000) == (darwin_paths() ? 1 : 0));
  end_what_is_left();
  pid_t pid;
  int exit_fd;
  CHECK_OK(libforks_fork(conn, &pid, NULL, &exit_fd, entry_exit3));
  CHECK(WEXITSTATUS(read_exit_event(exit_fd, 5000).wait_status) == 3);
  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
