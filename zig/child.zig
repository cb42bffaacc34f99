//! What a new child does between fork and its entrypoint.
//!
//! The child is forked by the single-threaded server with the C library's
//! fork(), so the C library's own state (malloc, stdio, the loader) is
//! consistent and the entrypoint may use it freely. Before that, the child
//! sheds everything that is the server's: its fds, its signal handlers,
//! its raised fd limit.

const std = @import("std");
const sys = @import("sys.zig");
const protocol = @import("protocol.zig");
const server = @import("server.zig");
const client = @import("client.zig");
const exec = @import("exec.zig");
const tree = @import("tree.zig");

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
};

pub fn run(start: Start) noreturn {
    // Dispositions first, mask second: signals are still blocked (see
    // server.handleFork), so none can reach a server handler in between.
    // The server set every other signal to its default when it started.
    for (server.changed_signals) |sig| _ = sys.setDisposition(sig, sys.SIG_DFL, 0);
    // Before anything of the caller's runs, so nothing it starts can be
    // outside the tree: die with the server, and join its cgroup (this
    // uses one of the server's fds, closed just below).
    if (!tree.dieWithServer(server.state.server_pid)) sys._exit(127);
    tree.joinCgroup();

    if (!closeAllButKept(start.conn_fd, start.channel_fd)) {
        server.forEachServerFd({}, closeFd);
        for (start.request_fds) |fd| {
            if (fd >= 0) _ = sys.close(fd);
        }
    }
    if (server.state.caller_nofile.cur != 0) _ = sys.setrlimit(sys.RLIMIT_NOFILE, &server.state.caller_nofile);
    // The fds just closed free the low numbers; moving the child's two fds
    // there keeps them below FD_SETSIZE for entrypoints that use select().
    const conn_fd = moveLow(start.conn_fd);
    const channel_fd = if (start.channel_fd >= 0) moveLow(start.channel_fd) else -1;

    const conn = client.initChildConn(conn_fd, server.state.server_pid);
    sys.unblockAllSignals();

    const entry: client.Entrypoint = if (start.builtin_exec)
        &exec.entrypoint
    else if (start.symbol) |symbol|
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

/// Every fd >= 3 of a new child is the server's except the caller's
/// inheritable ones (recorded at start) and the child's two: on Linux,
/// closing the gaps between those with close_range(2) costs a few system
/// calls instead of one per fd (the server holds three per running child).
/// False when that is not possible; the caller then closes by table.
fn closeAllButKept(conn_fd: sys.fd_t, channel_fd: sys.fd_t) bool {
    if (!sys.linux_paths or server.state.inherited_overflow) return false;
    var kept: [server.max_inherited + 2]sys.fd_t = undefined;
    var count: usize = 0;
    for (server.state.inherited[0..server.state.inherited_count]) |fd| {
        kept[count] = fd;
        count += 1;
    }
    kept[count] = conn_fd;
    count += 1;
    if (channel_fd >= 0) {
        kept[count] = channel_fd;
        count += 1;
    }
    std.mem.sort(sys.fd_t, kept[0..count], {}, std.sort.asc(sys.fd_t));
    var first: u32 = 3;
    for (kept[0..count]) |fd| {
        const number: u32 = @intCast(fd);
        if (number > first and !closeRange(first, number - 1)) return false;
        if (number + 1 > first) first = number + 1;
    }
    return closeRange(first, std.math.maxInt(u32));
}

fn closeRange(first: u32, last: u32) bool {
    const linux = std.os.linux;
    const rc = linux.syscall3(.close_range, first, last, 0);
    return linux.E.init(rc) == .SUCCESS;
}

fn closeFd(_: void, fd: sys.fd_t) void {
    _ = sys.close(fd);
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

fn loadSymbol(symbol: protocol.SymbolPayload) client.Entrypoint {
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
