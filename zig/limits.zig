//! The fixed limits a caller can reach through the API, under the names
//! the code uses. Those published as LIBFORKS_MAX_* and
//! LIBFORKS_OWNER_RESERVED_* are declared in abi.zig (which generates the
//! header's and src/abi.ts's); the others are the library's own. The server
//! allocates nothing after fork: its tables are sized by these numbers.
//! Sizes private to one module stay beside the code they bound, and are
//! not here: entry_cache.zig (max_entries, max_key), exec.zig
//! (in_place_max_body, in_place_max_strings), server.zig (max_inherited),
//! tree.zig (max_tree, max_terminated) and protocol.zig (max_request_fds).

const published = @import("abi.zig").published;

/// Running children per server.
pub const max_children = published("LIBFORKS_MAX_CHILDREN");
/// Outstanding waits, wait_alls and stops per server.
pub const max_pending = published("LIBFORKS_MAX_PENDING");
/// Exits remembered for a later libforks_wait.
pub const max_exit_records = published("LIBFORKS_MAX_EXIT_RECORDS");

// What one peer may hold. The owner (the process that started the server)
// may use every table to its end; a child of the server is a peer with a
// quota of its own, and all children together stop short of each table's
// end by the owner's reserve, so no child, and no set of children, can
// make the owner's fork or wait fail with LIMIT_ERROR while the owner
// itself is below reserve. A child's quota counts its whole subtree
// (everything forked through the server by it and by its descendants), so
// forking does not multiply it.

/// Running processes in one child's subtree, the child itself excluded.
pub const max_children_per_peer = published("LIBFORKS_MAX_CHILDREN_PER_PEER");
/// Running children the owner alone may still fork when its children's
/// subtrees have taken all they may.
pub const owner_reserved_children = published("LIBFORKS_OWNER_RESERVED_CHILDREN");
/// Outstanding waits of one child (its own requests, not its subtree's).
pub const max_pending_per_peer = published("LIBFORKS_MAX_PENDING_PER_PEER");
/// Outstanding waits only the owner's requests may take.
pub const owner_reserved_pending = published("LIBFORKS_OWNER_RESERVED_PENDING");
/// Remembered exits of processes a child forked (per forking child).
pub const max_exit_records_per_peer = published("LIBFORKS_MAX_EXIT_RECORDS_PER_PEER");
/// Remembered exits of processes children forked, all children together,
/// in a table of their own: max_exit_records stay the owner's (exits.zig).
pub const max_peer_exit_records = published("LIBFORKS_MAX_PEER_EXIT_RECORDS");
/// Longest library path accepted by libforks_fork_symbol, NUL included.
pub const max_path = published("LIBFORKS_MAX_PATH");
/// Longest symbol name accepted by libforks_fork_symbol, NUL included.
pub const max_symbol = published("LIBFORKS_MAX_SYMBOL");
/// Fds in one message: Linux's SCM_MAX_FD.
pub const max_fds_per_message = published("LIBFORKS_MAX_FDS");
/// Largest exec spec accepted by libforks_exec_entrypoint.
pub const max_exec_spec = 4 * 1024 * 1024;
/// Share tokens (libforks_conn_token) not yet attached, per process.
pub const max_share_tokens = published("LIBFORKS_MAX_SHARE_TOKENS");
/// Doorbells (event loops) per process.
pub const max_doorbells = 64;
/// Grace between SIGTERM and SIGKILL when the server shuts down.
pub const kill_grace_ms = 500;
/// How long an ending server, with no process of its tree left, still
/// waits for event streams' readers to take the records queued behind a
/// full pipe (shutdown.finishWhenDrained).
pub const drain_ms = 2000;
/// How often an idle server checks that its owner is still alive, for the
/// case where a copy of the owner's connection outlives the owner.
pub const owner_check_ms = 250;
