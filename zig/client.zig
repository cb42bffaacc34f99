//! The calls a client makes on a connection: requests to the server.
//! Starting a server is start.zig. Here: kills and waits, and the one
//! namespace for the rest: the connection and how a request is sent
//! (client_conn.zig), forks (client_fork.zig), stop (client_stop.zig).

const sys = @import("sys.zig");
const protocol = @import("protocol.zig");
const abi = @import("abi.zig");
const client_conn = @import("client_conn.zig");
const client_fork = @import("client_fork.zig");
const client_stop = @import("client_stop.zig");
const result_mod = @import("result.zig");
const Error = result_mod.Error;
const invalid = result_mod.invalid;

// The connection and its requests (client_conn.zig).
pub const ServerConn = client_conn.ServerConn;
pub const Entrypoint = client_conn.Entrypoint;
pub const conn_magic = client_conn.conn_magic;
pub const ConnState = client_conn.ConnState;
pub const initChildConn = client_conn.initChildConn;
pub const stateOf = client_conn.stateOf;
pub const serverPid = client_conn.serverPid;
pub const freeConn = client_conn.freeConn;
pub const shareConn = client_conn.shareConn;
pub const connFd = client_conn.connFd;
pub const sendRequest = client_conn.sendRequest;
pub const readReply = client_conn.readReply;
const send = client_conn.send;
const transact = client_conn.transact;

// Forks (client_fork.zig).
pub const ForkOut = client_fork.ForkOut;
pub const fork = client_fork.fork;
pub const forkSymbol = client_fork.forkSymbol;
pub const ForkRequest = client_fork.ForkRequest;
pub const forkAsync = client_fork.forkAsync;
pub const buildForkRequest = client_fork.buildForkRequest;

// Stopping the server (client_stop.zig).
pub const stopAsync = client_stop.stopAsync;
pub const stopFinish = client_stop.stopFinish;
pub const stop = client_stop.stop;

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
