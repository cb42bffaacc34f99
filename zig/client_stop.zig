//! Stopping the server from its owner: the stop request, waiting for the
//! server process to be gone, reaping it and cleaning up after it.

const sys = @import("sys.zig");
const protocol = @import("protocol.zig");
const fdpass = @import("fdpass.zig");
const tree = @import("tree.zig");
const client_conn = @import("client_conn.zig");
const result_mod = @import("result.zig");
const ServerConn = client_conn.ServerConn;
const ConnState = client_conn.ConnState;
const stateOf = client_conn.stateOf;
const freeConn = client_conn.freeConn;
const send = client_conn.send;
const readReply = client_conn.readReply;
const Error = result_mod.Error;
const withErrno = result_mod.withErrno;
const invalid = result_mod.invalid;

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
