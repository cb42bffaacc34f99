/*
 * libforks: a fork server for multithreaded programs.
 *
 * The server is a small process forked from the caller by libforks_start.
 * It forks children on request, reaps every one of them, reports each exit
 * on a pollable "exit fd", gives each child a socket to its parent, and
 * passes file descriptors between processes (SCM_RIGHTS).
 *
 * Platforms: Linux (glibc and musl, x86-64 and AArch64) is built and tested.
 * macOS (x86-64 and arm64) is built from the same sources but not tested.
 *
 * Thread safety: every function may be called concurrently from any number
 * of threads on one shared libforks_ServerConn, with one exception: a call
 * that invalidates the connection (libforks_stop, libforks_stop_server_only,
 * libforks_stop_finish, libforks_free_conn) must not run concurrently with
 * another call on the same handle, exactly like close(2) on an fd. Threads
 * that stop or free on their own schedule each take a handle of their own
 * (libforks_conn_share).
 *
 * Blocking: the server never blocks on a request. While one client waits
 * for a child (libforks_wait, libforks_wait_all, libforks_stop with wait),
 * every other client, and the same client from other threads, is served.
 * Nor does it wait on any fd a client controls: it writes replies and exit
 * events through write ends of its own, non-blocking (on Linux it re-opens
 * each pipe it is given through /proc/self/fd, so the client clearing
 * O_NONBLOCK on its copy changes nothing), and a reply or exit event that
 * does not fit its pipe (a client that filled the pipe itself) is dropped:
 * the pipe is closed and its reader finds end-of-file after whatever it
 * wrote there. Reply fds and exit fds must be anonymous pipes (libforks_pipe);
 * a request whose reply fd is anything else is discarded unanswered. Where
 * /proc is not mounted, and on macOS, the server can only set O_NONBLOCK on
 * the shared file description, which a client can undo.
 *
 * Who may do what: the server's peers are the owner (the process that
 * called libforks_start, on the connection it returned) and each running
 * child, on the connection the server made for it at its fork. Like
 * waitpid(2) and kill(2) on one's own children, a peer waits for and
 * signals only its subtree: the children it forked through the server and,
 * transitively, theirs. Every child of the server descends from the owner,
 * so the owner's subtree is every child. When a child exits, its children
 * (running, or exited and not yet waited for) pass to its parent. A child
 * has a quota of its own (LIBFORKS_MAX_*_PER_PEER), and all children
 * together leave the owner a reserve, so no child can make the owner's
 * fork or wait fail with LIMIT_ERROR. Only the owner stops the server. A
 * child's connection is its own: shutting it down cuts off only that
 * child's requests, and garbage sent on it is discarded; neither touches a
 * sibling's connection or the owner's. A process that holds a copy of a connection (passed with
 * SCM_RIGHTS, or a plain fork()) acts with that connection's authority,
 * except for stop: the server checks the kernel-stamped sender pid.
 *
 * Tree supervision (Linux): the server supervises every process its
 * children create, not only the children.
 *  - The server is a child subreaper (PR_SET_CHILD_SUBREAPER): a process
 *    below a child whose parent exits (a double-forked setsid daemon, a
 *    shell's background job) is re-parented to the server, which reaps it
 *    without reporting it (it is no child of the caller: libforks_wait and
 *    exit fds never show it) and signals it on stop, on the owner's death
 *    and with libforks_kill_all.
 *  - Where a writable cgroup v2 is mounted, every child joins the tree's
 *    own cgroup, libforks-<server pid>, beside the server's (the server is
 *    not in it) before running any of the caller's code; nothing below it
 *    can leave it without privileges, and the SIGKILL of a stop, of the
 *    owner's death or of libforks_kill_all(SIGKILL) goes to all of it at
 *    once (cgroup.kill, Linux 5.14). The server removes it when it exits.
 *    Without one, the subreaper alone reaches the tree: each death
 *    re-parents the next generation to the server, which kills it in turn.
 *  - Each child dies with its server (PR_SET_PDEATHSIG = SIGKILL, checked
 *    against the race with the server's exit), exec'd programs included
 *    (a set-user-ID program drops it).
 *  - The owner's exit is watched on a pidfd (Linux 5.3) opened while the
 *    owner is known alive, so an owner that is a zombie counts as gone.
 *    Without pidfds the server probes the owner's pid every 250 ms and
 *    treats a zombie as gone; a pid reused by then hides the death, and
 *    the owner's connection ending is what stops the server.
 * Not covered: SIGTERM (the first step of a stop) goes to the children and
 * to adopted processes, not to descendants below a living child (they get
 * the SIGKILL 500 ms later); processes that are not descendants (a
 * privileged process that moves itself to another cgroup and was adopted
 * by another subreaper); and, when the server itself is SIGKILLed, the
 * descendants of its children: the children die, what they started is
 * re-parented above the server. With a tree cgroup they are still in it,
 * and the owner's libforks_stop (or libforks_free_conn) after the server's
 * death kills them (cgroup.kill through a directory fd the server handed
 * the owner at start, so never a namesake) and removes the cgroup; if the
 * owner never calls either, they stay, and so does the cgroup directory
 * until the next server starts beside it (each new server removes the
 * empty libforks-<pid> cgroups of servers that are gone). macOS:
 * none of the above; the server supervises its direct children only.
 *
 * This header is the fork-server API. What bindings and event loops need
 * besides (asynchronous requests and their reply fds, libforks_fork_async,
 * pipes and socket pairs, memfds, doorbells, sharing a connection with
 * another thread by token) is in libforks_ext.h.
 *
 * Errors: functions return a libforks_Result. When a system call failed,
 * its errno is kept per thread and returned by libforks_last_errno(), for
 * callers (such as Bun FFI) that cannot read the C errno; errno itself is
 * also set.
 */
#ifndef LIBFORKS_H
#define LIBFORKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Data types                                                          */
/* ------------------------------------------------------------------ */

/* A connection to a fork server. Initialized by libforks_start; children
 * receive one as the first argument of their entrypoint (their own socket
 * to the server, made at their fork; it ends when the child exits, so a
 * process the child made with a plain fork() loses it then).
 * Passed by value: it holds a single pointer. */
/* generated: ServerConn (from zig/abi.zig by zig build: do not edit) */
typedef struct { void *private; } libforks_ServerConn;
/* end generated: ServerConn */

/* Written (exactly once, 8 bytes; followed by a struct rusage when the
 * fork asked for exit_rusage) on a child's exit fd when it has exited
 * and been reaped by the server; the write end is then closed, so a second
 * read returns end-of-file. (If the reader filled the pipe itself, the
 * event is dropped and only end-of-file comes; libforks_wait still reports
 * the status.) wait_status is decoded with WIFEXITED,
 * WEXITSTATUS, WIFSIGNALED, WTERMSIG. */
/* generated: ExitEvent (from zig/abi.zig by zig build: do not edit) */
typedef struct {
  pid_t pid;       /* Child process pid */
  int wait_status; /* Status returned by waitpid(2) */
} libforks_ExitEvent;
/* end generated: ExitEvent */

/* generated: results (from zig/abi.zig by zig build: do not edit) */
typedef enum {
  libforks_OK = 0, /* No error */
  libforks_READ_ERROR = -1,
  libforks_WRITE_ERROR = -2,
  libforks_KILL_ERROR = -3,
  libforks_SOCKET_CREATION_ERROR = -4,
  libforks_MALLOC_ERROR = -5,
  libforks_FORK_ERROR = -6,
  libforks_WAIT_ERROR = -7,
  libforks_STOP_ERROR = -8,
  libforks_PIPE_CREATION_ERROR = -9,
  /* Codes added by this implementation (only ever appended). */
  libforks_INVALID_ARGUMENT = -10, /* a NULL pointer, bad pid, bad signal... */
  libforks_SERVER_GONE = -11,      /* the server exited or was stopped */
  libforks_NOT_OWNER = -12,        /* only the process that started the server may stop it */
  libforks_PROTOCOL_ERROR = -13,   /* a malformed message was received */
  libforks_WOULD_BLOCK = -14,      /* WNOHANG and nothing to report yet (not a failure) */
  libforks_LOAD_ERROR = -15,       /* dlopen or dlsym failed */
  libforks_EXEC_ERROR = -16,       /* a spawned program could not be started */
  libforks_THREAD_ERROR = -17,     /* the readiness thread could not be started */
  libforks_LIMIT_ERROR = -18,      /* a fixed limit of this library was reached */
} libforks_Result;
/* end generated: results */

/* Fixed limits. Requests beyond them fail with libforks_LIMIT_ERROR. The
 * server raises its own RLIMIT_NOFILE to hold them; when the hard limit is
 * too low for that, it accepts fewer running children (three fds each) and
 * fork fails with LIMIT_ERROR past that, or errno EMFILE when a request's
 * fds could not be received. */
/* generated: limits (from zig/abi.zig by zig build: do not edit) */
#define LIBFORKS_MAX_CHILDREN 4096     /* running children per server */
#define LIBFORKS_MAX_PENDING 1024      /* outstanding waits per server */
#define LIBFORKS_MAX_EXIT_RECORDS 1024 /* remembered exits of the owner's children */
#define LIBFORKS_MAX_PATH 4096         /* library path for libforks_fork_symbol */
#define LIBFORKS_MAX_SYMBOL 1024       /* symbol name for libforks_fork_symbol */
#define LIBFORKS_MAX_FDS 253           /* fds in one message (Linux SCM_MAX_FD) */
#define LIBFORKS_MAX_SHARE_TOKENS 1024 /* unattached libforks_conn_token tokens per process */
/* end generated: limits */

/* What one child of the server may hold (see "Who may do what" below):
 * the owner may use every table to its end; a child's whole subtree (what
 * it forked through the server, and what those forked) holds at most
 * LIBFORKS_MAX_CHILDREN_PER_PEER running children, its own requests at
 * most LIBFORKS_MAX_PENDING_PER_PEER outstanding waits, and the exits of
 * the children it forked (and those it inherits from a child of its that
 * exited) at most LIBFORKS_MAX_EXIT_RECORDS_PER_PEER remembered exits
 * (its oldest is forgotten first). All children together
 * leave the owner a reserve: their forks stop LIBFORKS_OWNER_RESERVED_CHILDREN
 * short of the server's child limit (a quarter of it when the fd limit
 * makes it smaller), their waits LIBFORKS_OWNER_RESERVED_PENDING short of
 * LIBFORKS_MAX_PENDING, and their children's remembered exits number at
 * most LIBFORKS_MAX_PEER_EXIT_RECORDS. Past a quota: LIMIT_ERROR. */
/* generated: quotas (from zig/abi.zig by zig build: do not edit) */
#define LIBFORKS_MAX_CHILDREN_PER_PEER 256
#define LIBFORKS_OWNER_RESERVED_CHILDREN 1024
#define LIBFORKS_MAX_PENDING_PER_PEER 64
#define LIBFORKS_OWNER_RESERVED_PENDING 256
#define LIBFORKS_MAX_EXIT_RECORDS_PER_PEER 64
#define LIBFORKS_MAX_PEER_EXIT_RECORDS 256
/* end generated: quotas */

/* ------------------------------------------------------------------ */
/* Server life                                                         */
/* ------------------------------------------------------------------ */

/* Start a fork server and initialize *conn_ptr.
 *
 * Children are forked from the server, so each is a copy of the caller as
 * it was at this call: functions and libraries loaded later are not mapped
 * in children (use libforks_fork_symbol to dlopen them in the child).
 *
 * May be called from a multithreaded process: the server is created with
 * the C library's fork(), which holds the C library's internal locks
 * (malloc, stdio, the dynamic loader) across the fork, so children can use
 * malloc, stdio and dlopen. Locks of other libraries held by other threads
 * at this moment stay held in every child: start the server before such
 * threads exist when children call into those libraries.
 *
 * The server closes every inherited fd that is close-on-exec and keeps the
 * others (stdio, fds the caller left inheritable), so every child has them.
 * When the calling process dies (even by SIGKILL), the server sends SIGTERM
 * to its children, SIGKILL after 500 ms to the whole tree (see "Tree
 * supervision"), and exits once nothing of the tree is left.
 * The server is not a child of the caller (it is re-parented at once),
 * unless the caller is a subreaper or PID 1 (a container's init): then it
 * is re-parented to the caller, and libforks_stop (with wait) and
 * libforks_free_conn reap it; a stop without wait reaps it only if it is
 * already gone, and a server left by libforks_stop_server_only is the
 * caller's to reap.
 *
 * Many servers may run at once, started from one or many processes. */
libforks_Result libforks_start(libforks_ServerConn *conn_ptr);

/* How a server is made. */
/* generated: modes (from zig/abi.zig by zig build: do not edit) */
#define libforks_MODE_SNAPSHOT 0 /* a fork of the caller (libforks_start) */
#define libforks_MODE_CLEAN 1    /* a fresh libforks-server program */
/* end generated: modes */

/* generated: StartOptions (from zig/abi.zig by zig build: do not edit) */
typedef struct {
  size_t size;             /* sizeof(libforks_StartOptions) */
  int mode;                /* libforks_MODE_* */
  const char *server_path; /* clean: path of the libforks-server executable
                              shipped beside the library in lib/<platform>/ */
  int server_fd;           /* clean, Linux: an fd of that executable (e.g. a
                              memfd) run with fexecve; -1 to use server_path */
} libforks_StartOptions;
/* end generated: StartOptions */

/* libforks_start with options. NULL options: snapshot mode.
 *
 * Clean mode forks the caller only to execve libforks-server at once: the
 * server is a fresh single-threaded process holding none of the caller's
 * memory (nor its fork cost, which grows with the caller's resident size).
 * Every function works on it unchanged, except that children can only run
 * libforks_fork_symbol entrypoints (with a library path: the server's own
 * image exports nothing) and libforks_exec_entrypoint; libforks_fork with
 * any other function pointer fails with INVALID_ARGUMENT. The server gets
 * the caller's environment, stdio and inheritable fds. Errors: as
 * libforks_start, plus EXEC_ERROR (errno of execve) and INVALID_ARGUMENT
 * (size too small, unknown mode, neither path nor fd). */
libforks_Result libforks_start_ex(libforks_ServerConn *conn_ptr,
                                  const libforks_StartOptions *options);

/* Pid of the server process, or -1 for an invalid connection. */
pid_t libforks_get_server_pid(libforks_ServerConn conn);

/* Send `signal` to every running child in the caller's subtree (from the
 * owner: every child of the server; from a child: those it forked through
 * the server, and theirs). From the owner also (Linux) to every process of
 * the tree the server adopted and, with SIGKILL, to every process in the
 * tree's cgroup, if there is one. 0 checks that the server is alive.
 * Children that have exited but are not yet reaped are skipped. Every pid
 * signalled is an unreaped child of the server, so none can have been
 * reused. Errors: INVALID_ARGUMENT (signal out of range), KILL_ERROR.
 * libforks_kill_all_async (libforks_ext.h) returns a reply fd instead of
 * waiting. Requests on one connection are served in the order they were
 * sent, so every fork sent before reaches its child. */
libforks_Result libforks_kill_all(libforks_ServerConn conn, int signal);

/* Send `signal` to one child of the server, through the server: only
 * while `pid` is in its table (running, or exited but not yet reaped by
 * it), so a pid the kernel has given to another process is never
 * signalled (kill(2) from the caller could be, once the server reaped the
 * child). 0 checks that the child is still there.
 * Errors: KILL_ERROR with errno ESRCH when pid is not (or no longer) a
 * child of this server, or the errno of kill(2); INVALID_ARGUMENT (pid <=
 * 0, signal out of range, unknown flags); SERVER_GONE. */
libforks_Result libforks_kill(libforks_ServerConn conn, pid_t pid, int signal);

/* libforks_kill of the child and every process below it (Linux): each
 * descendant is signalled, top-down, through a pidfd checked against the
 * parent it was found under, so a reused pid is never signalled either.
 * Not reached: processes forked while the walk runs, and descendants
 * whose parent exited (they were re-parented to the server, which no
 * longer knows whose they were: libforks_kill_all, stop and the owner's
 * death reach them). At most 4,096 processes per call. Elsewhere (no
 * pidfds): the child only. */
libforks_Result libforks_kill_tree(libforks_ServerConn conn, pid_t pid, int signal);

/* Stop the server and send SIGTERM to every child (and adopted process);
 * those still running 500 ms later get SIGKILL, with the whole tree.
 *
 * wait = true: returns once every child, every process of the tree and
 * the server process are gone.
 * wait = false: returns once SIGTERM was sent; the server keeps reaping,
 * reporting exits on exit fds and escalating to SIGKILL, then exits when no
 * child is left.
 *
 * Only the process that called libforks_start may stop the server (others
 * get NOT_OWNER and the connection stays valid). On return the connection
 * is invalid and its memory freed, whatever the result. */
libforks_Result libforks_stop(libforks_ServerConn conn, bool wait);

/* Stop the server without touching its children: they keep running.
 * Since they die with the server (see "Tree supervision"), the server
 * process stays, as their reaper only: it closes every connection (a
 * child's requests get SERVER_GONE), closes every exit fd without an
 * event (end-of-file), no longer minds the owner's death, reaps the
 * children and the processes of their trees, and exits after the last
 * one. SIGKILL of that process kills the children. Returns once the server
 * stopped serving. Owner only, like libforks_stop. Invalidates the
 * connection. */
libforks_Result libforks_stop_server_only(libforks_ServerConn conn);

/* Close a connection without stopping anything: for a child that does not
 * need its connection, or for the owner that wants the server to shut down
 * as if the owner had died. Frees the connection. Always succeeds. With
 * shared handles (below) the connection closes with the last of them.
 * When the owner is the server's parent (a subreaper or PID 1 caller),
 * this waits for the server to exit and reaps it. */
void libforks_free_conn(libforks_ServerConn conn);

/* Another handle on the same connection, for a thread with its own event
 * loop (a Bun Worker): calls through *shared_ptr are calls on conn; each
 * handle is freed with libforks_free_conn, and the connection's socket and
 * memory go with the last one. After a stop, the other handles' calls fail
 * with SERVER_GONE; they must still be freed. */
libforks_Result libforks_conn_share(libforks_ServerConn conn,
                                    libforks_ServerConn *shared_ptr);

/* ------------------------------------------------------------------ */
/* Forking                                                             */
/* ------------------------------------------------------------------ */

/* The function a child runs. `conn` is the child's connection to the
 * server (the child may fork children of its own with it, which it alone
 * and its ancestors may wait for and signal; it cannot stop the server);
 * `socket_fd` is the child's end of its socket to the caller, or -1 when
 * the caller did not ask for one. When the entrypoint returns, the child
 * flushes stdio and calls _exit(0): atexit handlers inherited from the
 * caller's image are not run. */
typedef void (*libforks_Entrypoint)(libforks_ServerConn conn, int socket_fd);

/* Fork a child of the server that runs `entrypoint`.
 *
 * Out parameters may be NULL.
 *   *pid_ptr       pid of the child.
 *   *socket_fd_ptr caller's end of a SOCK_SEQPACKET socket pair (message
 *                  boundaries kept; SOCK_DGRAM on macOS) whose other end
 *                  the child receives as `socket_fd`. Close-on-exec.
 *   *exit_fd_ptr   read end of a pipe on which one libforks_ExitEvent is
 *                  written when the child exits; pollable. Close-on-exec.
 *                  The caller closes it.
 *
 * `entrypoint` must be mapped in the server, i.e. already loaded when
 * libforks_start ran. The child starts with an empty signal mask, every
 * signal at its default disposition, the server's stdio and the fds the
 * caller left inheritable at start, and nothing else of the library's.
 *
 * Errors: INVALID_ARGUMENT (NULL entrypoint), SOCKET_CREATION_ERROR,
 * PIPE_CREATION_ERROR (caller out of fds), FORK_ERROR (errno from fork(2),
 * e.g. EAGAIN at RLIMIT_NPROC), LIMIT_ERROR (LIBFORKS_MAX_CHILDREN, or
 * from a child, its quota LIBFORKS_MAX_CHILDREN_PER_PEER or the owner's
 * reserve), SERVER_GONE. */
libforks_Result libforks_fork(
  libforks_ServerConn conn,
  pid_t *pid_ptr,       /* out */
  int *socket_fd_ptr,   /* out */
  int *exit_fd_ptr,     /* out */
  void (*entrypoint)(libforks_ServerConn conn, int socket_fd));

/* Like libforks_fork, but the child first loads `library` with
 * dlopen(RTLD_NOW) and runs its exported `symbol` (an Entrypoint), so the
 * library need not be loaded when the server started. `library` NULL means
 * the symbol is looked up in the server's image. The caller checks, before
 * forking, that the library loads and exports the symbol (it dlopens it in
 * the calling process): LOAD_ERROR otherwise. If loading still fails in the
 * child, the child prints the reason to stderr and exits with status 127.
 * A clean server looks up, once and itself, the symbols of libraries it has
 * already mapped (the C library, say; RTLD_NOLOAD, so nothing is loaded or
 * initialized in the server) and hands children the address: the same one
 * their own dlopen would find, without its cost in every child. */
libforks_Result libforks_fork_symbol(
  libforks_ServerConn conn,
  pid_t *pid_ptr,     /* out */
  int *socket_fd_ptr, /* out */
  int *exit_fd_ptr,   /* out */
  const char *library,
  const char *symbol);

/* ------------------------------------------------------------------ */
/* Waiting                                                             */
/* ------------------------------------------------------------------ */

/* waitpid(2) performed by the server, for the caller, on a child of that
 * server.
 *
 * The server reaps every child as soon as it exits (no zombie lingers) and
 * remembers its status and rusage until someone waits for it (at most
 * LIBFORKS_MAX_EXIT_RECORDS exits of the owner's children, and apart from
 * those the quotas above for children's children; the oldest is forgotten
 * first). Waiting never consumes the exit fd's event: both report.
 *
 *   pid > 0   that child. If it already exited, returns at once.
 *   pid == -1 any child in the caller's subtree (from the owner: any child
 *             of the server): the earliest remembered exit, or the next.
 *   options   0 or WNOHANG. With WNOHANG, when no matching child has exited
 *             yet, returns libforks_WOULD_BLOCK.
 *
 * A status is reported once: a second wait for the same pid, or a pid that
 * is not in the caller's subtree (a sibling, from a child; not a child of
 * this server at all), fails with WAIT_ERROR and errno ECHILD, as does
 * pid == -1 when the subtree has no child and no remembered exit. Pending
 * waits of a child that exits are answered SERVER_GONE.
 * Other pid values (0, < -1) or options: INVALID_ARGUMENT.
 * stat_loc and rusage may be NULL. */
libforks_Result libforks_wait(
  libforks_ServerConn conn,
  pid_t pid,
  int *stat_loc,        /* out */
  int options,
  struct rusage *rusage /* out */
);

/* libforks_wait that also reports which child it waited for: *waited_pid
 * gets its pid (useful with pid == -1). May be NULL. */
libforks_Result libforks_waitpid(
  libforks_ServerConn conn,
  pid_t pid,
  pid_t *waited_pid,    /* out */
  int *stat_loc,        /* out */
  int options,
  struct rusage *rusage /* out */
);

/* Returns once no child in the caller's subtree is running (from the
 * owner: no child of the server; at once if none is).
 * Remembered exits are kept: libforks_wait still reports them. */
libforks_Result libforks_wait_all(libforks_ServerConn conn);

/* ------------------------------------------------------------------ */
/* File descriptor passing                                             */
/* ------------------------------------------------------------------ */

/* Receive up to `length` bytes and up to `max_fd_count` fds (SCM_RIGHTS)
 * from a socket. Returns the number of bytes received (0 at end-of-file),
 * or -1 with errno set. Received fds are stored at fds[0..k) and are
 * close-on-exec; the remaining slots up to max_fd_count are set to -1.
 * If the sender sent more fds than fit (MSG_CTRUNC) or, on a message
 * socket, a message longer than `length` (MSG_TRUNC), every fd received is
 * closed and -1 is returned with errno EMSGSIZE. EINTR is retried. */
int libforks_read_socket_fds(int socket_fd, void *data, size_t length,
                             int *fds, size_t max_fd_count);

/* Send `length` bytes (at least 1) with `fd_count` fds (at most
 * LIBFORKS_MAX_FDS). Returns `length`, or -1 with errno set. Never raises
 * SIGPIPE (EPIPE is returned instead). EINTR is retried; on a stream
 * socket, a partial send is completed (the fds travel with the first
 * byte). */
int libforks_write_socket_fds(int socket_fd, const void *data, size_t length,
                              const int *fds, size_t fd_count);

/* ------------------------------------------------------------------ */
/* Running programs                                                    */
/* ------------------------------------------------------------------ */

/* An Entrypoint, exported so it is mapped in every server, that reads an
 * exec spec from its socket and execve(2)s it. libforks_fork recognizes it
 * and asks the server for its own copy, so it works on clean servers too. Fork it with libforks_fork
 * (asking for a socket), send the spec with libforks_send_exec_spec, then
 * call libforks_read_exec_result. The spec maps received fds to chosen fd
 * numbers; every other fd is closed in the new program. */
void libforks_exec_entrypoint(libforks_ServerConn conn, int socket_fd);

/* Send an exec spec on the socket of a child running
 * libforks_exec_entrypoint. `path` is executed as is (no PATH search).
 * argv and envp are NULL-terminated. `cwd` may be NULL. fds[i] becomes fd
 * number targets[i] in the new program (fd_count at most LIBFORKS_MAX_FDS).
 * Errors: INVALID_ARGUMENT (a target repeated or negative, spec longer than
 * 4 MiB), WRITE_ERROR. */
libforks_Result libforks_send_exec_spec(int socket_fd, const char *path,
                                        const char *const *argv,
                                        const char *const *envp,
                                        const char *cwd, const int *fds,
                                        const int *targets, size_t fd_count);

/* Wait (blocking) until the child either called execve successfully (OK)
 * or failed before it (EXEC_ERROR, with the failing call's errno; the child
 * then exits with status 127). *failed_step_ptr (may be NULL) gets which
 * step failed: 1 receive spec, 2 map fds, 3 chdir, 4 execve. Closes
 * socket_fd in both cases. */
libforks_Result libforks_read_exec_result(int socket_fd, int *failed_step_ptr);

/* ------------------------------------------------------------------ */
/* Errors and small utilities                                          */
/* ------------------------------------------------------------------ */

/* "OK", "FORK_ERROR", ... (the enum name without the prefix); "UNKNOWN"
 * for values this version does not know. Static storage. */
const char *libforks_result_string(libforks_Result result);

/* errno of the last failed system call made by a libforks function on the
 * calling thread, 0 if none. */
int libforks_last_errno(void);

/* Version of this library, e.g. "0.1.0". */
const char *libforks_version(void);

#ifdef __cplusplus
}
#endif

#endif /* LIBFORKS_H */
