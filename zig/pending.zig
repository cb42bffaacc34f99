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
    std.debug.assert(table.peer_count <= table.count);
}

/// Removes items()[i], keeping arrival order for the rest.
pub fn removeAt(slots: *peers.Table, i: usize) void {
    std.debug.assert(i < table.count);
    const p = table.items[i];
    if (p.peer != peers.owner) {
        // Counted at add(): the peer's share and all children's.
        std.debug.assert(slots.slots[p.peer].pending > 0 and table.peer_count > 0);
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
    for (items()) |p| answer(p, result);
    table.count = 0;
    table.peer_count = 0;
}

/// A pending request's answer once nothing will exit any more: `result`,
/// except that a wait for one child, given OK, is told there is none
/// (ECHILD), as waitpid would.
fn answer(p: Pending, result: Result) void {
    switch (p.kind) {
        .wait_pid, .wait_any => if (result == .OK)
            replies.replyError(p.to, .WAIT_ERROR, sys.E.CHILD)
        else
            replies.replyError(p.to, result, 0),
        .wait_all, .stop => replies.replyError(p.to, result, 0),
    }
}

/// Answers the pending waits as answerAll(.OK) would, keeping the stop
/// requests: the last process of the tree is gone, and a stop is
/// answered only once the event streams were drained (shutdown.zig).
pub fn answerWaits(slots: *peers.Table) void {
    var i: usize = 0;
    while (i < table.count) {
        const p = table.items[i];
        if (p.kind == .stop) {
            i += 1;
            continue;
        }
        removeAt(slots, i);
        answer(p, .OK);
    }
    for (items()) |p| std.debug.assert(p.kind == .stop);
}

/// Reply pipes held for pending requests, for the list a new child closes.
pub fn forEachFd(context: anytype, comptime visit: fn (@TypeOf(context), sys.fd_t) void) void {
    for (items()) |p| {
        if (p.to.fd >= 0) visit(context, p.to.fd);
    }
}

// ---------------------------------------------------------------- tests

/// The counts add() keeps match the table: each child's share, and all
/// children's together.
fn expectCounts(slots: *const peers.Table) !void {
    var children: usize = 0;
    for (0..slots.high) |slot| {
        if (!peers.isRunning(slots, slot)) continue;
        var own: u32 = 0;
        for (items()) |p| {
            if (p.peer == slot) own += 1;
        }
        try std.testing.expectEqual(own, slots.slots[slot].pending);
        children += own;
    }
    try std.testing.expectEqual(children, table.peer_count);
}

fn testChild(slots: *peers.Table, pid: sys.pid_t) Peer {
    const slot = peers.take(slots, peers.owner);
    peers.commit(slots, slot, pid);
    return slot;
}

test "a child gets its share, all children leave the owner's reserve, the owner fills the rest" {
    var slots: peers.Table = undefined;
    peers.reset(&slots);
    reset();
    defer reset();
    // One child up to its share; more are refused (answered LIMIT_ERROR,
    // to nobody here) and not counted.
    const a = testChild(&slots, 100);
    for (0..limits.max_pending_per_peer + 3) |_| add(&slots, a, .wait_any, -1, ReplyTo.none());
    try std.testing.expectEqual(@as(usize, limits.max_pending_per_peer), table.count);
    try expectCounts(&slots);
    // More children, each to its share, until together they reach what
    // the owner's reserve leaves them.
    var pid: sys.pid_t = 101;
    while (table.peer_count < limits.max_pending - limits.owner_reserved_pending) : (pid += 1) {
        const child = testChild(&slots, pid);
        for (0..limits.max_pending_per_peer) |_| add(&slots, child, .wait_pid, pid, ReplyTo.none());
    }
    try std.testing.expectEqual(@as(usize, limits.max_pending - limits.owner_reserved_pending), table.peer_count);
    const late = testChild(&slots, pid);
    add(&slots, late, .wait_all, 0, ReplyTo.none());
    try std.testing.expectEqual(@as(u32, 0), slots.slots[late].pending);
    try expectCounts(&slots);
    // The owner fills the table, and no further.
    while (table.count < limits.max_pending) add(&slots, peers.owner, .wait_all, 0, ReplyTo.none());
    add(&slots, peers.owner, .stop, 0, ReplyTo.none());
    try std.testing.expectEqual(@as(usize, limits.max_pending), table.count);
    try expectCounts(&slots);
    for (items()) |p| try std.testing.expect(p.to.deferred);
}

test "an exit answers the oldest matching wait, and the others keep their order and counts" {
    var slots: peers.Table = undefined;
    peers.reset(&slots);
    reset();
    defer reset();
    const a = testChild(&slots, 200);
    const b = testChild(&slots, 201);
    add(&slots, a, .wait_pid, 300, ReplyTo.none());
    add(&slots, peers.owner, .wait_pid, 300, ReplyTo.none());
    add(&slots, a, .wait_any, -1, ReplyTo.none());
    add(&slots, b, .wait_any, -1, ReplyTo.none());
    add(&slots, peers.owner, .wait_any, -1, ReplyTo.none());
    add(&slots, a, .wait_all, 0, ReplyTo.none());

    // pid 300, a child of b: a's wait for it comes first (it asked first;
    // authority is checked when the wait is made, not here).
    const first = takeFor(&slots, .wait_pid, 300, b).?;
    try std.testing.expectEqual(a, first.peer);
    try std.testing.expectEqual(peers.owner, takeFor(&slots, .wait_pid, 300, b).?.peer);
    try std.testing.expect(takeFor(&slots, .wait_pid, 300, b) == null);
    // A wait for any child is answered by an exit in the waiter's subtree
    // only: not a's, though older; b's, then the owner's (b's child is in
    // the owner's subtree too).
    try std.testing.expectEqual(b, takeFor(&slots, .wait_any, 301, b).?.peer);
    try std.testing.expectEqual(peers.owner, takeFor(&slots, .wait_any, 301, b).?.peer);
    try expectCounts(&slots);
    // What is left is a's, in arrival order; takeOf empties a's share.
    try std.testing.expectEqual(@as(usize, 2), table.count);
    try std.testing.expectEqual(Kind.wait_any, takeOf(&slots, a).?.kind);
    try std.testing.expectEqual(Kind.wait_all, takeOf(&slots, a).?.kind);
    try std.testing.expect(takeOf(&slots, a) == null);
    try std.testing.expect(takeOf(&slots, b) == null);
    try std.testing.expectEqual(@as(usize, 0), table.count);
    try expectCounts(&slots);
}
