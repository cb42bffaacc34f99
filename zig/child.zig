//! What a new child does between fork and its entrypoint.
//!
//! The child is forked by the single-threaded server with the C library's
//! fork(), so the C library's own state (malloc, stdio, the loader) is
//! consistent and the entrypoint may use it freely. Before that, the child
//! sheds everything that is the server's: its fds, its signal mask (on
//! Linux the server has no handler to reset, signals.zig), its raised fd
//! limit.

const std = @import("std");
const sys = @import("sys.zig");
const abi = @import("abi.zig");
const protocol = @import("protocol.zig");
const client = @import("client.zig");
const exec = @import("exec.zig");
const tree = @import("tree.zig");
const limits = @import("limits.zig");
const signals = @import("signals.zig");

pub const Start = struct {
    /// The child's end of its own connection to the server, made at its
    /// fork (server.zig).
    conn_fd: sys.fd_t,
    /// The child's end of the socket to the caller, or -1.
    channel_fd: sys.fd_t,
    /// Server fds of this very request, not yet in the server's tables.
    request_fds: [2]sys.fd_t,
    /// What to run: an address in the server's image, a symbol to load,
    /// or the built-in exec entrypoint.
    entry: u64,
    symbol: ?protocol.SymbolPayload,
    builtin_exec: bool,
    /// builtin_exec with protocol.Flags.spec_queued, from the owner
    /// (exec.run).
    owner_spec_queued: bool = false,
    /// builtin_exec with protocol.Flags.spec_inline: the spec, in the
    /// server's request buffer, and its fds as received (kept open here).
    spec: ?[]const u8 = null,
    spec_fds: []const sys.fd_t = &.{},
    /// builtin_exec on the darwin paths: the write end of the report pipe
    /// (exec.openReport), or -1. Not in the server's tables, so it
    /// survives the closing of the server's fds; close-on-exec.
    report_fd: sys.fd_t = -1,
    /// The server's in-place exec child (fork.spawnInPlace): it runs in
    /// the server's memory while the server waits (exec.run).
    in_place: bool = false,

    // What the child needs of the server's state, as values: the child
    // reads no server global.
    server_pid: sys.pid_t,
    /// The owner's inheritable fds the server kept, or null when it did
    /// not record them all (then the child closes by table).
    inherited: ?[]const sys.fd_t,
    /// The owner's fd limit, restored in the child when the server raised
    /// its own; cur 0: unchanged.
    caller_nofile: sys.rlimit,
    /// Closes every fd the server holds (server.forEachServerFd).
    close_server_fds: *const fn () void,
};

pub fn run(start: Start) noreturn {
    // Signals stay blocked until the entrypoint (signals.resetInChild):
    // nothing runs on the server's behalf in between.
    // Before anything of the caller's runs, so nothing it starts can be
    // outside the tree: die with the server, and join its cgroup (this
    // uses one of the server's fds, closed just below).
    if (!tree.dieWithServer(start.server_pid)) sys._exit(127);
    tree.joinCgroup();

    // The child's two fds go to the lowest numbers the caller's fds and
    // the program's leave free, below FD_SETSIZE for entrypoints that use
    // select().
    var conn_fd: sys.fd_t = -1;
    var channel_fd: sys.fd_t = -1;
    if (moveLowThenClose(start.inherited, start.spec_fds, start.conn_fd, start.channel_fd)) |moved| {
        conn_fd = moved[0];
        channel_fd = moved[1];
    } else {
        start.close_server_fds();
        for (start.request_fds) |fd| {
            if (fd >= 0) _ = sys.close(fd);
        }
        conn_fd = moveLow(start.conn_fd);
        channel_fd = if (start.channel_fd >= 0) moveLow(start.channel_fd) else -1;
    }
    if (start.caller_nofile.cur != 0) _ = sys.setrlimit(sys.RLIMIT_NOFILE, &start.caller_nofile);

    const conn = client.initChildConn(conn_fd, start.server_pid);
    signals.resetInChild();
    if (start.spec) |spec| exec.runInline(channel_fd, start.report_fd, spec, start.spec_fds, start.in_place);

    if (start.builtin_exec) exec.run(channel_fd, start.report_fd, start.in_place, start.owner_spec_queued);
    const entry: abi.Entrypoint = if (start.symbol) |symbol|
        loadSymbol(symbol)
    else
        @ptrFromInt(start.entry);
    entry(conn, channel_fd);

    // _exit, not exit: atexit handlers belong to the caller's image (a
    // whole language runtime, for Bun) and must not run here. Flushing
    // stdio keeps what the entrypoint printed.
    _ = sys.fflush(null);
    sys._exit(0);
}

/// Room for the inherited fds (at most server_state.max_inherited), the
/// program's (at most one message's) and the child's two.
const max_kept = 64 + limits.max_fds_per_message + 2;

/// Every fd >= 3 of a new child is the server's except the caller's
/// inheritable ones (recorded at start), the program's fds of an inline
/// spec and the child's two. On Linux the two are moved first (dup3 onto
/// the lowest numbers the kept fds leave, closing the server's fds
/// there), then close_range(2) closes the gaps between what is kept: with
/// no other fd kept, one call. Returns the two fds' new numbers (channel
/// -1 when there is none), or null when not possible (the caller then
/// closes by table and moves them itself); nothing is closed then.
fn moveLowThenClose(inherited_fds: ?[]const sys.fd_t, spec_fds: []const sys.fd_t, conn_fd: sys.fd_t, channel_fd: sys.fd_t) ?[2]sys.fd_t {
    const inherited_list = inherited_fds orelse return null;
    var kept: [max_kept]sys.fd_t = undefined;
    if (!sys.linux_paths or inherited_list.len + spec_fds.len + 2 > kept.len) return null;
    var count: usize = 0;
    for (spec_fds) |fd| {
        kept[count] = fd;
        count += 1;
    }
    for (inherited_list) |fd| {
        kept[count] = fd;
        count += 1;
    }
    const others = kept[0..count];
    std.mem.sort(sys.fd_t, others, {}, std.sort.asc(sys.fd_t));
    const conn_low = lowestFree(others, 3);
    const channel_low = if (channel_fd >= 0) lowestFree(others, conn_low + 1) else -1;
    // A source that is also a target would be overwritten by the other
    // move (the server's fds sit at the low numbers, so this is rare).
    if (conn_fd == channel_low or channel_fd == conn_low) return null;
    if (!moveTo(conn_fd, conn_low)) return null;
    if (channel_fd >= 0 and !moveTo(channel_fd, channel_low)) return null;
    kept[count] = conn_low;
    count += 1;
    if (channel_fd >= 0) {
        kept[count] = channel_low;
        count += 1;
    }
    std.mem.sort(sys.fd_t, kept[0..count], {}, std.sort.asc(sys.fd_t));
    var first: u32 = 3;
    for (kept[0..count]) |fd| {
        const number: u32 = @intCast(fd);
        if (number > first and !sys.closeRange(first, number - 1, 0)) return null;
        if (number + 1 > first) first = number + 1;
    }
    if (!sys.closeRange(first, std.math.maxInt(u32), 0)) return null;
    return .{ conn_low, channel_low };
}

/// The lowest fd >= from that is not in `sorted`.
fn lowestFree(sorted: []const sys.fd_t, from: sys.fd_t) sys.fd_t {
    var candidate = from;
    for (sorted) |fd| {
        if (fd < candidate) continue;
        if (fd > candidate) break;
        candidate += 1;
    }
    return candidate;
}

/// dup3 onto `target` (close-on-exec, like every fd the library makes),
/// closing whatever server fd was there; the source is closed by the
/// close_range that follows, or kept when it already is the target.
fn moveTo(fd: sys.fd_t, target: sys.fd_t) bool {
    if (fd == target) return true;
    const linux = std.os.linux;
    const rc = linux.syscall3(.dup3, @as(usize, @intCast(fd)), @as(usize, @intCast(target)), @as(u32, @bitCast(linux.O{ .CLOEXEC = true })));
    return linux.E.init(rc) == .SUCCESS;
}

fn moveLow(fd: sys.fd_t) sys.fd_t {
    const low = sys.fcntl(fd, sys.F_DUPFD_CLOEXEC, @as(c_int, 3));
    if (low < 0 or low > fd) {
        if (low >= 0) _ = sys.close(low);
        return fd;
    }
    _ = sys.close(fd);
    return low;
}

fn loadSymbol(symbol: protocol.SymbolPayload) abi.Entrypoint {
    const handle = if (symbol.library.len == 0)
        sys.RTLD_DEFAULT
    else
        sys.dlopen(symbol.library.ptr, sys.RTLD_NOW | sys.RTLD_LOCAL) orelse loadFailed("dlopen", symbol.library);
    const address = sys.dlsym(handle, symbol.symbol.ptr) orelse loadFailed("dlsym", symbol.symbol);
    return @ptrCast(@alignCast(address));
}

fn loadFailed(call: []const u8, name: []const u8) noreturn {
    const reason: []const u8 = if (sys.dlerror()) |message| sys.cString(message) else "unknown error";
    for ([_][]const u8{ "libforks: ", call, "(", name, ") failed in the child: ", reason, "\n" }) |part| {
        _ = sys.writeFull(2, part);
    }
    sys._exit(127);
}
