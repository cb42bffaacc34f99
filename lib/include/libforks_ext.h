/*
 * libforks_ext.h: what bindings and event loops need besides the
 * fork-server API of libforks.h (which this header includes): requests
 * that return a reply fd instead of blocking, forking without waiting,
 * the pipes and socket pairs those take, memfds, readiness notification
 * (doorbells), and handing a connection to another thread by token. The
 * Bun package is built on these; a C program rarely needs them.
 */
#ifndef LIBFORKS_EXT_H
#define LIBFORKS_EXT_H

#include <libforks.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Asynchronous requests                                               */
/* ------------------------------------------------------------------ */

/* The blocking requests of libforks.h also exist in a form that returns
 * at once with a "reply fd": the read end of a close-on-exec pipe that
 * becomes readable when the server has answered. Poll it, then pass it to
 * libforks_reply_read, which reads the answer and closes it. This is how
 * an event loop (such as Bun's) waits without blocking or a thread. */
/* generated: Reply (from zig/abi.zig by zig build: do not edit) */
typedef struct {
  int32_t result;       /* a libforks_Result */
  int32_t error_number; /* errno when result says a system call failed */
  int32_t pid;          /* waited pid (wait), child pid (fork) */
  int32_t wait_status;  /* waitpid(2) status (wait) */
  struct rusage rusage; /* the child's rusage (wait) */
} libforks_Reply;
/* end generated: Reply */

libforks_Result libforks_wait_async(libforks_ServerConn conn, pid_t pid,
                                    int options, int *reply_fd_ptr);
libforks_Result libforks_wait_all_async(libforks_ServerConn conn,
                                        int *reply_fd_ptr);
/* The reply arrives when libforks_stop would return, except that the
 * server may still be exiting: call libforks_stop_finish after reading it
 * to wait for the server to be gone and free the connection. */
libforks_Result libforks_stop_async(libforks_ServerConn conn, bool wait,
                                    bool server_only, int *reply_fd_ptr);
libforks_Result libforks_stop_finish(libforks_ServerConn conn);

/* Read the answer from a reply fd (blocking if it is not ready) and close
 * it. Returns reply->result, or SERVER_GONE if the server died first. */
libforks_Result libforks_reply_read(int reply_fd, libforks_Reply *reply);

/* libforks_kill_all returning a reply fd instead of waiting. */
libforks_Result libforks_kill_all_async(libforks_ServerConn conn, int signal,
                                        int *reply_fd_ptr);

/* generated: kill_flags (from zig/abi.zig by zig build: do not edit) */
#define LIBFORKS_KILL_TREE 1 /* libforks_kill_async: as libforks_kill_tree */
/* end generated: kill_flags */

/* libforks_kill / libforks_kill_tree (flags LIBFORKS_KILL_TREE) returning
 * a reply fd instead of waiting. */
libforks_Result libforks_kill_async(libforks_ServerConn conn, pid_t pid, int signal,
                                    int flags, int *reply_fd_ptr);

/* Fork without waiting for the server, for event loops that fork in
 * bursts: returns once the request is queued on the connection. The
 * caller makes the child's socket and exit pipe itself (libforks_socketpair,
 * libforks_pipe) and passes the child's ends here; they are sent to the
 * server and the caller still owns (and closes) its copies. The pid
 * arrives on *reply_fd_ptr: poll it, then libforks_reply_read gives
 * reply.pid, or the fork's error. */
/* generated: ForkRequest (from zig/abi.zig by zig build: do not edit) */
typedef struct {
  size_t size;         /* sizeof(libforks_ForkRequest) */
  void (*entrypoint)(libforks_ServerConn conn, int socket_fd); /* or NULL */
  const char *library; /* with symbol, as libforks_fork_symbol */
  const char *symbol;  /* NULL when entrypoint is given */
  int socket_fd;       /* the child's socket end, or -1 */
  int exit_fd;         /* write end of the exit pipe (an anonymous pipe, else
                          INVALID_ARGUMENT in the reply), or -1 */
  bool nonblocking;    /* WOULD_BLOCK instead of waiting when the
                          connection's queue is full (poll libforks_conn_fd
                          for writing, then retry) */
  bool spec_queued;    /* entrypoint libforks_exec_entrypoint only: the whole
                          exec spec (at most 64 KiB of strings, 4,096
                          strings) is already queued on the caller's end of
                          socket_fd. The server then starts the program as
                          posix_spawn does (CLONE_VM | CLONE_VFORK on Linux),
                          without copying itself: for the owner's requests
                          only (the server waits while such a program
                          starts); a child's is an ordinary fork. */
  bool exit_rusage;    /* with exit_fd: the child's rusage is written right
                          after its libforks_ExitEvent, in the same write of
                          libforks_EXIT_MESSAGE_SIZE bytes: read both at
                          once. The rusage is the kernel's layout, which is
                          glibc's and macOS's struct rusage whole; musl's
                          struct rusage declares 128 more reserved bytes
                          after it, which are not sent. */
  bool exit_event;     /* with events: the child's exit is a record on that
                          stream (exit_fd must be -1) */
  uint32_t events;     /* an event stream's handle (libforks_events_open), or
                          0: the answer is a record there, tagged with tag,
                          and *reply_fd_ptr is set to -1 */
  uint64_t tag;        /* the caller's, echoed in the records */
} libforks_ForkRequest;
/* end generated: ForkRequest */
/* Callers built before exit_event, events and tag passed 48 as size: still
 * accepted, those fields then 0. */

/* An exit event and the rusage after it (exit_rusage), on 64-bit Linux and
 * macOS: 8 + 144 bytes. */
/* generated: exit_message_size (from zig/abi.zig by zig build: do not edit) */
#define libforks_EXIT_MESSAGE_SIZE 152
/* end generated: exit_message_size */

libforks_Result libforks_fork_async(libforks_ServerConn conn,
                                    const libforks_ForkRequest *request,
                                    int *reply_fd_ptr);

/* ------------------------------------------------------------------ */
/* Event streams                                                       */
/* ------------------------------------------------------------------ */

/* One pipe per connection and event loop, on which the server writes the
 * answers to that loop's requests and the exits of its children as
 * fixed-size records (libforks_EventRecord), tagged with the request's
 * tag, instead of one reply pipe per request and one exit pipe per child.
 * The server never blocks on a stream and never drops a record while its
 * reader is there: what does not fit waits in the server, in order, and
 * is written once the pipe has room; a reader that stops reading stalls
 * only its own connection's requests (after 32 queued answers). Closing
 * the read end closes the stream. A stopping server answers the stop,
 * and exits, only once every record it owes was written (or once no
 * reader took any for 2 s). The per-child exit fd of libforks_fork
 * stays as it is. */
/* generated: EventRecord (from zig/abi.zig by zig build: do not edit) */
typedef struct {
  uint32_t magic;             /* libforks_EVENT_MAGIC */
  uint32_t kind;              /* libforks_EVENT_REPLY or libforks_EVENT_EXIT */
  uint64_t tag;               /* the request's (an exit: its fork's) */
  int32_t result;             /* REPLY: a libforks_Result */
  int32_t error_number;       /* REPLY */
  int32_t pid;                /* REPLY: as libforks_Reply; EXIT: the child */
  int32_t wait_status;        /* REPLY (wait), EXIT */
  unsigned char rusage[144];  /* the kernel's struct rusage */
  uint32_t handle;            /* the stream's first record: its handle */
  int32_t exec_step;          /* REPLY to libforks_spawn_async with socket_fd
                                 -1: the libforks_ExecStep that failed, when
                                 exec_error is not 0 */
  int32_t exec_error;         /* REPLY to libforks_spawn_async with socket_fd
                                 -1: 0 once the program is exec'd, else the
                                 failed step's errno (the child exits with
                                 127; its EXIT record follows) */
  unsigned char reserved[68];
} libforks_EventRecord;
/* end generated: EventRecord */
/* generated: event_constants (from zig/abi.zig by zig build: do not edit) */
#define libforks_EVENT_MAGIC 1447380556 /* "LFEV" */
#define libforks_EVENT_REPLY 1          /* the answer to a request: libforks_Reply's fields */
#define libforks_EVENT_EXIT 2           /* a child forked with exit_event was reaped */
#define libforks_EVENT_RECORD_SIZE 256
/* end generated: event_constants */

/* Opens an event stream: *read_fd_ptr (close-on-exec, non-blocking) is
 * the caller's to read and close, *handle_ptr names it in requests.
 * LIMIT_ERROR past 128 streams per server (4 per child, 64 for all
 * children). */
libforks_Result libforks_events_open(libforks_ServerConn conn, int *read_fd_ptr, uint32_t *handle_ptr);

/* Waits up to timeout_ms (-1: no limit) for records, then reads what is
 * there into buf (len a multiple of libforks_EVENT_RECORD_SIZE): the
 * bytes read (whole records), 0 once the server is gone, -1 with errno
 * (EAGAIN: nothing came in time). */
ssize_t libforks_events_read(int fd, void *buf, size_t len, int timeout_ms);

/* A wait, kill or kill_all answered on an event stream. */
/* generated: EventRequest (from zig/abi.zig by zig build: do not edit) */
typedef struct {
  size_t size;     /* sizeof(libforks_EventRequest) */
  int op;          /* libforks_EVENT_OP_* */
  pid_t pid;       /* WAIT (-1: any), KILL */
  int signal;      /* KILL, KILL_ALL */
  int flags;       /* WAIT: WNOHANG; KILL: LIBFORKS_KILL_TREE */
  uint32_t events; /* the stream's handle */
  uint64_t tag;
} libforks_EventRequest;
/* end generated: EventRequest */
/* generated: event_ops (from zig/abi.zig by zig build: do not edit) */
#define libforks_EVENT_OP_KILL_ALL 2
#define libforks_EVENT_OP_WAIT 3
#define libforks_EVENT_OP_WAIT_ALL 4
#define libforks_EVENT_OP_KILL 6
/* end generated: event_ops */

libforks_Result libforks_send_event_request(libforks_ServerConn conn, const libforks_EventRequest *request);

/* Runs a program (libforks_exec_entrypoint) from the request alone: its
 * spec, as libforks_send_exec_spec would send it, travels with the fork
 * request, so the server starts it without waiting for anything (in place,
 * as posix_spawn, for the owner on Linux). The pid and the exit are
 * records on the event stream (tag); whether it started comes on the
 * caller's end of socket_fd, as for libforks_send_exec_spec
 * (libforks_read_exec_result), or, with socket_fd -1 where
 * libforks_spawn_outcome_in_answer(conn), in the answer itself
 * (exec_error, exec_step). LIMIT_ERROR (errno EMSGSIZE) when the spec
 * exceeds 48 KiB: send it on the socket instead. */
/* generated: SpawnRequest (from zig/abi.zig by zig build: do not edit) */
typedef struct {
  size_t size;         /* sizeof(libforks_SpawnRequest) */
  const char *strings; /* path, argv[0..argc), envp[0..envc), then cwd with
                          has_cwd: each NUL-terminated, back to back */
  size_t strings_len;
  uint32_t argc;       /* at least 1 */
  uint32_t envc;
  bool has_cwd;
  const int *fds;      /* fds[i] becomes the program's targets[i] */
  const int *targets;
  int fd_count;        /* at most LIBFORKS_MAX_FDS */
  int socket_fd;       /* the child's end of the control socket, or -1 where
                          libforks_spawn_outcome_in_answer(conn): then the
                          answer says whether the program was exec'd
                          (exec_error) */
  uint32_t events;     /* an event stream's handle */
  uint64_t tag;
} libforks_SpawnRequest;
/* end generated: SpawnRequest */

libforks_Result libforks_spawn_async(libforks_ServerConn conn, const libforks_SpawnRequest *request);

/* Whether libforks_spawn_async on conn may go without a control socket
 * (socket_fd -1): true for the owner's connection on Linux, where the
 * server starts the owner's programs in place (CLONE_VM | CLONE_VFORK)
 * and so knows, when it answers, whether the program was exec'd; that
 * answer then says so (libforks_EventRecord.exec_error: 0, or the failed
 * step's errno, with exec_step). One socket pair, one fd sent and one
 * read fewer per program. False elsewhere (a child's connection, macOS):
 * socket_fd -1 is INVALID_ARGUMENT there. */
bool libforks_spawn_outcome_in_answer(libforks_ServerConn conn);

/* The connection's socket, for polling (writable) after WOULD_BLOCK. Do
 * not read, write or close it. -1 for an invalid connection. */
int libforks_conn_fd(libforks_ServerConn conn);

/* ------------------------------------------------------------------ */
/* Pipes, socket pairs and memfds                                      */
/* ------------------------------------------------------------------ */

/* A close-on-exec socket pair of the kind libforks_fork gives (message
 * boundaries kept). Returns 0, or -1 with errno set. */
int libforks_socketpair(int fds[2]);

/* Tells the peer of such a socket that this end is closing; call it just
 * before close(). Needed on macOS only, where the pair is SOCK_DGRAM and
 * XNU wakes no receive waiting on the peer when an end closes: this sends
 * an empty message, which the peer reads as end-of-file (a read of 0).
 * On Linux (SOCK_SEQPACKET, whose peer sees end-of-file when the last copy
 * of this end closes) it sends nothing. Never waits. Returns 0, or -1 with
 * errno set: ENOBUFS while the peer's queue is full (no need to retry:
 * once the peer has read that queue, its next receive gets the ECONNRESET
 * the close sets, which libforks_read_socket_fds reads as end-of-file),
 * EPIPE when the peer is gone already, EINVAL for a negative fd. */
int libforks_socket_hangup(int socket_fd);

/* A close-on-exec pipe: fds[0] read end, fds[1] write end. Returns 0, or
 * -1 with errno set. (For callers without pipe2, such as Bun FFI.) */
int libforks_pipe(int fds[2]);

/* A close-on-exec memfd (Linux), e.g. to hold libforks-server when it is
 * not a file on disk (inside a single-file executable). -1 with errno set
 * (ENOSYS on macOS). */
int libforks_memfd(const char *name);

/* Set or clear O_NONBLOCK on fd. Returns 0, or -1 with errno set. */
int libforks_set_nonblocking(int fd, bool nonblocking);

/* A close-on-exec duplicate of fd (the lowest free number), or -1 with
 * errno set (EBADF when fd is not open). */
int libforks_dup_cloexec(int fd);

/* ------------------------------------------------------------------ */
/* Readiness notification for event loops                              */
/* ------------------------------------------------------------------ */

/* One background thread per process (started on first use, all signals
 * blocked) watches fds and, when one is ready, writes an 8-byte record to
 * a "doorbell" pipe. Each doorbell has its own set of watches, so several
 * doorbells may watch the same fd. Each record is a little-endian uint64: the low 48
 * bits are the watch's token, bits 48..55 the ready events (1 readable,
 * 4 writable, 8 error, 16 hang-up). A watch is one-shot: it fires once,
 * then must be armed again with libforks_watch. Each event loop (each Bun
 * Worker) opens its own doorbell. At most 64 doorbells per process.
 * The thread never waits for one event loop: while a doorbell's pipe is
 * full, its records are kept (none is dropped) and the other doorbells
 * keep ringing. A doorbell belongs to the thread that opened it: when that
 * thread exits, its open doorbells are closed. */
libforks_Result libforks_doorbell_open(int *doorbell_fd_ptr);
libforks_Result libforks_doorbell_close(int doorbell_fd);
/* events: 1 readable, 4 writable (or both). token < 2^48. Arms or re-arms
 * the watch of `fd` for this doorbell. */
libforks_Result libforks_watch(int doorbell_fd, int fd, int events,
                               uint64_t token);
/* Forget this doorbell's watch on fd, if any. Call before closing a
 * watched fd. */
libforks_Result libforks_unwatch(int doorbell_fd, int fd);

/* ------------------------------------------------------------------ */
/* Sharing a connection with another thread                            */
/* ------------------------------------------------------------------ */

/* The same as a number that is safe to hand to code that must not hold
 * addresses (a message to a Bun Worker): a new handle on conn, parked in a
 * process-wide table under *token_ptr (below 2^53). A token is a table
 * slot, its generation and random bits, never an address: a forged or
 * stale one is refused. libforks_conn_attach takes the handle, once, and
 * only in the process that made the token (NOT_OWNER in a fork of it);
 * INVALID_ARGUMENT for a token that is unknown or already taken.
 * libforks_conn_token_drop frees the handle of a token nobody took. At
 * most LIBFORKS_MAX_SHARE_TOKENS tokens wait at once (LIMIT_ERROR). */
libforks_Result libforks_conn_token(libforks_ServerConn conn,
                                    uint64_t *token_ptr);
libforks_Result libforks_conn_attach(uint64_t token,
                                     libforks_ServerConn *conn_ptr);
libforks_Result libforks_conn_token_drop(uint64_t token);

/* What dies with a thread. A connection adopted by a thread is freed
 * (libforks_free_conn: a server it started shuts down as if its owner
 * died) and an adopted fd is closed when that thread exits, unless
 * released first; release before freeing or closing it yourself. For
 * event loops that can be ended without running their own code (a
 * terminated Bun Worker). Tokens (libforks_conn_token) made by a thread
 * that has adopted anything are dropped with it if nobody took them.
 * INVALID_ARGUMENT on release of what this thread did not adopt. */
libforks_Result libforks_thread_adopt_conn(libforks_ServerConn conn);
libforks_Result libforks_thread_release_conn(libforks_ServerConn conn);
libforks_Result libforks_thread_adopt_fd(int fd);
libforks_Result libforks_thread_release_fd(int fd);

#ifdef __cplusplus
}
#endif

#endif /* LIBFORKS_EXT_H */
