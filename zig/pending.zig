//! Requests the server answers later: waits for a child that still runs,
//! and a stop that waits for the children. A fixed table in arrival
//! order; the owner may fill it, a child gets its own share, and all
//! children together leave the owner's reserve (limits.zig).

const std = @import("std");
const sys = @import("sys.zig");
const limits = @import("limits.zig");
const peers = @import("peers.zig");
const replies = @import("replies.zig");
const Result = @import("result.zig").Result;
const Peer = peers.Peer;
const ReplyTo = replies.ReplyTo;

pub const Kind = enum { wait_pid, wait_any, wait_all, stop };

pub const Pending = struct {
    kind: Kind,
    pid: sys.pid_t,
    to: ReplyTo,
    /// Who asked: a wait is answered within its peer's subtree only.
    peer: Peer,
};

pub const Table = struct {
    items: [limits.max_pending]Pending,
    count: usize,
    /// Pending requests of peers other than the owner.
    peer_count: usize,
};

pub var table: Table = std.mem.zeroes(Table);

pub fn reset() void {
    table.count = 0;
    table.peer_count = 0;
}

pub fn items() []Pending {
    return table.items[0..table.count];
}

pub fn add(slots: *peers.Table, peer: Peer, kind: Kind, pid: sys.pid_t, to: ReplyTo) void {
    if (table.count == limits.max_pending) return replies.replyError(to, .LIMIT_ERROR, 0);
    if (peer != peers.owner) {
        if (slots.slots[peer].pending >= limits.max_pending_per_peer or
            table.peer_count >= limits.max_pending - limits.owner_reserved_pending)
        {
            return replies.replyError(to, .LIMIT_ERROR, 0);
        }
        slots.slots[peer].pending += 1;
        table.peer_count += 1;
    }
    var deferred = to;
    deferred.deferred = true;
    table.items[table.count] = .{ .kind = kind, .pid = pid, .to = deferred, .peer = peer };
    table.count += 1;
}

/// Removes items()[i], keeping arrival order for the rest.
pub fn removeAt(slots: *peers.Table, i: usize) void {
    const p = table.items[i];
    if (p.peer != peers.owner) {
        slots.slots[p.peer].pending -= 1;
        table.peer_count -= 1;
    }
    std.mem.copyForwards(Pending, table.items[i .. table.count - 1], table.items[i + 1 .. table.count]);
    table.count -= 1;
}

/// Removes and returns the oldest pending wait the exit of `pid` (whose
/// parent was `parent`) answers: with .wait_pid, one for that pid; with
/// .wait_any, one of a peer whose subtree it was in.
pub fn takeFor(slots: *peers.Table, kind: Kind, pid: sys.pid_t, parent: Peer) ?Pending {
    for (items(), 0..) |p, i| {
        if (p.kind != kind) continue;
        switch (kind) {
            .wait_pid => if (p.pid != pid) continue,
            .wait_any => if (!peers.inSubtree(slots, p.peer, parent)) continue,
            .wait_all, .stop => unreachable,
        }
        removeAt(slots, i);
        return p;
    }
    return null;
}

/// Removes and returns one pending request of `peer`.
pub fn takeOf(slots: *peers.Table, peer: Peer) ?Pending {
    if (slots.slots[peer].pending == 0) return null;
    for (items(), 0..) |p, i| {
        if (p.peer != peer) continue;
        removeAt(slots, i);
        return p;
    }
    unreachable;
}

/// Answers everything still pending as the server goes away. With
/// `result` OK (no child left), a wait for one child can only be one whose
/// child will never be reported: ECHILD, like waitpid(2) on a process that
/// is no longer a child.
pub fn answerAll(result: Result) void {
    for (items()) |p| {
        switch (p.kind) {
            .wait_pid, .wait_any => if (result == .OK)
                replies.replyError(p.to, .WAIT_ERROR, sys.E.CHILD)
            else
                replies.replyError(p.to, result, 0),
            .wait_all, .stop => replies.replyError(p.to, result, 0),
        }
    }
    table.count = 0;
    table.peer_count = 0;
}

/// Reply pipes held for pending requests, for the list a new child closes.
pub fn forEachFd(context: anytype, comptime visit: fn (@TypeOf(context), sys.fd_t) void) void {
    for (items()) |p| {
        if (p.to.fd >= 0) visit(context, p.to.fd);
    }
}
