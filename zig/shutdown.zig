//! How the server ends: the owner's exit watched, termination (SIGTERM to
//! the tree, SIGKILL after the grace period, orphans adopted meanwhile
//! given the same), the stop request, detaching, and the last exit.

const std = @import("std");
const server_state = @import("server_state.zig");
const nowMs = @import("clock.zig").nowMs;
const tree = @import("tree.zig");
const kill = @import("kill.zig");
const limits = @import("limits.zig");
const poller = @import("poller.zig");
const sys = @import("sys.zig");
const peers = @import("peers.zig");
const pending = @import("pending.zig");
const events = @import("events.zig");
const protocol = @import("protocol.zig");
const replies = @import("replies.zig");
const Result = @import("result.zig").Result;
const conns = @import("conns.zig");
const state = &server_state.state;
const signalSubtree = kill.signalSubtree;
const isInTable = kill.isInTable;
const ReplyTo = replies.ReplyTo;
const replyError = replies.replyError;
const reply = replies.reply;
const Peer = peers.Peer;
const dropConn = conns.dropConn;

pub fn scanAdopted() void {
    if (!state.adopted_scan_due) return;
    const now = nowMs();
    if (now < state.next_adopted_scan_ms) return;
    state.adopted_scan_due = false;
    state.next_adopted_scan_ms = now + adopted_scan_ms;
    signalAdoptedAsTree();
}

/// How late an orphan adopted during a stop may get the tree's signal.
const adopted_scan_ms = 10;

pub fn probesOwner() bool {
    return state.phase == .serving and tree.state.owner_pidfd < 0;
}

/// The owner's connection normally reports its death (end-of-file), but a
/// copy of that socket kept by another process (a plain fork() of the
/// owner) would hide it, so the owner's exit itself is watched: its pidfd
/// in the poll set (a zombie owner counts as gone), or, without pidfds, a
/// probe of its pid.
pub fn checkOwnerAlive() void {
    if (!probesOwner()) return;
    // The clock is read without a system call (vDSO); the probe is one
    // kill(2) at most every owner_check_ms, not one per request.
    const now = nowMs();
    if (now < state.next_owner_probe_ms) return;
    state.next_owner_probe_ms = now + limits.owner_check_ms;
    if (tree.ownerProbeSaysGone(state.owner_pid)) beginTermination();
}

/// The owner's pidfd stays readable: closed at once, so nothing polls it
/// again.
pub fn ownerExited() void {
    closeOwnerPidfd();
    if (state.phase == .serving) beginTermination();
}

fn closeOwnerPidfd() void {
    if (tree.state.owner_pidfd < 0) return;
    poller.remove(tree.state.owner_pidfd);
    _ = sys.close(tree.state.owner_pidfd);
    tree.state.owner_pidfd = -1;
}

pub fn beginTermination() void {
    state.exit_when_empty = true;
    if (state.phase == .terminating) return;
    state.phase = .terminating;
    state.kill_deadline_ms = nowMs() + limits.kill_grace_ms;
    signalSubtree(peers.owner, sys.SIGTERM);
    tree.signalAdopted(sys.SIGTERM, &isInTable, true);
}

/// SIGKILL to the whole tree: every child, every adopted orphan, and the
/// tree's cgroup when there is one (which also takes descendants still
/// below a living child). Orphans made by these deaths come to the server
/// and get the same on its next reap.
pub fn killTree() void {
    signalSubtree(peers.owner, sys.SIGKILL);
    _ = tree.killCgroup();
    tree.signalAdopted(sys.SIGKILL, &isInTable, false);
}

/// After a reap while terminating: orphans that just came to the server
/// get what the rest of the tree got.
fn signalAdoptedAsTree() void {
    if (state.killed) tree.signalAdopted(sys.SIGKILL, &isInTable, false) else tree.signalAdopted(sys.SIGTERM, &isInTable, true);
}

/// No process of the tree is left: answers the waits, then exits once
/// every event stream's backlog is written, and only then answers a
/// stop. An exit record queued behind a full pipe is still owed to a
/// reader that is there (without it, that child's exit would be reported
/// as unknown), and a stop's caller may stop reading once answered; a
/// reader that takes nothing for limits.drain_ms loses the rest, as the
/// server must end. Streams with a backlog are polled for writing
/// meanwhile.
pub fn finishWhenDrained() void {
    std.debug.assert(state.exit_when_empty and state.table.count == 0);
    if (!state.draining) {
        state.draining = true;
        state.drain_deadline_ms = nowMs() + limits.drain_ms;
        pending.answerWaits(&state.table);
    }
    if (!events.anyBacklog() or nowMs() >= state.drain_deadline_ms) finish();
}

/// Replies to whatever still waits, then exits. Exit fds still open are
/// closed by the exit itself (their readers see end-of-file).
pub fn finish() noreturn {
    pending.answerAll(.OK);
    std.debug.assert(pending.table.count == 0 and pending.table.peer_count == 0);
    // Best effort: the process ends here, and its streams with it.
    for (0..events.max_streams) |stream| {
        if (events.fdOf(stream) >= 0) _ = events.flush(stream);
    }
    tree.removeCgroup();
    sys._exit(0);
}

pub fn handleStop(header: *const protocol.RequestHeader, to: ReplyTo, from_owner: bool) void {
    if (!from_owner) return replyError(to, .NOT_OWNER, sys.E.PERM);
    if (header.flags & protocol.Flags.server_only != 0) return detach(to);
    beginTermination();
    if (header.flags & protocol.Flags.wait != 0) {
        pending.add(&state.table, peers.owner, .stop, 0, to);
    } else {
        reply(to, .{ .result = @intFromEnum(Result.OK) });
    }
}

/// libforks_stop_server_only: the children keep running, but they die
/// with the server (tree.dieWithServer), so it stays as their reaper, and
/// serves nobody: the connections close (requests from children get
/// SERVER_GONE), exit fds close without an event, and the owner's death
/// no longer matters. It exits after the last process of the tree.
fn detach(to: ReplyTo) void {
    pending.answerAll(.SERVER_GONE);
    std.debug.assert(pending.table.count == 0 and pending.table.peer_count == 0);
    for (0..state.table.high) |i| {
        const slot: Peer = @intCast(i);
        if (!peers.isRunning(&state.table, slot)) continue;
        const c = peers.get(&state.table, slot);
        if (c.exit_fd >= 0) _ = sys.close(c.exit_fd);
        c.exit_fd = -1;
        if (c.conn_fd >= 0) dropConn(slot);
    }
    for (&state.table.spare_conn) |*fd| {
        if (fd.* >= 0) _ = sys.close(fd.*);
        fd.* = -1;
    }
    closeOwnerPidfd();
    reply(to, .{ .result = @intFromEnum(Result.OK) });
    // Their readers see end-of-file: nothing more will be said there.
    for (0..events.max_streams) |stream| replies.closeStream(stream);
    // Last: the owner waits for this end-of-file.
    poller.remove(state.owner_fd);
    _ = sys.close(state.owner_fd);
    state.owner_fd = -1;
    state.phase = .detached;
    state.exit_when_empty = true;
}
