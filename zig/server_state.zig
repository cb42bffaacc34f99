//! The server's state: everything it owns, in one zeroed global (see
//! server.zig), and the poller keys of its fds.

const std = @import("std");
const sys = @import("sys.zig");
const peers = @import("peers.zig");
const exits = @import("exits.zig");
const protocol = @import("protocol.zig");
const Peer = peers.Peer;

pub const Phase = enum {
    serving,
    /// SIGTERM sent to every child; SIGKILL follows at kill_deadline_ms.
    terminating,
    /// Stopped by libforks_stop_server_only: no connection is served, and
    /// the server only reaps the children it leaves running until the
    /// last one exits (they die with it, tree.zig, so it must outlive them).
    detached,
};

/// Everything the server owns. Lives in the library's zeroed data, so it
/// costs nothing in processes that never become a server.
/// All zeroes is its initial value (a zeroed global costs no file space and
/// no copy), which main() completes.
pub const State = struct {
    kind: Kind,
    owner_pid: sys.pid_t,
    server_pid: sys.pid_t,
    /// RLIMIT_NOFILE as the caller had it; children get it back.
    caller_nofile: sys.rlimit,
    /// The server raised RLIMIT_NOFILE above caller_nofile: children set
    /// it back.
    raised_nofile: bool,
    /// A pipe of the server's own: write_end.zig's sample of an anonymous
    /// pipe and its spare's source; without signalfd also where the
    /// signal handlers wake the loop (signals.zig).
    wake_pipe: [2]sys.fd_t,
    /// Without an owner pidfd, when the owner's pid is probed next
    /// (checkOwnerAlive): at most once per owner_check_ms, whatever the
    /// number of requests.
    next_owner_probe_ms: i64,

    /// The connection of the process that started the server: its end
    /// means the owner is gone, and only it may stop the server. -1 once
    /// it ended.
    owner_fd: sys.fd_t,
    /// Running children; each also has a connection of its own, a socket
    /// pair made at its fork, so what one child does to its socket
    /// (shutdown, a full queue, garbage) touches no other peer.
    table: peers.Table,
    exits: exits.Store,
    /// The owner's connection is not read while one of its event streams
    /// is over budget (events.zig); children have peers.Child.paused.
    owner_paused: bool,
    /// Peers paused, so a drained stream looks for them only then.
    paused_count: usize,

    phase: Phase,
    kill_deadline_ms: i64,
    killed: bool,
    /// While terminating: a reap happened since the last look for newly
    /// adopted orphans (signalAdoptedAsTree), which is made at most every
    /// adopted_scan_ms: it reads the list of all the server's children
    /// from /proc, so once per reap batch it would cost, with 1,000
    /// children exiting, a scan of 1,000 pids per batch.
    adopted_scan_due: bool,
    next_adopted_scan_ms: i64,
    /// Exit once no child is left (stop without wait, or owner gone).
    exit_when_empty: bool,
    /// No child is left and what waited was answered: exiting once every
    /// event stream's backlog is written, or at drain_deadline_ms.
    draining: bool,
    drain_deadline_ms: i64,

    /// Inheritable fds of the caller the server kept (fds >= 3), so a new
    /// child can close everything else in a few close_range calls.
    inherited: [max_inherited]sys.fd_t,
    inherited_count: usize,
    /// More than max_inherited: children close the server's fds one by one.
    inherited_overflow: bool,
    /// max_children, or fewer when the fd limit cannot hold that many
    /// (three fds per child): past it, fork answers LIMIT_ERROR instead of
    /// failing in odd places.
    child_limit: usize,

    request: protocol.Request,
};

pub var state: State = std.mem.zeroes(State);

pub const Kind = enum {
    /// A fork of the caller (libforks_start): its image and memory.
    snapshot,
    /// The libforks-server program, exec'd by libforks_start_ex with
    /// libforks_MODE_CLEAN: a fresh single-threaded process.
    clean,
};

pub const max_inherited = 64;

// Poller keys: a child's connection is its slot and the slot's generation,
// so an event read in the same batch as that child's exit is not taken
// for the next child in the slot.
pub const key_owner_pidfd: u64 = 1 << 61;
pub const key_wake: u64 = 1 << 62;
pub const key_owner: u64 = 1 << 63;

pub fn childKey(slot: Peer) u64 {
    return @as(u64, state.table.slots[slot].generation) << 16 | slot;
}
