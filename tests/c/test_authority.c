/* A child of the server has authority over its own subtree only, like
 * waitpid(2) and kill(2) on one's own children, and a quota of its own:
 *   - a child that waits for a sibling gets ECHILD at once (it used to
 *     block and steal the status, leaving the owner ECHILD); wait(-1) of
 *     a child without children is ECHILD; its kill_all signals nothing of
 *     its siblings; the owner still gets the sibling's status;
 *   - a child's wait(-1) and wait_all are about its own children: answered
 *     while siblings run;
 *   - a child's subtree (its children and theirs) forks at most
 *     LIBFORKS_MAX_CHILDREN_PER_PEER, then LIMIT_ERROR, and the owner
 *     still forks;
 *   - 14 children that each try to hold LIBFORKS_MAX_PENDING waits get at
 *     most LIBFORKS_MAX_PENDING_PER_PEER each, all of them together
 *     LIBFORKS_MAX_PENDING - LIBFORKS_OWNER_RESERVED_PENDING, and the
 *     owner's own waits are still accepted;
 *   - exits of a child's children never push out the owner's remembered
 *     exits. */
#include "check.h"

static void send_int(int fd, int value) { CHECK(write(fd, &value, sizeof value) == sizeof value); }

/* Within 2 s, or the child is blocked where it must not be. */
static int receive_int(int fd) {
  if (!readable_within(fd, 2000)) {
    fprintf(stderr, "no answer from the child within 2 s\n");
    CHECK(0);
  }
  int value;
  CHECK(read(fd, &value, sizeof value) == sizeof value);
  return value;
}

static void child_send(int fd, int value) {
  if (write(fd, &value, sizeof value) != sizeof value) _exit(10);
}

static int child_receive(int fd) {
  int value;
  if (read(fd, &value, sizeof value) != sizeof value) _exit(11);
  return value;
}

/* Exits 7 when a byte arrives. */
static void entry_exit7_on_byte(libforks_ServerConn conn, int socket_fd) {
  (void)conn;
  char byte;
  if (read(socket_fd, &byte, 1) != 1) _exit(1);
  _exit(7);
}

/* Reaches for a sibling (its pid arrives on the socket). */
static void entry_reach_sibling(libforks_ServerConn conn, int socket_fd) {
  pid_t sibling = child_receive(socket_fd);
  int status;
  child_send(socket_fd, libforks_wait(conn, sibling, &status, 0, NULL));
  child_send(socket_fd, libforks_last_errno());
  child_send(socket_fd, libforks_wait(conn, -1, &status, 0, NULL));
  child_send(socket_fd, libforks_kill_all(conn, SIGKILL));
  /* its own children are its own */
  pid_t own;
  pid_t waited;
  int results = 0;
  if (libforks_fork(conn, &own, NULL, NULL, entry_exit3) != libforks_OK) _exit(12);
  if (libforks_waitpid(conn, -1, &waited, &status, 0, NULL) == libforks_OK && waited == own &&
      WEXITSTATUS(status) == 3) results |= 1;
  if (libforks_fork(conn, &own, NULL, NULL, entry_exit3) != libforks_OK) _exit(13);
  if (libforks_wait_all(conn) == libforks_OK) results |= 2;
  if (libforks_wait(conn, own, &status, 0, NULL) == libforks_OK && WEXITSTATUS(status) == 3) results |= 4;
  child_send(socket_fd, results);
  for (;;) pause();
}

static void siblings_out_of_reach(libforks_ServerConn conn) {
  int sibling_fd, reacher_fd;
  pid_t sibling, reacher;
  CHECK_OK(libforks_fork(conn, &sibling, &sibling_fd, NULL, entry_exit7_on_byte));
  CHECK_OK(libforks_fork(conn, &reacher, &reacher_fd, NULL, entry_reach_sibling));
  send_int(reacher_fd, sibling);
  CHECK_RESULT((libforks_Result)receive_int(reacher_fd), libforks_WAIT_ERROR);
  CHECK(receive_int(reacher_fd) == ECHILD);
  CHECK_RESULT((libforks_Result)receive_int(reacher_fd), libforks_WAIT_ERROR); /* wait(-1): none of its own */
  CHECK_OK((libforks_Result)receive_int(reacher_fd));                          /* kill_all: nothing to signal */
  CHECK(receive_int(reacher_fd) == 7);  /* wait(-1), wait_all, wait(pid) on its own children */
  int status;
  CHECK_RESULT(libforks_wait(conn, sibling, &status, WNOHANG, NULL), libforks_WOULD_BLOCK); /* alive */
  CHECK(write(sibling_fd, "x", 1) == 1);
  CHECK_OK(libforks_wait(conn, sibling, &status, 0, NULL));
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);
  /* the owner's authority is the whole tree */
  CHECK_OK(libforks_kill_all(conn, SIGKILL));
  CHECK_OK(libforks_wait(conn, reacher, &status, 0, NULL));
  CHECK(WIFSIGNALED(status));
  CHECK_OK(libforks_wait_all(conn));
  close(sibling_fd);
  close(reacher_fd);
  printf("siblings out of reach: wait ECHILD, kill_all none, own children waited\n");
}

/* Forks pause children until refused; with 1 on its socket it first has a
 * child of its own do the same, and counts that child's too. */
static void entry_fork_flood(libforks_ServerConn conn, int socket_fd) {
  int nested = child_receive(socket_fd);
  int total = 0;
  if (nested) {
    int sub_fd;
    if (libforks_fork(conn, NULL, &sub_fd, NULL, entry_fork_flood) != libforks_OK) _exit(12);
    child_send(sub_fd, 0);
    total += 1 + child_receive(sub_fd);
    child_receive(sub_fd); /* its last result */
  }
  libforks_Result last;
  while ((last = libforks_fork(conn, NULL, NULL, NULL, entry_pause)) == libforks_OK && total < 5000) total++;
  child_send(socket_fd, total);
  child_send(socket_fd, last);
  for (;;) pause();
}

static void fork_quota(libforks_ServerConn conn) {
  int flood_fd;
  CHECK_OK(libforks_fork(conn, NULL, &flood_fd, NULL, entry_fork_flood));
  send_int(flood_fd, 1);
  if (!readable_within(flood_fd, 30000)) CHECK(0);
  int total = receive_int(flood_fd);
  CHECK_RESULT((libforks_Result)receive_int(flood_fd), libforks_LIMIT_ERROR);
  printf("a child's subtree forked %d, then LIMIT_ERROR\n", total);
  CHECK(total == LIBFORKS_MAX_CHILDREN_PER_PEER);
  for (int i = 0; i < 100; i++) CHECK_OK(libforks_fork(conn, NULL, NULL, NULL, entry_pause));
  CHECK_OK(libforks_kill_all(conn, SIGKILL));
  CHECK_OK(libforks_wait_all(conn));
  close(flood_fd);
}

/* The server answers a peer's requests in order, and refuses at once
 * what it refuses: once the answer to a wait for a pid outside every
 * subtree (init) has come, the refusals of every earlier request have
 * too. Returns 0 when that answer came within 30 s. */
static int answered_so_far(libforks_ServerConn conn) {
  int barrier;
  if (libforks_wait_async(conn, 1, 0, &barrier) != libforks_OK) return -1;
  int ok = readable_within(barrier, 30000);
  close(barrier);
  return ok ? 0 : -1;
}

/* Holds as many waits for a child of its own as the server accepts. */
static void entry_hold_waits(libforks_ServerConn conn, int socket_fd) {
  pid_t own;
  if (libforks_fork(conn, &own, NULL, NULL, entry_pause) != libforks_OK) _exit(12);
  enum { TRIES = LIBFORKS_MAX_PENDING + 10 };
  static int replies[TRIES];
  int sent = 0;
  while (sent < TRIES && libforks_wait_async(conn, own, 0, &replies[sent]) == libforks_OK) sent++;
  /* refused ones are answered at once; accepted ones stay pending */
  if (answered_so_far(conn) != 0) _exit(13);
  int held = 0;
  for (int i = 0; i < sent; i++) {
    struct pollfd p = {.fd = replies[i], .events = POLLIN};
    if (poll(&p, 1, 0) == 0) held++;
  }
  child_send(socket_fd, held);
  for (;;) pause();
}

static void pending_quota(libforks_ServerConn conn) {
  enum { HOLDERS = 14 };
  int fds[HOLDERS], total = 0;
  for (int i = 0; i < HOLDERS; i++) CHECK_OK(libforks_fork(conn, NULL, &fds[i], NULL, entry_hold_waits));
  for (int i = 0; i < HOLDERS; i++) {
    int held = receive_int(fds[i]);
    CHECK(held <= LIBFORKS_MAX_PENDING_PER_PEER);
    total += held;
  }
  printf("%d children hold %d pending waits\n", HOLDERS, total);
  CHECK(total == LIBFORKS_MAX_PENDING - LIBFORKS_OWNER_RESERVED_PENDING);
  pid_t mine;
  CHECK_OK(libforks_fork(conn, &mine, NULL, NULL, entry_pause));
  static int replies[LIBFORKS_OWNER_RESERVED_PENDING];
  for (int i = 0; i < LIBFORKS_OWNER_RESERVED_PENDING; i++) CHECK_OK(libforks_wait_async(conn, mine, 0, &replies[i]));
  CHECK(answered_so_far(conn) == 0);
  for (int i = 0; i < LIBFORKS_OWNER_RESERVED_PENDING; i++) {
    struct pollfd p = {.fd = replies[i], .events = POLLIN};
    CHECK(poll(&p, 1, 0) == 0); /* pending, not refused */
  }
  CHECK_OK(libforks_kill_all(conn, SIGKILL));
  int got = 0;
  for (int i = 0; i < LIBFORKS_OWNER_RESERVED_PENDING; i++) {
    libforks_Reply reply;
    if (libforks_reply_read(replies[i], &reply) == libforks_OK) got++;
  }
  CHECK(got == 1);
  CHECK_OK(libforks_wait_all(conn));
  for (int i = 0; i < HOLDERS; i++) close(fds[i]);
}

/* Forks `count` children that exit at once, and waits for none. */
static void entry_unwaited_exits(libforks_ServerConn conn, int socket_fd) {
  int count = child_receive(socket_fd);
  for (int i = 0; i < count; i++) {
    int exit_fd;
    if (libforks_fork(conn, NULL, NULL, &exit_fd, entry_exit3) != libforks_OK) _exit(12);
    read_exit_event(exit_fd, 5000);
  }
  child_send(socket_fd, count);
  for (;;) pause();
}

static void remembered_exits(libforks_ServerConn conn) {
  enum { MINE = LIBFORKS_MAX_EXIT_RECORDS - 24 };
  static pid_t pids[MINE];
  int status;
  while (libforks_wait(conn, -1, &status, WNOHANG, NULL) == libforks_OK) {} /* earlier parts' */
  for (int i = 0; i < MINE; i++) {
    int exit_fd;
    CHECK_OK(libforks_fork(conn, &pids[i], NULL, &exit_fd, entry_exit3));
    read_exit_event(exit_fd, 5000);
  }
  int fd;
  pid_t forker;
  CHECK_OK(libforks_fork(conn, &forker, &fd, NULL, entry_unwaited_exits));
  send_int(fd, 300);
  if (!readable_within(fd, 30000)) CHECK(0);
  CHECK(receive_int(fd) == 300);
  for (int i = 0; i < MINE; i++) {
    CHECK_OK(libforks_wait(conn, pids[i], &status, WNOHANG, NULL));
    CHECK(WEXITSTATUS(status) == 3);
  }
  /* the child's children's exits: the newest LIBFORKS_MAX_EXIT_RECORDS_PER_PEER */
  int theirs = 0;
  pid_t waited;
  while (libforks_waitpid(conn, -1, &waited, &status, WNOHANG, NULL) == libforks_OK) theirs++;
  printf("owner's %d exits all remembered; %d of the child's 300\n", MINE, theirs);
  CHECK(theirs == LIBFORKS_MAX_EXIT_RECORDS_PER_PEER);
  CHECK_OK(libforks_kill_all(conn, SIGKILL));
  CHECK_OK(libforks_wait(conn, forker, &status, 0, NULL));
  close(fd);
}

int main(void) {
  test_deadline(100);
  libforks_ServerConn conn;
  CHECK_OK(libforks_start(&conn));
  siblings_out_of_reach(conn);
  fork_quota(conn);
  pending_quota(conn);
  remembered_exits(conn);
  CHECK_OK(libforks_stop(conn, true));
  return 0;
}
