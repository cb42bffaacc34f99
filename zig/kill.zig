//! Kill requests: a signal to one child or its tree, or to a peer's whole
//! subtree, only ever to processes the requester controls (peers.zig).

const std = @import("std");
const tree = @import("tree.zig");
const peers = @import("peers.zig");
const protocol = @import("protocol.zig");
const replies = @import("replies.zig");
const sys = @import("sys.zig");
const Result = @import("result.zig").Result;
const server_state = @import("server_state.zig");
const Peer = peers.Peer;
const ReplyTo = replies.ReplyTo;
const replyError = replies.replyError;
const reply = replies.reply;
const state = &server_state.state;

/// Every child in the peer's subtree. From the owner also the orphans of
/// the tree adopted by the server and, with SIGKILL, the tree's cgroup
/// (descendants below living children): the whole tree is the owner's.
pub fn handleKillAll(peer: Peer, header: *const protocol.RequestHeader, to: ReplyTo) void {
    std.debug.assert(header.number >= 0 and header.number < sys.NSIG); // protocol.decode
    const first_error = signalSubtreeErrno(peer, header.number);
    if (peer == peers.owner) {
        if (header.number != 0) tree.signalAdopted(header.number, &isInTable, false);
        if (header.number == sys.SIGKILL) _ = tree.killCgroup();
    }
    if (first_error != 0) return replyError(to, .KILL_ERROR, first_error);
    reply(to, .{ .result = @intFromEnum(Result.OK) });
}

/// A pid still in the table is a running child or, at worst, a zombie the
/// server has not reaped: its pid cannot have been reused. Anything else
/// (a child already reaped, a stranger, a process outside the requester's
/// subtree) gets ESRCH and no signal, as kill(2) for a process that is not
/// there.
pub fn handleKill(peer: Peer, header: *const protocol.RequestHeader, to: ReplyTo) void {
    std.debug.assert(header.number > 0 and header.signal < sys.NSIG); // protocol.decode
    const pid: sys.pid_t = header.number;
    const sig: c_int = @intCast(header.signal);
    const slot = peers.find(&state.table, pid) orelse return replyError(to, .KILL_ERROR, sys.E.SRCH);
    if (!peers.controls(&state.table, peer, slot)) return replyError(to, .KILL_ERROR, sys.E.SRCH);
    const failed: c_int = if (header.flags & protocol.Flags.tree != 0)
        tree.signalTree(pid, sig, state.server_pid)
    else if (sys.kill(pid, sig) != 0) sys.errno() else 0;
    if (failed != 0) return replyError(to, .KILL_ERROR, failed);
    reply(to, .{ .result = @intFromEnum(Result.OK) });
}

pub fn signalSubtree(peer: Peer, sig: c_int) void {
    _ = signalSubtreeErrno(peer, sig);
}

/// Signals every running child in peer's subtree. Returns the errno of
/// the first failed kill(2), ignoring ESRCH: a child that exited but is not
/// yet reaped is not an error. The pids are of children not yet reaped, so
/// none can have been recycled.
fn signalSubtreeErrno(peer: Peer, sig: c_int) c_int {
    std.debug.assert(sig >= 0 and sig < sys.NSIG);
    var first_error: c_int = 0;
    for (0..state.table.high) |i| {
        const slot: Peer = @intCast(i);
        if (!peers.isRunning(&state.table, slot) or !peers.controls(&state.table, peer, slot)) continue;
        if (sys.kill(state.table.slots[slot].pid, sig) != 0) {
            const err = sys.errno();
            if (err != sys.E.SRCH and first_error == 0) first_error = err;
        }
    }
    return first_error;
}

pub fn isInTable(pid: sys.pid_t) bool {
    return peers.find(&state.table, pid) != null;
}
