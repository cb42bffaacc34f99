//! Fork requests from a client: a native entrypoint, a symbol in a
//! library, or a request built by the caller (forkAsync); the child's
//! socket and exit pipe are made here or given.

const std = @import("std");
const sys = @import("sys.zig");
const limits = @import("limits.zig");
const protocol = @import("protocol.zig");
const exec = @import("exec.zig");
const abi = @import("abi.zig");
const client_conn = @import("client_conn.zig");
const result_mod = @import("result.zig");
const ServerConn = client_conn.ServerConn;
const Entrypoint = client_conn.Entrypoint;
const ConnState = client_conn.ConnState;
const stateOf = client_conn.stateOf;
const send = client_conn.send;
const sendRequest = client_conn.sendRequest;
const readReply = client_conn.readReply;
const transact = client_conn.transact;
const Error = result_mod.Error;
const withErrno = result_mod.withErrno;
const invalid = result_mod.invalid;

pub const ForkOut = struct {
    pid: ?*sys.pid_t,
    socket_fd: ?*c_int,
    exit_fd: ?*c_int,
};

pub fn fork(conn: ServerConn, out: ForkOut, entry: ?Entrypoint) Error!void {
    const state = stateOf(conn) orelse return invalid();
    var request: protocol.Request = undefined;
    try buildForkRequest(state, entry, null, null, &request);
    return forkWith(state, &request, out);
}

pub fn forkSymbol(conn: ServerConn, out: ForkOut, library: ?[*:0]const u8, symbol: ?[*:0]const u8) Error!void {
    const state = stateOf(conn) orelse return invalid();
    if (symbol == null) return invalid();
    var request: protocol.Request = undefined;
    try buildForkRequest(state, null, library, symbol, &request);
    return forkWith(state, &request, out);
}

const ENAMETOOLONG: c_int = if (sys.is_linux) 36 else 63;

pub const ForkRequest = abi.ForkRequest;

/// What callers built before the event-stream fields existed pass.
const fork_request_v1_size = 48;

/// Sends a fork request without waiting for the server: the child's
/// socket end and the exit pipe's write end are the caller's (it made them
/// and keeps its copies), and the pid arrives on the reply fd.
pub fn forkAsync(conn: ServerConn, given: ?*const ForkRequest, reply_fd: ?*c_int) Error!void {
    const state = stateOf(conn) orelse return invalid();
    const caller_request = given orelse return invalid();
    const out = reply_fd orelse return invalid();
    if (caller_request.size < fork_request_v1_size) return invalid();
    // Fields past the caller's size are their defaults.
    var copy = ForkRequest{ .size = 0, .entrypoint = null, .library = null, .symbol = null, .socket_fd = -1, .exit_fd = -1, .nonblocking = false };
    const known = @min(caller_request.size, @sizeOf(ForkRequest));
    @memcpy(std.mem.asBytes(&copy)[0..known], @as([*]const u8, @ptrCast(caller_request))[0..known]);
    if (known < @sizeOf(ForkRequest)) {
        // exit_event lies in what was the older struct's padding, which
        // such a caller never set.
        copy.exit_event = false;
        copy.events = 0;
        copy.tag = 0;
    }
    const fork_request = &copy;
    if (fork_request.entrypoint == null and fork_request.symbol == null) return invalid();
    var request: protocol.Request = undefined;
    try buildForkRequest(state, fork_request.entrypoint, fork_request.library, fork_request.symbol, &request);
    var extra: [2]sys.fd_t = undefined;
    var extra_count: usize = 0;
    if (fork_request.exit_fd >= 0) {
        request.header.flags |= protocol.Flags.exit_fd;
        extra[extra_count] = fork_request.exit_fd;
        extra_count += 1;
    }
    if (fork_request.socket_fd >= 0) {
        request.header.flags |= protocol.Flags.channel;
        extra[extra_count] = fork_request.socket_fd;
        extra_count += 1;
    }
    if (fork_request.spec_queued) {
        if (request.header.flags & protocol.Flags.builtin_exec == 0 or fork_request.socket_fd < 0) {
            return invalid();
        }
        request.header.flags |= protocol.Flags.spec_queued;
    }
    if (fork_request.exit_rusage) {
        if (fork_request.exit_fd < 0) return invalid();
        request.header.flags |= protocol.Flags.exit_rusage;
    }
    if (fork_request.events != 0) {
        request.header.flags |= protocol.Flags.to_events;
        request.header.events = fork_request.events;
        request.header.tag = fork_request.tag;
    }
    if (fork_request.exit_event) {
        if (fork_request.events == 0 or fork_request.exit_fd >= 0) return invalid();
        request.header.flags |= protocol.Flags.exit_event;
    }
    return sendRequest(state, &request, extra[0..extra_count], out, fork_request.nonblocking);
}

/// The fork request for an entrypoint (by address, or the built-in exec
/// one by flag) or for a symbol to load in the child.
pub fn buildForkRequest(state: *ConnState, entry: ?Entrypoint, library: ?[*:0]const u8, symbol: ?[*:0]const u8, request: *protocol.Request) Error!void {
    request.* = .{ .header = .{ .op = .fork } };
    if (symbol == null) {
        const entrypoint = entry orelse return invalid();
        // libforks_exec_entrypoint goes by flag: the server runs its own
        // copy, which also exists in a clean server.
        if (@intFromPtr(entrypoint) == @intFromPtr(&exec.entrypoint)) {
            request.header.flags = protocol.Flags.builtin_exec;
            return;
        }
        // A clean server is another program: a pointer into this one would
        // jump anywhere.
        if (state.clean) return invalid();
        request.header.entry = @intFromPtr(entrypoint);
        return;
    }
    if (entry != null) return invalid();
    const symbol_name = sys.cString(symbol.?);
    const library_path: []const u8 = if (library) |l| sys.cString(l) else "";
    // A clean server's own image exports nothing to run.
    if (state.clean and library == null) return invalid();
    if (symbol_name.len == 0) return invalid();
    if (symbol_name.len >= limits.max_symbol or library_path.len >= limits.max_path) {
        return withErrno(error.LIMIT_ERROR, ENAMETOOLONG);
    }
    // Checked here, where failing is cheap and reportable: the child would
    // only be able to exit with 127.
    if (sys.lookUpSymbol(library, symbol.?, sys.RTLD_NOW | sys.RTLD_LOCAL) == null) return withErrno(error.LOAD_ERROR, sys.E.NOENT);

    request.header.flags = protocol.Flags.symbol;
    @memcpy(request.payload[0..library_path.len], library_path);
    request.payload[library_path.len] = 0;
    @memcpy(request.payload[library_path.len + 1 ..][0..symbol_name.len], symbol_name);
    request.payload[library_path.len + 1 + symbol_name.len] = 0;
    request.header.payload_len = @intCast(library_path.len + symbol_name.len + 2);
}

fn forkWith(state: *ConnState, request: *protocol.Request, out: ForkOut) Error!void {
    var exit_pipe: [2]sys.fd_t = .{ -1, -1 };
    var channel: [2]sys.fd_t = .{ -1, -1 };
    var extra: [2]sys.fd_t = undefined;
    var extra_count: usize = 0;
    defer for (extra[0..extra_count]) |fd| sys.closeKeepErrno(fd);

    if (out.exit_fd != null) {
        if (sys.pipeCloexec(&exit_pipe) != 0) return error.PIPE_CREATION_ERROR;
        request.header.flags |= protocol.Flags.exit_fd;
        extra[extra_count] = exit_pipe[1];
        extra_count += 1;
    }
    if (out.socket_fd != null) {
        if (sys.socketpairCloexec(sys.message_socket_type, &channel) != 0) {
            sys.closeKeepErrno(exit_pipe[0]);
            return error.SOCKET_CREATION_ERROR;
        }
        request.header.flags |= protocol.Flags.channel;
        extra[extra_count] = channel[1];
        extra_count += 1;
    }
    var answer: protocol.Reply = undefined;
    transact(state, request, extra[0..extra_count], &answer) catch |err| {
        sys.closeKeepErrno(exit_pipe[0]);
        sys.closeKeepErrno(channel[0]);
        return err;
    };
    std.debug.assert(answer.pid > 0);
    if (out.pid) |p| p.* = answer.pid;
    if (out.exit_fd) |p| p.* = exit_pipe[0];
    if (out.socket_fd) |p| p.* = channel[0];
}
