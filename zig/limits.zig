//! Every fixed limit of libforks, in one place. The same numbers are
//! published as LIBFORKS_MAX_* in lib/include/libforks.h; a test checks
//! they agree. The server allocates nothing after fork: its tables are
//! sized by these numbers.

/// Running children per server.
pub const max_children = 4096;
/// Outstanding waits, wait_alls and stops per server.
pub const max_pending = 1024;
/// Exits remembered for a later libforks_wait.
pub const max_exit_records = 1024;
/// Longest library path accepted by libforks_fork_symbol, NUL included.
pub const max_path = 4096;
/// Longest symbol name accepted by libforks_fork_symbol, NUL included.
pub const max_symbol = 1024;
/// Fds in one message: Linux's SCM_MAX_FD.
pub const max_fds_per_message = 253;
/// Largest exec spec accepted by libforks_exec_entrypoint.
pub const max_exec_spec = 4 * 1024 * 1024;
/// Share tokens (libforks_conn_token) not yet attached, per process.
pub const max_share_tokens = 1024;
/// Doorbells (event loops) per process.
pub const max_doorbells = 64;
/// Grace between SIGTERM and SIGKILL when the server shuts down.
pub const kill_grace_ms = 500;
/// How often an idle server checks that its owner is still alive, for the
/// case where a copy of the owner's connection outlives the owner.
pub const owner_check_ms = 250;
