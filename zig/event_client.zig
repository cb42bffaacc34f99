//! The client's side of event streams (events.zig): opening one, reading
//! it, and the requests answered there (waits, kills, and spawn with its
//! spec carried in the request).

const std = @import("std");
const sys = @import("sys.zig");
const limits = @import("limits.zig");
const protocol = @import("protocol.zig");
const fdpass = @import("fdpass.zig");
const exec = @import("exec.zig");
const client = @import("client.zig");
const result_mod = @import("result.zig");
const Result = result_mod.Result;
const fail = result_mod.fail;
const failWith = result_mod.failWith;
const ServerConn = client.ServerConn;
const stateOf = client.stateOf;
const sendRequest = client.sendRequest;
const kill_tree = client.kill_tree;


/// libforks_EventRequest: a wait, kill or kill_all answered on a stream.
pub const EventRequest = extern struct {
    size: usize,
    op: c_int,
    pid: sys.pid_t,
    signal: c_int,
    flags: c_int,
    events: u32,
    tag: u64,
};

pub const event_op_kill_all: c_int = 2;
pub const event_op_wait: c_int = 3;
pub const event_op_wait_all: c_int = 4;
pub const event_op_kill: c_int = 6;

pub fn sendEventRequest(conn: ServerConn, given: ?*const EventRequest) Result {
    result_mod.clear();
    const state = stateOf(conn) orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    const r = given orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    if (r.size < @sizeOf(EventRequest) or r.events == 0) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    if (r.signal < 0 or r.signal >= sys.NSIG) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    var request: protocol.Request = .{ .header = .{ .op = .wait, .flags = protocol.Flags.to_events, .events = r.events, .tag = r.tag } };
    switch (r.op) {
        event_op_wait => {
            if ((r.pid != -1 and r.pid <= 0) or r.flags & ~sys.WNOHANG != 0) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
            request.header.number = r.pid;
            if (r.flags & sys.WNOHANG != 0) request.header.flags |= protocol.Flags.no_hang;
        },
        event_op_wait_all => request.header.op = .wait_all,
        event_op_kill_all => {
            request.header.op = .kill_all;
            request.header.number = r.signal;
        },
        event_op_kill => {
            if (r.pid <= 0 or r.flags & ~kill_tree != 0) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
            request.header.op = .kill;
            request.header.number = r.pid;
            request.header.signal = @intCast(r.signal);
            if (r.flags & kill_tree != 0) request.header.flags |= protocol.Flags.tree;
        },
        else => return failWith(.INVALID_ARGUMENT, sys.E.INVAL),
    }
    var none: sys.fd_t = -1;
    return sendRequest(state, &request, &.{}, &none, false);
}

/// Opens an event stream of this connection: a pipe whose read end is the
/// caller's (close-on-exec, non-blocking) and whose write end the server
/// holds. Its first record is read here: the stream's handle.
pub fn openEvents(conn: ServerConn, read_fd: ?*c_int, handle: ?*u32) Result {
    result_mod.clear();
    const state = stateOf(conn) orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    const out_fd = read_fd orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    const out_handle = handle orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    var pipe_fds: [2]sys.fd_t = undefined;
    if (sys.pipeCloexec(&pipe_fds) != 0) return fail(.PIPE_CREATION_ERROR);
    const request = protocol.Request{ .header = .{ .op = .open_events } };
    const sent = fdpass.send(state.fd, request.bytes(), &.{pipe_fds[1]});
    const send_errno = sys.errno();
    _ = sys.close(pipe_fds[1]);
    if (sent != 0) {
        _ = sys.close(pipe_fds[0]);
        if (send_errno == sys.E.PIPE or send_errno == sys.E.CONNRESET) return failWith(.SERVER_GONE, send_errno);
        return failWith(.WRITE_ERROR, send_errno);
    }
    var record: protocol.EventRecord = undefined;
    const n = sys.readFull(pipe_fds[0], std.mem.asBytes(&record));
    const read_errno = sys.errno();
    const result: Result = if (n < 0)
        failWith(.READ_ERROR, read_errno)
    else if (n == 0)
        failWith(.SERVER_GONE, sys.E.PIPE)
    else if (n != @sizeOf(protocol.EventRecord) or record.magic != protocol.event_magic)
        failWith(.PROTOCOL_ERROR, 0)
    else if (record.result != 0)
        failWith(@enumFromInt(record.result), record.error_number)
    else if (sys.setNonblocking(pipe_fds[0], true) != 0)
        fail(.PIPE_CREATION_ERROR)
    else
        .OK;
    if (result != .OK) {
        sys.closeKeepErrno(pipe_fds[0]);
        return result;
    }
    out_fd.* = pipe_fds[0];
    out_handle.* = record.handle;
    return .OK;
}

/// Waits up to timeout_ms (-1: no limit) for records on a stream, then
/// reads what is there into buf (len: a multiple of the record size).
/// Returns the bytes read, 0 at end-of-file (the server is gone), -1 with
/// errno (EAGAIN: nothing came in time).
pub fn readEvents(fd: c_int, buf: ?[*]u8, len: usize, timeout_ms: c_int) isize {
    result_mod.clear();
    const out = buf orelse {
        sys.setErrno(sys.E.INVAL);
        return -1;
    };
    if (fd < 0 or len == 0 or len % @sizeOf(protocol.EventRecord) != 0) {
        sys.setErrno(sys.E.INVAL);
        return -1;
    }
    while (true) {
        const n = sys.read(fd, out, len);
        if (n >= 0) return n;
        const err = sys.errno();
        if (err == sys.E.INTR) continue;
        if (err != sys.E.AGAIN or timeout_ms == 0) return -1;
        var ready = [1]sys.pollfd{.{ .fd = fd, .events = sys.POLLIN, .revents = 0 }};
        const polled = sys.poll(&ready, 1, timeout_ms);
        if (polled < 0 and sys.errno() == sys.E.INTR) continue;
        if (polled <= 0) {
            if (polled == 0) sys.setErrno(sys.E.AGAIN);
            return -1;
        }
    }
}

/// libforks_SpawnRequest: libforks_exec_entrypoint's spec carried in the
/// fork request itself (protocol.Flags.spec_inline), answered on an event
/// stream: one message, no spec on the socket.
pub const SpawnRequest = extern struct {
    size: usize,
    /// The program's path, argv, envp and, with has_cwd, the directory,
    /// each NUL-terminated, back to back.
    strings: ?[*]const u8,
    strings_len: usize,
    argc: u32,
    envc: u32,
    has_cwd: bool,
    fds: ?[*]const c_int,
    targets: ?[*]const c_int,
    fd_count: c_int,
    /// The exec child's end of the control socket (its outcome comes
    /// there, libforks_read_exec_result).
    socket_fd: c_int,
    events: u32,
    tag: u64,
};

pub fn spawnAsync(conn: ServerConn, given: ?*const SpawnRequest) Result {
    result_mod.clear();
    const state = stateOf(conn) orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    const r = given orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    if (r.size < @sizeOf(SpawnRequest) or r.events == 0 or r.socket_fd < 0 or r.argc == 0) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    const strings = r.strings orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    if (r.fd_count < 0 or r.fd_count > limits.max_fds_per_message) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    const fd_count: usize = @intCast(r.fd_count);
    if (fd_count > 0 and (r.fds == null or r.targets == null)) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    const fds: []const c_int = if (fd_count > 0) r.fds.?[0..fd_count] else &.{};
    const targets: []const c_int = if (fd_count > 0) r.targets.?[0..fd_count] else &.{};
    for (targets, 0..) |target, i| {
        if (target < 0 or fds[i] < 0) return failWith(.INVALID_ARGUMENT, sys.E.BADF);
        if (std.mem.indexOfScalar(c_int, targets[0..i], target) != null) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    }
    const body = strings[0..r.strings_len];
    const string_count = 1 + @as(usize, r.argc) + r.envc + @intFromBool(r.has_cwd);
    if (body.len == 0 or body[body.len - 1] != 0 or std.mem.count(u8, body, "\x00") != string_count) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    const payload_len = @sizeOf(exec.SpecHeader) + fd_count * @sizeOf(i32) + body.len;
    if (payload_len > protocol.spec_inline_max) return failWith(.LIMIT_ERROR, sys.E.MSGSIZE);

    var request: protocol.Request = .{ .header = .{
        .op = .fork,
        .flags = protocol.Flags.builtin_exec | protocol.Flags.channel | protocol.Flags.spec_inline |
            protocol.Flags.to_events | protocol.Flags.exit_event,
        .number = @intCast(fd_count),
        .payload_len = @intCast(payload_len),
        .events = r.events,
        .tag = r.tag,
    } };
    const header = exec.SpecHeader{
        .body_len = @intCast(body.len),
        .fd_count = @intCast(fd_count),
        .argc = r.argc,
        .envc = r.envc,
        .has_cwd = @intFromBool(r.has_cwd),
    };
    var at: usize = 0;
    @memcpy(request.payload[at..][0..@sizeOf(exec.SpecHeader)], std.mem.asBytes(&header));
    at += @sizeOf(exec.SpecHeader);
    @memcpy(request.payload[at..][0 .. fd_count * @sizeOf(i32)], std.mem.sliceAsBytes(targets));
    at += fd_count * @sizeOf(i32);
    @memcpy(request.payload[at..][0..body.len], body);

    var attached: [1 + limits.max_fds_per_message]sys.fd_t = undefined;
    attached[0] = r.socket_fd;
    @memcpy(attached[1..][0..fd_count], fds);
    var none: sys.fd_t = -1;
    return sendRequest(state, &request, attached[0 .. 1 + fd_count], &none, false);
}

comptime {
    // src/events.ts's and src/spawn-request.ts's layout tables.
    std.debug.assert(@sizeOf(SpawnRequest) == 80 and @offsetOf(SpawnRequest, "fds") == 40 and @offsetOf(SpawnRequest, "tag") == 72);
    std.debug.assert(@sizeOf(EventRequest) == 40 and @offsetOf(EventRequest, "tag") == 32);
}
