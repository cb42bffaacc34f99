//! Exits and waits: reaping children, reporting each exit (exit pipe,
//! event stream, a pending wait, or the remembered exits), and the wait
//! requests answered from them.

const sys = @import("sys.zig");
const std = @import("std");
const tree = @import("tree.zig");
const peers = @import("peers.zig");
const server_state = @import("server_state.zig");
const protocol = @import("protocol.zig");
const write_end = @import("write_end.zig");
const events = @import("events.zig");
const replies = @import("replies.zig");
const conns = @import("conns.zig");
const pending = @import("pending.zig");
const exits = @import("exits.zig");
const Result = @import("result.zig").Result;
const state = &server_state.state;
const dropConn = conns.dropConn;
const setPaused = conns.setPaused;
const replyError = replies.replyError;
const ExitRecord = exits.Record;
const reply = replies.reply;
const ReplyTo = replies.ReplyTo;
const Peer = peers.Peer;

pub fn reapChildren() void {
    while (true) {
        var status: c_int = 0;
        var usage: sys.rusage = std.mem.zeroes(sys.rusage);
        const pid = sys.wait4(-1, &status, sys.WNOHANG, &usage);
        if (pid > 0) {
            onChildExit(pid, status, &usage);
            continue;
        }
        if (pid < 0 and sys.errno() == sys.E.INTR) continue;
        return; // 0: none exited; ECHILD: no children
    }
}

fn onChildExit(pid: sys.pid_t, status: c_int, usage: *const sys.rusage) void {
    // Not in the table: an adopted orphan of the tree, reaped so it leaves
    // no zombie, and reported to nobody (nobody asked for it).
    const slot = peers.find(&state.table, pid) orelse return tree.forgetReaped(pid);
    const c = peers.get(&state.table, slot);
    if (c.exit_fd >= 0) {
        // One record of at most PIPE_BUF bytes (the event, and the rusage
        // when the fork asked for it), so one non-blocking write is all or
        // nothing. Dropped if it does not fit (a reader that filled its own
        // exit pipe): the reader then finds end-of-file without an event.
        const message = protocol.ExitMessage{ .event = .{ .pid = pid, .wait_status = status }, .rusage = usage.* };
        const size: usize = if (c.exit_rusage) @sizeOf(protocol.ExitMessage) else @sizeOf(protocol.ExitEvent);
        _ = write_end.put(c.exit_fd, std.mem.asBytes(&message)[0..size]);
        _ = sys.close(c.exit_fd);
        c.exit_fd = -1;
    }
    if (c.exit_stream != 0) {
        // Owed since the fork (events.zig): never dropped while the
        // stream's reader is there.
        if (events.findHandle(c.exit_stream)) |stream| {
            const record = protocol.EventRecord{ .kind = .exit, .tag = c.exit_tag, .pid = pid, .wait_status = status, .rusage = usage.* };
            replies.putRecord(stream, &record, false);
        }
        c.exit_stream = 0;
    }
    // Its connection, its event streams, and what it still waited for, go
    // with it.
    if (c.conn_fd >= 0) dropConn(slot);
    if (c.paused) setPaused(slot, false);
    events.forEachOf(slot, {}, closeStreamOf);
    while (pending.takeOf(&state.table, slot)) |own| replyError(own.to, .SERVER_GONE, 0);
    exits.moveRecords(&state.exits, &state.table, slot, c.parent);
    const parent = peers.remove(&state.table, slot);
    // Its slot is free: nothing below may find it by pid or slot again.
    std.debug.assert(!peers.isRunning(&state.table, slot));

    const record = ExitRecord{ .pid = pid, .status = status, .rusage = usage.*, .parent = parent, .seq = 0 };
    if (pending.takeFor(&state.table, .wait_pid, pid, parent) orelse pending.takeFor(&state.table, .wait_any, pid, parent)) |waiter| {
        replyExit(waiter.to, record);
    } else {
        exits.remember(&state.exits, &state.table, record);
    }
    // A status is reported once: other waits for this pid now wait for a
    // process that is no longer a child, like waitpid(2) would.
    while (pending.takeFor(&state.table, .wait_pid, pid, parent)) |waiter| replyError(waiter.to, .WAIT_ERROR, sys.E.CHILD);
    settleEmptySubtrees();
}

/// Waits of peers whose subtree has just emptied: wait_all is done, and a
/// wait for any child with nothing remembered either can never be
/// answered (ECHILD, as waitpid(2) without children).
fn settleEmptySubtrees() void {
    var i: usize = 0;
    while (i < pending.table.count) {
        const p = pending.table.items[i];
        const settled = switch (p.kind) {
            .wait_all, .wait_any => !peers.subtreeRunning(&state.table, p.peer) and
                (p.kind == .wait_all or !exits.hasFor(&state.exits, &state.table, p.peer)),
            .wait_pid, .stop => false,
        };
        if (!settled) {
            i += 1;
            continue;
        }
        pending.removeAt(&state.table, i);
        if (p.kind == .wait_all) {
            reply(p.to, .{ .result = @intFromEnum(Result.OK) });
        } else {
            replyError(p.to, .WAIT_ERROR, sys.E.CHILD);
        }
    }
}

fn replyExit(to: ReplyTo, record: ExitRecord) void {
    reply(to, .{ .result = @intFromEnum(Result.OK), .pid = record.pid, .wait_status = record.status, .rusage = record.rusage });
}

pub fn handleWait(peer: Peer, header: *const protocol.RequestHeader, to: ReplyTo) void {
    const pid: sys.pid_t = header.number;
    if (exits.take(&state.exits, &state.table, peer, pid)) |record| return replyExit(to, record);
    // Like waitpid(2): a process outside the caller's subtree is not its
    // child, whoever forked it.
    const running = if (pid == -1)
        peers.subtreeRunning(&state.table, peer)
    else if (peers.find(&state.table, pid)) |slot|
        peers.controls(&state.table, peer, slot)
    else
        false;
    if (!running) return replyError(to, .WAIT_ERROR, sys.E.CHILD);
    if (header.flags & protocol.Flags.no_hang != 0) return replyError(to, .WOULD_BLOCK, 0);
    pending.add(&state.table, peer, if (pid == -1) .wait_any else .wait_pid, pid, to);
}

pub fn handleWaitAll(peer: Peer, to: ReplyTo) void {
    if (!peers.subtreeRunning(&state.table, peer)) return reply(to, .{ .result = @intFromEnum(Result.OK) });
    pending.add(&state.table, peer, .wait_all, 0, to);
}

fn closeStreamOf(_: void, stream: usize) void {
    replies.closeStream(stream);
}
