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
const abi = @import("abi.zig");
const result_mod = @import("result.zig");
const Error = result_mod.Error;
const withErrno = result_mod.withErrno;
const invalid = result_mod.invalid;
const ServerConn = client.ServerConn;
const stateOf = client.stateOf;
const sendRequest = client.sendRequest;
const kill_tree = client.kill_tree;

/// libforks_EventRequest: a wait, kill or kill_all answered on a stream.
pub const EventRequest = abi.EventRequest;

const event_op_kill_all = abi.event_op_kill_all;
const event_op_wait = abi.event_op_wait;
const event_op_wait_all = abi.event_op_wait_all;
const event_op_kill = abi.event_op_kill;

pub fn sendEventRequest(conn: ServerConn, given: ?*const EventRequest) Error!void {
    const state = stateOf(conn) orelse return invalid();
    const r = given orelse return invalid();
    if (r.size < @sizeOf(EventRequest) or r.events == 0) return invalid();
    if (r.signal < 0 or r.signal >= sys.NSIG) return invalid();
    var request: protocol.Request = .{ .header = .{ .op = .wait, .flags = protocol.Flags.to_events, .events = r.events, .tag = r.tag } };
    switch (r.op) {
        event_op_wait => {
            if ((r.pid != -1 and r.pid <= 0) or r.flags & ~sys.WNOHANG != 0) return invalid();
            request.header.number = r.pid;
            if (r.flags & sys.WNOHANG != 0) request.header.flags |= protocol.Flags.no_hang;
        },
        event_op_wait_all => request.header.op = .wait_all,
        event_op_kill_all => {
            request.header.op = .kill_all;
            request.header.number = r.signal;
        },
        event_op_kill => {
            if (r.pid <= 0 or r.flags & ~kill_tree != 0) return invalid();
            request.header.op = .kill;
            request.header.number = r.pid;
            request.header.signal = @intCast(r.signal);
            if (r.flags & kill_tree != 0) request.header.flags |= protocol.Flags.tree;
        },
        else => return invalid(),
    }
    var none: sys.fd_t = -1;
    return sendRequest(state, &request, &.{}, &none, false);
}

/// Opens an event stream of this connection: a pipe whose read end is the
/// caller's (close-on-exec, non-blocking) and whose write end the server
/// holds. Its first record is read here: the stream's handle.
pub fn openEvents(conn: ServerConn, read_fd: ?*c_int, handle: ?*u32) Error!void {
    const state = stateOf(conn) orelse return invalid();
    const out_fd = read_fd orelse return invalid();
    const out_handle = handle orelse return invalid();
    var pipe_fds: [2]sys.fd_t = undefined;
    if (sys.pipeCloexec(&pipe_fds) != 0) return error.PIPE_CREATION_ERROR;
    const request = protocol.Request{ .header = .{ .op = .open_events } };
    const sent = fdpass.send(state.fd, request.bytes(), &.{pipe_fds[1]});
    const send_errno = sys.errno();
    _ = sys.close(pipe_fds[1]);
    if (sent != 0) {
        _ = sys.close(pipe_fds[0]);
        // As client.sendRequest: ECONNREFUSED and ENOTCONN are a datagram
        // socket whose peer is gone.
        if (send_errno == sys.E.PIPE or send_errno == sys.E.CONNRESET or send_errno == sys.E.CONNREFUSED or send_errno == sys.E.NOTCONN) return withErrno(error.SERVER_GONE, send_errno);
        return withErrno(error.WRITE_ERROR, send_errno);
    }
    errdefer sys.closeKeepErrno(pipe_fds[0]);
    var record: protocol.EventRecord = undefined;
    const n = sys.readFull(pipe_fds[0], std.mem.asBytes(&record));
    if (n < 0) return error.READ_ERROR;
    if (n == 0) return withErrno(error.SERVER_GONE, sys.E.PIPE);
    if (n != @sizeOf(protocol.EventRecord) or record.magic != protocol.event_magic) return withErrno(error.PROTOCOL_ERROR, 0);
    if (record.result != 0) return result_mod.fromReply(record.result, record.error_number);
    if (sys.setNonblocking(pipe_fds[0], true) != 0) return error.PIPE_CREATION_ERROR;
    out_fd.* = pipe_fds[0];
    out_handle.* = record.handle;
}

/// Waits up to timeout_ms (-1: no limit) for records on a stream, then
/// reads what is there into buf (len: a multiple of the record size).
/// Returns the bytes read, 0 at end-of-file (the server is gone), -1 with
/// errno (EAGAIN: nothing came in time).
pub fn readEvents(fd: c_int, buf: ?[*]u8, len: usize, timeout_ms: c_int) Error!isize {
    const out = buf orelse return invalid();
    if (fd < 0 or len == 0 or len % @sizeOf(protocol.EventRecord) != 0) return invalid();
    while (true) {
        const n = sys.read(fd, out, len);
        if (n >= 0) return n;
        const err = sys.errno();
        if (err == sys.E.INTR) continue;
        if (err != sys.E.AGAIN or timeout_ms == 0) return error.READ_ERROR;
        var ready = [1]sys.pollfd{.{ .fd = fd, .events = sys.POLLIN, .revents = 0 }};
        const polled = sys.poll(&ready, 1, timeout_ms);
        if (polled < 0 and sys.errno() == sys.E.INTR) continue;
        if (polled == 0) return withErrno(error.READ_ERROR, sys.E.AGAIN);
        if (polled < 0) return error.READ_ERROR;
    }
}

/// libforks_SpawnRequest: libforks_exec_entrypoint's spec carried in the
/// fork request itself (protocol.Flags.spec_inline), answered on an event
/// stream: one message, no spec on the socket.
pub const SpawnRequest = abi.SpawnRequest;

/// Whether libforks_spawn_async on `conn` may go without a control socket
/// (socket_fd -1), its outcome in the answer: the server starts the
/// owner's programs in place on Linux, and only such a start can report
/// there (fork.zig).
pub fn outcomeInAnswer(conn: ServerConn) bool {
    const state = stateOf(conn) orelse return false;
    return sys.linux_paths and state.owner_pid != 0 and state.owner_pid == sys.getpid() and sharedCloneWorks();
}

/// 0 not probed yet, 1 a clone with CLONE_VM | CLONE_VFORK shares memory
/// and waits here, 2 it does not.
var shared_clone = std.atomic.Value(u8).init(0);
var shared_clone_mark: u32 = 0;

/// Whether a clone with CLONE_VM | CLONE_VFORK really shares memory with
/// its parent, as the in-place start the answer reports on relies on
/// (exec.zig, in_place_outcome). qemu-user runs such a clone as a plain
/// fork (it drops both flags), and so would this process's server (the
/// same emulator runs it): there the child's report would never reach the
/// server, and the outcome must come on a control socket. Probed once per
/// process: a child on a stack of this frame (the parent is suspended
/// meanwhile, or, as a plain fork, the child has a copy) writes one word
/// and exits.
fn sharedCloneWorks() bool {
    switch (shared_clone.load(.acquire)) {
        1 => return true,
        2 => return false,
        else => {},
    }
    var stack: [16 * 1024]u8 align(16) = undefined;
    const mark: *volatile u32 = &shared_clone_mark;
    mark.* = 0;
    // As posix_spawn: no handler of the caller's may run in the child, on
    // its small stack in the caller's memory. It inherits the mask.
    var old_mask: sys.sigset_t = undefined;
    sys.blockAllSignals(&old_mask);
    const pid = sys.cloneVfork(&markShared, &stack);
    sys.setSignalMask(&old_mask);
    var works = false;
    if (pid > 0) {
        works = mark.* == 1;
        while (sys.waitpid(pid, null, 0) < 0 and sys.errno() == sys.E.INTR) {}
    }
    shared_clone.store(if (works) 1 else 2, .release);
    return works;
}

fn markShared(_: ?*anyopaque) callconv(.c) c_int {
    const mark: *volatile u32 = &shared_clone_mark;
    mark.* = 1;
    return 0;
}

pub fn spawnAsync(conn: ServerConn, given: ?*const SpawnRequest) Error!void {
    const state = stateOf(conn) orelse return invalid();
    const r = given orelse return invalid();
    if (r.size < @sizeOf(SpawnRequest) or r.events == 0 or r.argc == 0) return invalid();
    const in_answer = r.socket_fd < 0;
    if (in_answer and !outcomeInAnswer(conn)) return invalid();
    const strings = r.strings orelse return invalid();
    if (r.fd_count < 0 or r.fd_count > limits.max_fds_per_message) return invalid();
    const fd_count: usize = @intCast(r.fd_count);
    if (fd_count > 0 and (r.fds == null or r.targets == null)) return invalid();
    const fds: []const c_int = if (fd_count > 0) r.fds.?[0..fd_count] else &.{};
    const targets: []const c_int = if (fd_count > 0) r.targets.?[0..fd_count] else &.{};
    for (targets, 0..) |target, i| {
        if (target < 0 or fds[i] < 0) return withErrno(error.INVALID_ARGUMENT, sys.E.BADF);
        if (std.mem.indexOfScalar(c_int, targets[0..i], target) != null) return invalid();
    }
    const body = strings[0..r.strings_len];
    const string_count = 1 + @as(usize, r.argc) + r.envc + @intFromBool(r.has_cwd);
    if (body.len == 0 or body[body.len - 1] != 0 or std.mem.count(u8, body, "\x00") != string_count) return invalid();
    const payload_len = @sizeOf(exec.SpecHeader) + fd_count * @sizeOf(i32) + body.len;
    if (payload_len > protocol.spec_inline_max) return withErrno(error.LIMIT_ERROR, sys.E.MSGSIZE);

    var request: protocol.Request = .{ .header = .{
        .op = .fork,
        .flags = protocol.Flags.builtin_exec | protocol.Flags.spec_inline | protocol.Flags.to_events | protocol.Flags.exit_event |
            if (in_answer) protocol.Flags.outcome_in_reply else protocol.Flags.channel,
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
    const first: usize = if (in_answer) 0 else 1;
    attached[0] = r.socket_fd;
    @memcpy(attached[first..][0..fd_count], fds);
    var none: sys.fd_t = -1;
    return sendRequest(state, &request, attached[0 .. first + fd_count], &none, false);
}
