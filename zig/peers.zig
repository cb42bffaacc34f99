//! The server's running children, and who may do what to them.
//!
//! Every request comes from a peer: the owner (the process that started the
//! server, on its own connection) or one running child (on the connection
//! the server made for it at fork). Authority follows waitpid(2): a peer
//! may wait for and signal only its subtree, the processes it forked
//! through the server and, transitively, what those forked. Every child
//! of the server descends from the owner, so the owner's subtree is all of
//! them. When a child exits, its children pass to its own parent (the
//! nearest ancestor still running, like orphans passing to a subreaper),
//! so no reference to a reaped child, or to its pid, remains.
//!
//! Quotas (limits.zig) make sure no peer can exhaust what the owner
//! needs: a child's whole subtree holds at most max_children_per_peer
//! running processes, and all forks by children together stop
//! owner_reserved_children short of the server's limit.
//!
//! Slots are stable (a child keeps its slot while it runs) so a parent is
//! a slot number; a slot is reused only after everything that named it
//! was moved to its parent.

const std = @import("std");
const sys = @import("sys.zig");
const limits = @import("limits.zig");

/// A peer: the running child in slot n, or the owner.
pub const Peer = u16;
pub const owner: Peer = std.math.maxInt(u16);

comptime {
    std.debug.assert(limits.max_children < owner);
}

pub const Child = extern struct {
    /// 0: the slot is free; -1: taken by a fork in progress.
    pid: sys.pid_t,
    /// The server's end of the exit pipe, or -1.
    exit_fd: sys.fd_t,
    /// The server's end of this child's connection, or -1 once closed.
    conn_fd: sys.fd_t,
    /// A copy of the child's own end, or -1 (see server.handleFork).
    child_end: sys.fd_t,
    /// Counts the slot's takings: an event of a connection the server has
    /// since closed is not mistaken for one of the next child in the slot.
    generation: u32,
    /// Who forked it, or the nearest running ancestor once that exited.
    parent: Peer,
    /// Running processes in its subtree, itself excluded.
    descendants: u32,
    /// Running children whose parent it is.
    kids: u32,
    /// Remembered exits whose parent it is (see exits.zig, reap.zig).
    records: u32,
    /// Its outstanding waits.
    pending: u32,
    /// Flags.exit_rusage: the exit fd gets the rusage after the event.
    exit_rusage: bool,
    /// Flags.exit_event: the requester's event stream is told of the exit
    /// (its handle, events.zig; 0: none), with the fork's tag.
    exit_stream: u32,
    exit_tag: u64,
    /// Its connection is not read while one of its event streams is over
    /// budget (events.zig).
    paused: bool,
};

/// extern, so the layout is as written: the counters every fork and exit
/// updates share a page with the first slots. After each fork every page
/// the server writes costs it a copy-on-write fault (a few microseconds
/// here), so the pages a fork round trip touches are kept few.
pub const Table = extern struct {
    /// Slots at or above this index are free.
    high: usize,
    /// No free slot below this index.
    first_free: usize,
    /// Taken slots.
    count: usize,
    /// Taken slots whose parent is not the owner: what the owner's reserve
    /// is measured against.
    forked_by_children: usize,
    /// The next child's connection, made while the server is idle: a
    /// socket pair costs more than the rest of a fork request's work.
    spare_conn: [2]sys.fd_t,
    slots: [limits.max_children]Child,
};

/// All zeroes (the server's zeroed global) is not yet valid: reset first.
pub fn reset(table: *Table) void {
    table.high = 0;
    table.first_free = 0;
    table.count = 0;
    table.forked_by_children = 0;
    table.spare_conn = .{ -1, -1 };
}

pub fn get(table: *Table, slot: Peer) *Child {
    std.debug.assert(slot < table.high and table.slots[slot].pid != 0);
    return &table.slots[slot];
}

/// Slots of running children (pid > 0): `for (0..table.high)` with this.
pub fn isRunning(table: *const Table, slot: usize) bool {
    return table.slots[slot].pid > 0;
}

pub fn find(table: *const Table, pid: sys.pid_t) ?Peer {
    std.debug.assert(pid > 0);
    for (table.slots[0..table.high], 0..) |c, i| {
        if (c.pid == pid) return @intCast(i);
    }
    return null;
}

/// The owner's own share of the children: what children cannot take.
pub fn ownerReserve(child_limit: usize) usize {
    return @min(limits.owner_reserved_children, child_limit / 4);
}

/// Whether `peer` may fork one more child under a server that accepts
/// `child_limit` children.
pub fn mayFork(table: *const Table, peer: Peer, child_limit: usize) bool {
    if (table.count >= child_limit) return false;
    if (peer == owner) return true;
    if (table.forked_by_children >= child_limit - ownerReserve(child_limit)) return false;
    var ancestor = peer;
    while (ancestor != owner) : (ancestor = table.slots[ancestor].parent) {
        if (table.slots[ancestor].descendants >= limits.max_children_per_peer) return false;
    }
    return true;
}

/// Takes a slot for a child `parent` is forking (after mayFork). The
/// caller fills in its fds, then calls commit with the pid, or release.
pub fn take(table: *Table, parent: Peer) Peer {
    var slot = table.first_free;
    while (slot < table.high and table.slots[slot].pid != 0) slot += 1;
    std.debug.assert(slot < limits.max_children);
    if (slot == table.high) table.high += 1;
    table.first_free = slot + 1;
    const c = &table.slots[slot];
    c.* = .{
        .pid = -1,
        .exit_fd = -1,
        .conn_fd = -1,
        .child_end = -1,
        .generation = c.generation +% 1,
        .parent = parent,
        .descendants = 0,
        .kids = 0,
        .records = 0,
        .pending = 0,
        .exit_rusage = false,
        .exit_stream = 0,
        .exit_tag = 0,
        .paused = false,
    };
    std.debug.assert(table.first_free <= table.high and slot < table.high);
    return @intCast(slot);
}

/// The fork succeeded: the child counts from now on, in its ancestors'
/// subtrees too.
pub fn commit(table: *Table, slot: Peer, pid: sys.pid_t) void {
    const c = &table.slots[slot];
    std.debug.assert(c.pid == -1 and pid > 0);
    c.pid = pid;
    table.count += 1;
    if (c.parent != owner) {
        table.forked_by_children += 1;
        table.slots[c.parent].kids += 1;
    }
    var ancestor = c.parent;
    while (ancestor != owner) : (ancestor = table.slots[ancestor].parent) {
        table.slots[ancestor].descendants += 1;
    }
}

/// Frees a slot: after a failed fork (never committed), or after remove.
pub fn release(table: *Table, slot: Peer) void {
    std.debug.assert(slot < table.high);
    table.slots[slot].pid = 0;
    if (slot < table.first_free) table.first_free = slot;
    while (table.high > 0 and table.slots[table.high - 1].pid == 0) table.high -= 1;
    if (table.first_free > table.high) table.first_free = table.high;
    std.debug.assert(table.high == 0 or table.slots[table.high - 1].pid != 0);
}

/// The child in `slot` was reaped: it leaves every count, its children
/// pass to its parent, and the slot is free. Returns its parent. The
/// caller has already closed its fds and moved its remembered exits and
/// outstanding waits (records and pending must be 0).
pub fn remove(table: *Table, slot: Peer) Peer {
    const c = table.slots[slot];
    std.debug.assert(c.pid > 0 and c.records == 0 and c.pending == 0);
    std.debug.assert(table.count > 0 and (c.parent == owner or table.slots[c.parent].pid > 0));
    table.count -= 1;
    if (c.parent != owner) {
        table.forked_by_children -= 1;
        table.slots[c.parent].kids -= 1;
    }
    var ancestor = c.parent;
    while (ancestor != owner) : (ancestor = table.slots[ancestor].parent) {
        table.slots[ancestor].descendants -= 1;
    }
    if (c.kids > 0) {
        for (table.slots[0..table.high]) |*other| {
            if (other.pid == 0 or other.parent != slot) continue;
            other.parent = c.parent;
            if (c.parent == owner) {
                table.forked_by_children -= 1;
            } else {
                table.slots[c.parent].kids += 1;
            }
        }
    }
    release(table, slot);
    return c.parent;
}

/// Whether `peer` is `member` or one of its ancestors: whether the member's
/// running child (or remembered exit) belongs to peer's subtree.
/// `member` is the parent of the process in question.
pub fn inSubtree(table: *const Table, peer: Peer, member: Peer) bool {
    if (peer == owner) return true;
    var ancestor = member;
    while (ancestor != owner) : (ancestor = table.slots[ancestor].parent) {
        if (ancestor == peer) return true;
    }
    return false;
}

/// Whether `peer` may wait for or signal the running child in `slot`.
pub fn controls(table: *const Table, peer: Peer, slot: Peer) bool {
    return inSubtree(table, peer, table.slots[slot].parent);
}

/// Whether some process of peer's subtree still runs.
pub fn subtreeRunning(table: *const Table, peer: Peer) bool {
    if (peer == owner) return table.count > 0;
    return table.slots[peer].descendants > 0;
}

/// Checks every invariant between the table's counters and its slots:
/// the counts are what the slots say, each parent is the owner or a
/// running child, and descendants are the transitive kids. O(high x
/// depth): for the unit tests, which call it after every operation.
pub fn checkInvariants(table: *const Table) void {
    std.debug.assert(table.high <= limits.max_children);
    std.debug.assert(table.first_free <= table.high);
    std.debug.assert(table.high == 0 or table.slots[table.high - 1].pid != 0);
    for (table.slots[0..table.first_free]) |c| std.debug.assert(c.pid != 0);
    var count: usize = 0;
    var forked_by_children: usize = 0;
    for (table.slots[0..table.high], 0..) |c, slot| {
        if (c.pid <= 0) continue;
        count += 1;
        if (c.parent != owner) {
            forked_by_children += 1;
            std.debug.assert(c.parent < table.high and table.slots[c.parent].pid > 0);
        }
        var kids: u32 = 0;
        var descendants: u32 = 0;
        for (table.slots[0..table.high]) |other| {
            if (other.pid <= 0) continue;
            if (other.parent == slot) kids += 1;
            // `other` is below `slot` when slot is one of its ancestors.
            var ancestor = other.parent;
            var depth: usize = 0;
            while (ancestor != owner) : (ancestor = table.slots[ancestor].parent) {
                depth += 1;
                std.debug.assert(depth <= limits.max_children); // no cycle
                if (ancestor == slot) {
                    descendants += 1;
                    break;
                }
            }
        }
        std.debug.assert(c.kids == kids);
        std.debug.assert(c.descendants == descendants);
    }
    std.debug.assert(table.count == count);
    std.debug.assert(table.forked_by_children == forked_by_children);
}

// ---------------------------------------------------------------- tests

fn testFork(table: *Table, parent: Peer, pid: sys.pid_t) Peer {
    const slot = take(table, parent);
    commit(table, slot, pid);
    return slot;
}

test "authority is the subtree: siblings cannot reach each other" {
    var table: Table = undefined;
    reset(&table);
    const a = testFork(&table, owner, 100);
    const b = testFork(&table, owner, 101);
    const a1 = testFork(&table, a, 102);
    const a11 = testFork(&table, a1, 103);
    try std.testing.expect(controls(&table, owner, b));
    try std.testing.expect(controls(&table, a, a1));
    try std.testing.expect(controls(&table, a, a11));
    try std.testing.expect(!controls(&table, a, b));
    try std.testing.expect(!controls(&table, b, a1));
    try std.testing.expect(!controls(&table, a1, a));
    try std.testing.expect(!controls(&table, a11, a11)); // not itself
    try std.testing.expectEqual(@as(u32, 2), table.slots[a].descendants);
    try std.testing.expectEqual(@as(usize, 2), table.forked_by_children);

    // a1 exits: a11 passes to a, still in a's subtree, not in b's.
    try std.testing.expectEqual(a, remove(&table, a1));
    try std.testing.expectEqual(a, table.slots[a11].parent);
    try std.testing.expect(controls(&table, a, a11));
    try std.testing.expectEqual(@as(u32, 1), table.slots[a].descendants);
    try std.testing.expectEqual(@as(u32, 1), table.slots[a].kids);
    // a exits: a11 passes to the owner.
    _ = remove(&table, a);
    try std.testing.expectEqual(owner, table.slots[a11].parent);
    try std.testing.expectEqual(@as(usize, 0), table.forked_by_children);
    try std.testing.expectEqual(@as(sys.pid_t, 103), table.slots[find(&table, 103).?].pid);
    try std.testing.expectEqual(@as(usize, 2), table.count);
}

test "a child's subtree quota and the owner's reserve" {
    var table: Table = undefined;
    reset(&table);
    const limit = 2000;
    const a = testFork(&table, owner, 1);
    var pid: sys.pid_t = 2;
    // a's subtree, however deep, holds max_children_per_peer.
    var parent = a;
    while (mayFork(&table, parent, limit)) : (pid += 1) {
        parent = testFork(&table, if (@rem(pid, 2) == 0) a else parent, pid);
    }
    try std.testing.expectEqual(@as(u32, limits.max_children_per_peer), table.slots[a].descendants);
    try std.testing.expect(mayFork(&table, owner, limit));
    // Many children together stop at the owner's reserve.
    while (true) : (pid += 1) {
        const top = testFork(&table, owner, pid);
        pid += 1;
        if (!mayFork(&table, top, limit)) break;
        while (mayFork(&table, top, limit)) : (pid += 1) _ = testFork(&table, top, pid);
    }
    try std.testing.expectEqual(limit - ownerReserve(limit), table.forked_by_children);
    while (mayFork(&table, owner, limit)) : (pid += 1) _ = testFork(&table, owner, pid);
    try std.testing.expectEqual(@as(usize, limit), table.count);
}

test "slots are reused once free, and generations change" {
    var table: Table = undefined;
    reset(&table);
    const a = testFork(&table, owner, 10);
    const b = testFork(&table, owner, 11);
    const generation = table.slots[a].generation;
    _ = remove(&table, a);
    const c = take(&table, owner);
    try std.testing.expectEqual(a, c);
    try std.testing.expect(table.slots[c].generation != generation);
    release(&table, c);
    _ = remove(&table, b);
    try std.testing.expectEqual(@as(usize, 0), table.high);
}

test "random forks and exits keep every invariant" {
    var table: Table = undefined;
    reset(&table);
    var prng = std.Random.DefaultPrng.init(0x6c666b73);
    const random = prng.random();
    const limit = 80;
    var pid: sys.pid_t = 1;
    for (0..10_000) |_| {
        const running = table.count;
        if (running > 0 and random.uintLessThan(u32, 100) < 45) {
            // A random running child exits.
            var pick = random.uintLessThan(usize, running);
            for (table.slots[0..table.high], 0..) |c, slot| {
                if (c.pid <= 0) continue;
                if (pick == 0) {
                    const parent = c.parent;
                    try std.testing.expectEqual(parent, remove(&table, @intCast(slot)));
                    break;
                }
                pick -= 1;
            }
        } else {
            // The owner or a random running child forks, when it may.
            var parent: Peer = owner;
            if (running > 0 and random.boolean()) {
                var pick = random.uintLessThan(usize, running);
                for (table.slots[0..table.high], 0..) |c, slot| {
                    if (c.pid <= 0) continue;
                    if (pick == 0) {
                        parent = @intCast(slot);
                        break;
                    }
                    pick -= 1;
                }
            }
            if (mayFork(&table, parent, limit)) {
                const slot = take(&table, parent);
                if (random.uintLessThan(u32, 10) == 0) {
                    release(&table, slot); // the fork failed
                } else {
                    commit(&table, slot, pid);
                    pid += 1;
                }
            } else {
                try std.testing.expect(table.count >= limit or parent != owner);
            }
        }
        checkInvariants(&table);
    }
    try std.testing.expect(pid > 2000);
}
