//! Forking a child for a request: its slot, its connection, its fork
//! (or, for a program whose spec is at hand, an exec child that shares
//! the server's memory while the server waits).

const std = @import("std");
const sys = @import("sys.zig");
const protocol = @import("protocol.zig");
const child = @import("child.zig");
const exec = @import("exec.zig");
const entry_cache = @import("entry_cache.zig");
const peers = @import("peers.zig");
const poller = @import("poller.zig");
const write_end = @import("write_end.zig");
const events = @import("events.zig");
const replies = @import("replies.zig");
const signals = @import("signals.zig");
const child_fork = @import("child_fork.zig");
const server_state = @import("server_state.zig");
const Result = @import("result.zig").Result;
const Peer = peers.Peer;
const ReplyTo = replies.ReplyTo;
const reply = replies.reply;
const replyError = replies.replyError;
const state = &server_state.state;
const childKey = server_state.childKey;

pub fn closeAll(fds: []const sys.fd_t) void {
    for (fds) |fd| _ = sys.close(fd);
}

/// `fds` are the request's fds after the reply pipe, as received.
/// `close_server_fds` closes every fd of the server in a new child
/// (server.forEachServerFd, which this file cannot import).
pub fn handleFork(peer: Peer, header: *const protocol.RequestHeader, to: ReplyTo, fds: []const sys.fd_t, close_server_fds: *const fn () void) void {
    var next: usize = 0;
    var exit_fd: sys.fd_t = -1;
    var channel_fd: sys.fd_t = -1;
    if (header.flags & protocol.Flags.exit_fd != 0) {
        exit_fd = fds[next];
        next += 1;
    }
    if (header.flags & protocol.Flags.channel != 0) {
        channel_fd = fds[next];
        next += 1;
    }
    // The program's fds (Flags.spec_inline): the child keeps them, the
    // server closes its copies after the fork, as the channel's.
    const spec_fds = fds[next..];
    std.debug.assert(spec_fds.len == if (header.flags & protocol.Flags.spec_inline != 0) @as(usize, @intCast(header.number)) else 0);
    // darwin paths: the caller learns the outcome of an exec from this
    // pipe, not from the socket's end (exec.zig). Made before any answer,
    // so a refused fork also gives the caller its end-of-file; the
    // server's write end closes when this returns, after the fork.
    const report_fd = if (header.flags & protocol.Flags.builtin_exec != 0) exec.openReport(channel_fd) else -1;
    defer if (report_fd >= 0) {
        _ = sys.close(report_fd);
    };

    if (state.phase != .serving or !peers.mayFork(&state.table, peer, state.child_limit)) {
        const result: Result = if (state.phase != .serving) .SERVER_GONE else .LIMIT_ERROR;
        closeAll(fds);
        return replyError(to, result, 0);
    }
    // No socket for the outcome: only a program started in place can
    // report in the answer (below), so only the owner's, on Linux.
    const outcome_in_reply = header.flags & protocol.Flags.outcome_in_reply != 0;
    if (outcome_in_reply and !(sys.linux_paths and peer == peers.owner)) {
        closeAll(fds);
        return replyError(to, .INVALID_ARGUMENT, 0);
    }
    // The exit pipe must never block the server, even if nobody reads it,
    // or its reader clears O_NONBLOCK: a write end of the server's own.
    if (exit_fd >= 0) {
        exit_fd = write_end.adopt(exit_fd);
        if (exit_fd < 0) {
            if (channel_fd >= 0) _ = sys.close(channel_fd);
            closeAll(spec_fds);
            return replyError(to, .INVALID_ARGUMENT, sys.E.BADF);
        }
    }
    // The child's own connection. The server never writes to it, so a
    // child that stops reading, shuts it down or fills it hurts only its
    // own requests.
    var conn: [2]sys.fd_t = state.table.spare_conn;
    state.table.spare_conn = .{ -1, -1 };
    if (conn[0] < 0 and sys.socketpairCloexec(sys.message_socket_type, &conn) != 0) {
        const err = sys.errno();
        if (exit_fd >= 0) _ = sys.close(exit_fd);
        if (channel_fd >= 0) _ = sys.close(channel_fd);
        closeAll(spec_fds);
        return replyError(to, .SOCKET_CREATION_ERROR, err);
    }
    // In the table before the fork, so the new child closes the server's
    // ends of it with the server's other fds.
    const slot = peers.take(&state.table, peer);
    const entry = &state.table.slots[slot];
    std.debug.assert(entry.pid == -1 and entry.parent == peer);
    entry.exit_fd = exit_fd;
    entry.exit_rusage = header.flags & protocol.Flags.exit_rusage != 0;
    if (header.flags & protocol.Flags.exit_event != 0) {
        entry.exit_stream = events.handleOf(to.stream);
        entry.exit_tag = header.tag;
    }
    entry.conn_fd = conn[0];
    if (!poller.add(conn[0], childKey(slot))) {
        const err = sys.errno();
        abandonSlot(slot, conn[1], channel_fd, spec_fds);
        return replyError(to, .LIMIT_ERROR, err);
    }

    // Without signalfd, signals are blocked across fork so the child cannot
    // run the server's handlers before it resets them (signals.zig).
    // The C library's fork() (in a snapshot server _Fork(), without the
    // host's atfork handlers: child_fork.zig), not a raw system call: the
    // server is single-threaded, so the locks fork() takes are free and it
    // cannot block; in exchange the child gets what only the C library
    // maintains (the thread descriptor's tid used by raise() and
    // pthread_kill(), its robust-mutex list), so entrypoints may use
    // ordinary libc.
    var start = child.Start{
        .conn_fd = conn[1],
        .channel_fd = channel_fd,
        .request_fds = .{ to.fd, -1 },
        .entry = header.entry,
        .builtin_exec = header.flags & protocol.Flags.builtin_exec != 0,
        .owner_spec_queued = header.flags & protocol.Flags.spec_queued != 0 and peer == peers.owner,
        .spec = if (header.flags & protocol.Flags.spec_inline != 0)
            std.mem.asBytes(&state.request)[@sizeOf(protocol.RequestHeader)..][0..header.payload_len]
        else
            null,
        .spec_fds = spec_fds,
        .report_fd = report_fd,
        .symbol = if (header.flags & protocol.Flags.symbol != 0)
            protocol.splitSymbolPayload(std.mem.asBytes(&state.request)[@sizeOf(protocol.RequestHeader)..][0..header.payload_len]) catch unreachable
        else
            null,
        .server_pid = state.server_pid,
        .inherited = if (state.inherited_overflow) null else state.inherited[0..state.inherited_count],
        .caller_nofile = if (state.raised_nofile) state.caller_nofile else .{ .cur = 0, .max = 0 },
        .close_server_fds = close_server_fds,
    };
    if (state.kind == .clean) {
        if (start.symbol) |symbol| {
            if (entry_cache.resolve(symbol)) |address| {
                start.entry = address;
                start.symbol = null;
            }
        }
    }
    var old_mask: sys.sigset_t = undefined;
    signals.blockForFork(&old_mask);
    // In place only for the owner: the server is suspended until the
    // program is exec'd, and chdir and execve follow paths the requester
    // chose (one on a file system a process serves, FUSE, could take as
    // long as that process likes). The owner can only stall its own
    // server; a child's program is started by an ordinary fork.
    const spec_ready = header.flags & (protocol.Flags.spec_queued | protocol.Flags.spec_inline) != 0;
    const in_place = sys.linux_paths and spec_ready and peer == peers.owner;
    std.debug.assert(in_place or !outcome_in_reply);
    if (outcome_in_reply) exec.clearInPlaceOutcome();
    const pid = if (in_place) spawnInPlace(&start) else child_fork.fork();
    if (pid == 0) child.run(start);
    const fork_errno = sys.errno();
    signals.restoreAfterFork(&old_mask);

    if (pid < 0) {
        poller.remove(conn[0]);
        abandonSlot(slot, conn[1], channel_fd, spec_fds);
        return replyError(to, .FORK_ERROR, fork_errno);
    }
    // The server keeps a copy of the child's end until it reaps the
    // child: the child's exit then closes no last copy, so it wakes the
    // server once (SIGCHLD), not twice (end-of-file first). Its connection
    // still ends when the child shuts it down, and with the reaping.
    entry.child_end = conn[1];
    if (channel_fd >= 0) _ = sys.close(channel_fd);
    closeAll(spec_fds);
    peers.commit(&state.table, slot, pid);
    std.debug.assert(state.table.slots[slot].pid == pid and entry.conn_fd >= 0);
    if (outcome_in_reply) {
        // The child has exec'd or exited: CLONE_VFORK waited for it.
        const outcome = exec.inPlaceOutcome();
        return replies.replySpawned(to, pid, outcome.step, outcome.error_number);
    }
    reply(to, .{ .result = @intFromEnum(Result.OK), .pid = pid });
}

/// Undoes handleFork's slot when no child was made.
fn abandonSlot(slot: Peer, child_conn: sys.fd_t, channel_fd: sys.fd_t, spec_fds: []const sys.fd_t) void {
    closeAll(spec_fds);
    const entry = &state.table.slots[slot];
    _ = sys.close(entry.conn_fd);
    _ = sys.close(child_conn);
    if (entry.exit_fd >= 0) _ = sys.close(entry.exit_fd);
    if (channel_fd >= 0) _ = sys.close(channel_fd);
    peers.release(&state.table, slot);
}

// An exec child that shares the server's memory (CLONE_VM) and runs while
// the server waits (CLONE_VFORK), as posix_spawn does: no copy of the
// server's page tables, which for a snapshot of a big process is most of
// the cost of running a program. Used only when the whole exec spec is
// already queued (Flags.spec_queued), so the child never waits on the
// client while the server is suspended. The child writes only its own
// stack, in_place_start and exec's in_place storage.
var in_place_stack: [128 * 1024]u8 align(16) = undefined;
var in_place_start: child.Start = undefined;

fn inPlaceMain(_: ?*anyopaque) callconv(.c) c_int {
    child.run(in_place_start);
}

fn spawnInPlace(start: *const child.Start) sys.pid_t {
    in_place_start = start.*;
    in_place_start.in_place = true;
    return sys.cloneVfork(&inPlaceMain, &in_place_stack);
}
