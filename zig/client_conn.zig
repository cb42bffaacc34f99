//! A client's connection to its server: its state (one handle, shared by
//! any number of threads), and a request sent with a reply pipe of its own
//! and its reply read.
//!
//! Every request gets its own reply pipe (see protocol.zig), so a
//! connection is shared by any number of threads without a lock: the only
//! shared state is the socket, and each request is one sendmsg.

const std = @import("std");
const sys = @import("sys.zig");
const protocol = @import("protocol.zig");
const fdpass = @import("fdpass.zig");
const tree = @import("tree.zig");
const abi = @import("abi.zig");
const result_mod = @import("result.zig");
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

pub fn connFd(conn: ServerConn) c_int {
    const state = stateOf(conn) orelse return -1;
    return state.fd;
}

/// Sends `request` with a fresh reply pipe and `extra_fds`, and returns the
/// pipe's read end in reply_fd. extra_fds are the caller's to close.
pub fn send(state: *ConnState, request: *const protocol.Request, extra_fds: []const sys.fd_t, reply_fd: *sys.fd_t) Error!void {
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

pub fn transact(state: *ConnState, request: *const protocol.Request, extra_fds: []const sys.fd_t, out: *protocol.Reply) Error!void {
    var reply_fd: sys.fd_t = -1;
    try send(state, request, extra_fds, &reply_fd);
    return readReply(reply_fd, out);
}
