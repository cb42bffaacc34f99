//! The calls a client makes on a connection: requests to the server.
//! Starting a server is start.zig.
//!
//! Every request gets its own reply pipe (see protocol.zig), so a
//! connection is shared by any number of threads without a lock: the only
//! shared state is the socket, and each request is one sendmsg.

const std = @import("std");
const sys = @import("sys.zig");
const limits = @import("limits.zig");
const protocol = @import("protocol.zig");
const fdpass = @import("fdpass.zig");
const exec = @import("exec.zig");
const tree = @import("tree.zig");
const result_mod = @import("result.zig");
const abi = @import("abi.zig");
const Error = result_mod.Error;
const withErrno = result_mod.withErrno;
const invalid = result_mod.invalid;

pub const ServerConn = abi.ServerConn;
pub const Entrypoint = abi.Entrypoint;

pub const conn_magic: u32 = 0x4e43_464c; // "LFCN"

pub const ConnState = struct {
    magic: u32 = conn_magic,
    fd: sys.fd_t,
    server_pid: sys.pid_t,
    /// Pid of the process that started the server; 0 in children.
    owner_pid: sys.pid_t,
    /// Children's connections live in static memory: nothing to free.
    heap: bool,
    /// Set by stop_async: stop_finish then waits for the server's end.
    stopping_with_wait: bool = false,
    /// stop_server_only: the server process stays, as the reaper of the
    /// children it leaves running; only its connection ends.
    detaching: bool = false,
    /// stop_async was called: stop_finish reaps the server, free_conn not.
    stop_requested: bool = false,
    /// A clean server runs the libforks-server executable, not a copy of
    /// the caller: addresses in the caller mean nothing there.
    clean: bool = false,
    /// Owner only, Linux 5.3+: readable once the server has exited, so stop
    /// can return after the process itself is gone, not only its sockets.
    pidfd: sys.fd_t = -1,
    /// Owner only: the tree's cgroup directory (O_PATH), -1 if none. Lets
    /// the owner clean up after a server that was SIGKILLed (tree.zig).
    cgroup_fd: sys.fd_t = -1,
    /// Handles on this connection (libforks_conn_share adds one); memory
    /// and socket go with the last libforks_free_conn.
    refs: std.atomic.Value(u32) = std.atomic.Value(u32).init(1),
};

/// A child's connection: its own socket to the server, made by the server
/// at its fork (server.zig). Each child is a separate process, so one
/// static slot per process is enough and no allocation happens after fork.
var child_conn: ConnState = .{ .fd = -1, .server_pid = 0, .owner_pid = 0, .heap = false };

pub fn initChildConn(fd: sys.fd_t, server_pid: sys.pid_t) ServerConn {
    child_conn = .{ .fd = fd, .server_pid = server_pid, .owner_pid = 0, .heap = false };
    return .{ .private = &child_conn };
}

pub fn stateOf(conn: ServerConn) ?*ConnState {
    const pointer = conn.private orelse return null;
    if (!std.mem.isAligned(@intFromPtr(pointer), @alignOf(ConnState))) return null;
    const state: *ConnState = @ptrCast(@alignCast(pointer));
    if (state.magic != conn_magic or state.fd < 0) return null;
    return state;
}

pub fn serverPid(conn: ServerConn) sys.pid_t {
    const state = stateOf(conn) orelse return -1;
    return state.server_pid;
}

pub fn freeConn(conn: ServerConn) void {
    const state = stateOf(conn) orelse return;
    if (state.refs.fetchSub(1, .acq_rel) != 1) return;
    if (state.owner_pid == sys.getpid()) fdpass.sendHangup(state.fd);
    _ = sys.close(state.fd);
    // The server now shuts down as if the owner had died. When it is this
    // process's child (this process is a subreaper or PID 1), nobody else
    // will reap it: wait for it here.
    if (state.owner_pid == sys.getpid() and !state.stop_requested) {
        tree.reapServer(state.server_pid, state.pidfd, true);
        tree.cleanUpAfterServer(state.pidfd, state.cgroup_fd);
    }
    if (state.pidfd >= 0) _ = sys.close(state.pidfd);
    if (state.cgroup_fd >= 0) _ = sys.close(state.cgroup_fd);
    state.fd = -1;
    state.magic = 0;
    if (state.heap) sys.free(state);
}

/// One more handle on the connection, for another thread's event loop (a
/// Bun Worker): the same connection, freed by its own libforks_free_conn.
pub fn shareConn(conn: ServerConn, out: ?*ServerConn) Error!void {
    const shared = out orelse return invalid();
    const state = stateOf(conn) orelse return invalid();
    _ = state.refs.fetchAdd(1, .acq_rel);
    shared.* = conn;
}

// ---------------------------------------------------------------- requests

/// Sends `request` with a fresh reply pipe and `extra_fds`, and returns the
/// pipe's read end in reply_fd. extra_fds are the caller's to close.
fn send(state: *ConnState, request: *const protocol.Request, extra_fds: []const sys.fd_t, reply_fd: *sys.fd_t) Error!void {
    return sendRequest(state, request, extra_fds, reply_fd, false);
}

/// A request answered on an event stream (Flags.to_events) takes no reply
/// pipe: *reply_fd is then -1.
pub fn sendRequest(state: *ConnState, request: *const protocol.Request, extra_fds: []const sys.fd_t, reply_fd: *sys.fd_t, nonblocking: bool) Error!void {
    var pipe_fds: [2]sys.fd_t = .{ -1, -1 };
    const on_stream = request.header.flags & protocol.Flags.to_events != 0;
    if (!on_stream and sys.pipeCloexec(&pipe_fds) != 0) return error.PIPE_CREATION_ERROR;
    var fds: [protocol.max_request_fds]sys.fd_t = undefined;
    const first: usize = if (on_stream) 0 else 1;
    fds[0] = pipe_fds[1];
    @memcpy(fds[first..][0..extra_fds.len], extra_fds);
    const flags: c_int = if (nonblocking) sys.MSG_DONTWAIT else 0;
    const message = request.bytes();
    const attached = fds[0 .. first + extra_fds.len];
    // A stop names its sender (server.zig checks it is the owner).
    const sent = if (request.header.op == .stop)
        fdpass.sendWithCredentials(state.fd, message, attached, flags)
    else
        fdpass.sendFlags(state.fd, message, attached, flags);
    const send_errno = sys.errno();
    if (pipe_fds[1] >= 0) _ = sys.close(pipe_fds[1]);
    if (sent != 0) {
        if (pipe_fds[0] >= 0) _ = sys.close(pipe_fds[0]);
        // ENOBUFS: a full datagram socket, not waited for when non-blocking
        // (fdpass.waitForRoom). ECONNREFUSED: a datagram socket whose
        // peer is gone, ENOTCONN once that was reported.
        if (send_errno == sys.E.AGAIN or send_errno == sys.E.NOBUFS) return withErrno(error.WOULD_BLOCK, send_errno);
        if (send_errno == sys.E.PIPE or send_errno == sys.E.CONNRESET or send_errno == sys.E.CONNREFUSED or send_errno == sys.E.NOTCONN) return withErrno(error.SERVER_GONE, send_errno);
        return withErrno(error.WRITE_ERROR, send_errno);
    }
    reply_fd.* = pipe_fds[0];
}

/// Reads the server's answer from a reply pipe and closes it.
pub fn readReply(reply_fd: sys.fd_t, out: *protocol.Reply) Error!void {
    if (reply_fd < 0) return withErrno(error.INVALID_ARGUMENT, sys.E.BADF);
    const n = sys.readFull(reply_fd, std.mem.asBytes(out));
    const read_errno = sys.errno();
    _ = sys.close(reply_fd);
    if (n < 0) return withErrno(error.READ_ERROR, read_errno);
    // The server closes the pipe only after a whole reply, or by dying.
    if (n == 0) return withErrno(error.SERVER_GONE, sys.E.PIPE);
    if (n != @sizeOf(protocol.Reply)) return withErrno(error.PROTOCOL_ERROR, 0);
    if (out.result != @intFromEnum(abi.Result.OK)) return result_mod.fromReply(out.result, out.error_number);
}

fn transact(state: *ConnState, request: *const protocol.Request, extra_fds: []const sys.fd_t, out: *protocol.Reply) Error!void {
    var reply_fd: sys.fd_t = -1;
    try send(state, request, extra_fds, &reply_fd);
    return readReply(reply_fd, out);
}

// ---------------------------------------------------------------- fork

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
fn buildForkRequest(state: *ConnState, entry: ?Entrypoint, library: ?[*:0]const u8, symbol: ?[*:0]const u8, request: *protocol.Request) Error!void {
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

pub fn connFd(conn: ServerConn) c_int {
    const state = stateOf(conn) orelse return -1;
    return state.fd;
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

// ---------------------------------------------------------------- signals, waits

pub fn killAll(conn: ServerConn, signal: c_int) Error!void {
    var reply_fd: c_int = -1;
    try killAllAsync(conn, signal, &reply_fd);
    var answer: protocol.Reply = undefined;
    return readReply(reply_fd, &answer);
}

pub fn killAllAsync(conn: ServerConn, signal: c_int, reply_fd: ?*c_int) Error!void {
    const out = reply_fd orelse return invalid();
    const state = stateOf(conn) orelse return invalid();
    if (signal < 0 or signal >= sys.NSIG) return invalid();
    const request = protocol.Request{ .header = .{ .op = .kill_all, .number = signal } };
    return send(state, &request, &.{}, out);
}

pub const kill_tree = abi.kill_tree;

pub fn kill(conn: ServerConn, pid: sys.pid_t, signal: c_int, flags: c_int) Error!void {
    var reply_fd: c_int = -1;
    try killAsync(conn, pid, signal, flags, &reply_fd);
    var answer: protocol.Reply = undefined;
    return readReply(reply_fd, &answer);
}

/// Signals one child through the server, which knows whether it reaped
/// it: a kill(2) from here could reach a process that reused the pid.
pub fn killAsync(conn: ServerConn, pid: sys.pid_t, signal: c_int, flags: c_int, reply_fd: ?*c_int) Error!void {
    const out = reply_fd orelse return invalid();
    const state = stateOf(conn) orelse return invalid();
    if (pid <= 0) return invalid();
    if (signal < 0 or signal >= sys.NSIG) return invalid();
    if (flags & ~kill_tree != 0) return invalid();
    var request = protocol.Request{ .header = .{ .op = .kill, .number = pid, .signal = @intCast(signal) } };
    if (flags & kill_tree != 0) request.header.flags = protocol.Flags.tree;
    return send(state, &request, &.{}, out);
}

fn waitRequest(conn: ServerConn, pid: sys.pid_t, options: c_int, request: *protocol.Request) ?*ConnState {
    const state = stateOf(conn) orelse return null;
    if (pid != -1 and pid <= 0) return null;
    if (options & ~sys.WNOHANG != 0) return null;
    request.* = .{ .header = .{ .op = .wait, .number = pid } };
    if (options & sys.WNOHANG != 0) request.header.flags = protocol.Flags.no_hang;
    return state;
}

pub fn waitpid(conn: ServerConn, pid: sys.pid_t, waited_pid: ?*sys.pid_t, stat_loc: ?*c_int, options: c_int, usage: ?*sys.rusage) Error!void {
    var request: protocol.Request = undefined;
    const state = waitRequest(conn, pid, options, &request) orelse return invalid();
    var answer: protocol.Reply = undefined;
    try transact(state, &request, &.{}, &answer);
    if (waited_pid) |p| p.* = answer.pid;
    if (stat_loc) |p| p.* = answer.wait_status;
    if (usage) |p| p.* = answer.rusage;
}

pub fn waitAll(conn: ServerConn) Error!void {
    const state = stateOf(conn) orelse return invalid();
    const request = protocol.Request{ .header = .{ .op = .wait_all } };
    var answer: protocol.Reply = undefined;
    return transact(state, &request, &.{}, &answer);
}

pub fn waitAsync(conn: ServerConn, pid: sys.pid_t, options: c_int, reply_fd: ?*c_int) Error!void {
    const out = reply_fd orelse return invalid();
    var request: protocol.Request = undefined;
    const state = waitRequest(conn, pid, options, &request) orelse return invalid();
    return send(state, &request, &.{}, out);
}

pub fn waitAllAsync(conn: ServerConn, reply_fd: ?*c_int) Error!void {
    const out = reply_fd orelse return invalid();
    const state = stateOf(conn) orelse return invalid();
    const request = protocol.Request{ .header = .{ .op = .wait_all } };
    return send(state, &request, &.{}, out);
}

// ---------------------------------------------------------------- stop

fn ownerState(conn: ServerConn) Error!*ConnState {
    const state = stateOf(conn) orelse return invalid();
    // A plain fork() of the owner holds a copy of its connection; only the
    // owner itself may stop the server.
    if (state.owner_pid == 0 or state.owner_pid != sys.getpid()) return withErrno(error.NOT_OWNER, sys.E.PERM);
    return state;
}

pub fn stopAsync(conn: ServerConn, wait: bool, server_only: bool, reply_fd: ?*c_int) Error!void {
    const out = reply_fd orelse return invalid();
    const state = try ownerState(conn);
    var request = protocol.Request{ .header = .{ .op = .stop } };
    if (wait) request.header.flags |= protocol.Flags.wait;
    if (server_only) request.header.flags |= protocol.Flags.server_only;
    state.stopping_with_wait = wait or server_only;
    state.detaching = server_only;
    state.stop_requested = true;
    return send(state, &request, &.{}, out);
}

/// After the stop reply: waits until the server process is gone (its end
/// of the connection closes when it exits, and nothing else holds it), then
/// frees the connection.
pub fn stopFinish(conn: ServerConn) Error!void {
    const state = stateOf(conn) orelse return invalid();
    if (state.stopping_with_wait) waitForServerEnd(state.fd, if (state.detaching) -1 else state.pidfd);
    // When the server is this process's own child (the double fork
    // re-parents it to the caller when the caller is a subreaper or PID 1),
    // it is reaped here; a stop without wait reaps it only if it is
    // already gone.
    if (!state.detaching) tree.reapServer(state.server_pid, state.pidfd, state.stopping_with_wait);
    if (!state.detaching) tree.cleanUpAfterServer(state.pidfd, state.cgroup_fd);
    // Shared handles still hold the socket: shut it down so their calls
    // fail at once with SERVER_GONE instead of waiting on a dead server.
    if (state.refs.load(.acquire) > 1) _ = sys.shutdown(state.fd, sys.SHUT_RDWR);
    freeConn(conn);
}

fn waitForServerEnd(fd: sys.fd_t, pidfd: sys.fd_t) void {
    var sink: [64]u8 = undefined;
    var no_fds: [0]sys.fd_t = .{};
    // A datagram socket (darwin paths) reports no end-of-file when its
    // peer closes (Linux reports nothing, XNU sets an error but wakes no
    // reader): there only the exit watch says the server is gone.
    while (sys.linux_paths) {
        const received = fdpass.receive(fd, &sink, &no_fds, 0) orelse break;
        if (received.len == 0) break;
    }
    // End-of-file comes as the exiting server closes its fds, a moment
    // before the process is gone; the pidfd says when it is. The server
    // exits right after its last reply, so the bound is only a safety net.
    if (pidfd >= 0) {
        var ready = [1]sys.pollfd{.{ .fd = pidfd, .events = sys.POLLIN, .revents = 0 }};
        while (sys.poll(&ready, 1, 5000) < 0 and sys.errno() == sys.E.INTR) {}
    }
}

pub fn stop(conn: ServerConn, wait: bool, server_only: bool) Error!void {
    var reply_fd: c_int = -1;
    stopAsync(conn, wait, server_only, &reply_fd) catch |err| switch (err) {
        // The connection stays valid: the caller may retry.
        error.NOT_OWNER, error.INVALID_ARGUMENT => return err,
        else => return finishKeepingError(conn, err),
    };
    var answer: protocol.Reply = undefined;
    readReply(reply_fd, &answer) catch |err| return finishKeepingError(conn, err);
    return stopFinish(conn);
}

/// stop_finish after a failed stop: the stop's error and errno are kept.
fn finishKeepingError(conn: ServerConn, err: Error) Error {
    const saved = sys.errno();
    stopFinish(conn) catch {};
    return withErrno(err, saved);
}
