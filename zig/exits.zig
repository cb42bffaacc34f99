//! Remembered exits: the status and rusage of each reaped child nobody has
//! waited for yet, kept until a wait takes it.
//!
//! Two rings, so that no child can push out what the owner's own children
//! left: exits of children the owner forked (or inherited from a child
//! that exited first) go to the owner's ring, LIBFORKS_MAX_EXIT_RECORDS of
//! them; exits of children that children forked go to the peers' ring,
//! max_peer_exit_records in all and max_exit_records_per_peer per forking
//! child. When a ring is full, or a child's share is, the oldest record
//! of that ring or that child is forgotten first.
//!
//! Taking a record from the middle of a ring leaves a hole (pid 0) instead
//! of moving the records behind it: the rings are large, and every page the
//! server writes after a fork is a page it must copy. `span` counts slots
//! from the head, holes included; `count` counts records.

const std = @import("std");
const sys = @import("sys.zig");
const limits = @import("limits.zig");
const peers = @import("peers.zig");
const Peer = peers.Peer;

pub const Record = struct {
    pid: sys.pid_t,
    status: c_int,
    rusage: sys.rusage,
    /// Who may take it: the exited child's parent and that one's
    /// ancestors (peers.inSubtree).
    parent: Peer,
    /// Order of exits across both rings: wait(-1) takes the oldest.
    seq: u64,
};

fn Ring(comptime capacity: usize) type {
    return struct {
        const Self = @This();
        slots: [capacity]Record,
        head: usize,
        span: usize,
        count: usize,

        fn at(ring: *Self, i: usize) *Record {
            return &ring.slots[(ring.head + i) % capacity];
        }

        /// Appends; when full, first forgets the head (returned).
        fn push(ring: *Self, record: Record) ?Record {
            var forgotten: ?Record = null;
            if (ring.span == capacity) {
                const head = ring.slots[ring.head];
                if (head.pid != 0) {
                    ring.count -= 1;
                    forgotten = head;
                }
                ring.popHead();
            }
            ring.at(ring.span).* = record;
            ring.span += 1;
            ring.count += 1;
            std.debug.assert(ring.count <= ring.span and ring.span <= capacity);
            return forgotten;
        }

        /// count is the records in the span. (A hole can be the head for a
        /// while: push forgets only the head itself; the next push or a
        /// remove pops it.)
        fn checkInvariants(ring: *const Self) void {
            std.debug.assert(ring.head < capacity and ring.span <= capacity);
            var count: usize = 0;
            for (0..ring.span) |i| {
                if (ring.slots[(ring.head + i) % capacity].pid != 0) count += 1;
            }
            std.debug.assert(count == ring.count);
        }

        fn popHead(ring: *Self) void {
            std.debug.assert(ring.span > 0);
            ring.head = (ring.head + 1) % capacity;
            ring.span -= 1;
        }

        fn remove(ring: *Self, slot: *Record) Record {
            std.debug.assert(slot.pid > 0 and ring.count > 0);
            const found = slot.*;
            slot.pid = 0;
            ring.count -= 1;
            while (ring.span > 0 and ring.slots[ring.head].pid == 0) ring.popHead();
            return found;
        }
    };
}

pub const Store = struct {
    owner: Ring(limits.max_exit_records),
    peers: Ring(limits.max_peer_exit_records),
    next_seq: u64,
};

pub fn reset(store: *Store) void {
    store.owner.head = 0;
    store.owner.span = 0;
    store.owner.count = 0;
    store.peers.head = 0;
    store.peers.span = 0;
    store.peers.count = 0;
    store.next_seq = 0;
}

/// Remembers an exit. `table` counts each forking child's records.
pub fn remember(store: *Store, table: *peers.Table, exited: Record) void {
    std.debug.assert(exited.pid > 0);
    var record = exited;
    record.seq = store.next_seq;
    store.next_seq += 1;
    if (record.parent == peers.owner) {
        _ = store.owner.push(record);
        return;
    }
    // This child's share is full: its own oldest goes.
    if (table.slots[record.parent].records >= limits.max_exit_records_per_peer) forgetOldestOf(store, table, record.parent);
    if (store.peers.push(record)) |forgotten| uncount(table, forgotten);
    table.slots[record.parent].records += 1;
    std.debug.assert(table.slots[record.parent].records <= limits.max_exit_records_per_peer);
}

fn forgetOldestOf(store: *Store, table: *peers.Table, parent: Peer) void {
    std.debug.assert(parent != peers.owner and table.slots[parent].records > 0);
    for (0..store.peers.span) |i| {
        const slot = store.peers.at(i);
        if (slot.pid == 0 or slot.parent != parent) continue;
        _ = store.peers.remove(slot);
        table.slots[parent].records -= 1;
        return;
    }
    unreachable; // records counts what the ring holds
}

fn uncount(table: *peers.Table, record: Record) void {
    if (record.parent != peers.owner) table.slots[record.parent].records -= 1;
}

fn find(ring: anytype, table: *const peers.Table, peer: Peer, pid: sys.pid_t) ?*Record {
    for (0..ring.span) |i| {
        const slot = ring.at(i);
        if (slot.pid == 0 or (pid != -1 and slot.pid != pid)) continue;
        if (!peers.inSubtree(table, peer, slot.parent)) continue;
        return slot;
    }
    return null;
}

/// The oldest remembered exit of `pid` (-1: of any process) in peer's
/// subtree.
pub fn take(store: *Store, table: *peers.Table, peer: Peer, pid: sys.pid_t) ?Record {
    const in_owner = find(&store.owner, table, peer, pid);
    const in_peers = find(&store.peers, table, peer, pid);
    if (in_owner) |a| {
        if (in_peers == null or a.seq < in_peers.?.seq) return store.owner.remove(a);
    }
    const b = in_peers orelse return null;
    const found = store.peers.remove(b);
    uncount(table, found);
    return found;
}

pub fn hasFor(store: *Store, table: *const peers.Table, peer: Peer) bool {
    if (peer == peers.owner) return store.owner.count + store.peers.count > 0;
    return find(&store.owner, table, peer, -1) != null or find(&store.peers, table, peer, -1) != null;
}

/// The child in `slot` is gone: exits it was the parent of pass to its
/// parent, as its running children do (peers.remove). They stay in the
/// peers' ring, where they were counted; past the parent's share, the
/// parent's oldest are forgotten, as in remember.
pub fn moveRecords(store: *Store, table: *peers.Table, slot: Peer, parent: Peer) void {
    const moved = table.slots[slot].records;
    if (moved == 0) return;
    for (0..store.peers.span) |i| {
        const record = store.peers.at(i);
        if (record.pid != 0 and record.parent == slot) record.parent = parent;
    }
    table.slots[slot].records = 0;
    if (parent == peers.owner) return;
    table.slots[parent].records += moved;
    // Inherited records count against the parent's share like its own,
    // or a chain of children could hold many shares in one subtree and
    // push other children's records out of the ring.
    while (table.slots[parent].records > limits.max_exit_records_per_peer) forgetOldestOf(store, table, parent);
}

/// Checks both rings, and that each child's `records` counts its records
/// in the peers' ring, where only children's records are. For the unit
/// tests.
pub fn checkInvariants(store: *const Store, table: *const peers.Table) void {
    store.owner.checkInvariants();
    store.peers.checkInvariants();
    for (0..store.owner.span) |i| {
        const record = store.owner.slots[(store.owner.head + i) % store.owner.slots.len];
        std.debug.assert(record.pid == 0 or record.parent == peers.owner);
    }
    for (table.slots[0..table.high], 0..) |c, slot| {
        if (c.pid <= 0) continue;
        var records: u32 = 0;
        for (0..store.peers.span) |i| {
            const record = store.peers.slots[(store.peers.head + i) % store.peers.slots.len];
            if (record.pid != 0 and record.parent == slot) records += 1;
        }
        std.debug.assert(c.records == records);
        std.debug.assert(records <= limits.max_exit_records_per_peer);
    }
}

// ---------------------------------------------------------------- tests

fn testRecord(pid: sys.pid_t, parent: Peer) Record {
    return .{ .pid = pid, .status = 0, .rusage = std.mem.zeroes(sys.rusage), .parent = parent, .seq = 0 };
}

var test_store: Store = undefined;
var test_table: peers.Table = undefined;

test "a child's exits never push out the owner's" {
    reset(&test_store);
    peers.reset(&test_table);
    const a = peers.take(&test_table, peers.owner);
    peers.commit(&test_table, a, 1);
    var pid: sys.pid_t = 100;
    while (pid < 100 + limits.max_exit_records) : (pid += 1) remember(&test_store, &test_table, testRecord(pid, peers.owner));
    while (pid < 100 + limits.max_exit_records + 500) : (pid += 1) remember(&test_store, &test_table, testRecord(pid, a));
    try std.testing.expectEqual(@as(usize, limits.max_exit_records), test_store.owner.count);
    try std.testing.expectEqual(@as(u32, limits.max_exit_records_per_peer), test_table.slots[a].records);
    // The owner takes its own oldest first; a takes only its children's.
    try std.testing.expectEqual(@as(sys.pid_t, 100), take(&test_store, &test_table, peers.owner, -1).?.pid);
    try std.testing.expect(take(&test_store, &test_table, a, 100 + 1) == null);
    const newest_of_a = 100 + limits.max_exit_records + 500 - limits.max_exit_records_per_peer;
    try std.testing.expectEqual(@as(sys.pid_t, newest_of_a), take(&test_store, &test_table, a, -1).?.pid);
    try std.testing.expectEqual(@as(u32, limits.max_exit_records_per_peer - 1), test_table.slots[a].records);
    // a exits: its records pass to the owner.
    moveRecords(&test_store, &test_table, a, peers.owner);
    _ = peers.remove(&test_table, a);
    try std.testing.expect(hasFor(&test_store, &test_table, peers.owner));
    try std.testing.expectEqual(@as(sys.pid_t, newest_of_a + 1), take(&test_store, &test_table, peers.owner, newest_of_a + 1).?.pid);
}

test "random exits, waits and parents that exit keep every invariant" {
    reset(&test_store);
    peers.reset(&test_table);
    var prng = std.Random.DefaultPrng.init(0x65786974);
    const random = prng.random();
    var pid: sys.pid_t = 1;
    // Eight running children, each forked by the owner or by one of the
    // others, so exits pass records up more than one level.
    var children: [8]Peer = undefined;
    for (&children, 0..) |*c, i| {
        const parent = if (i == 0 or random.boolean()) peers.owner else children[random.uintLessThan(usize, i)];
        c.* = peers.take(&test_table, parent);
        peers.commit(&test_table, c.*, pid);
        pid += 1;
    }
    var taken: usize = 0;
    var moved: usize = 0;
    for (0..30_000) |_| {
        const which = random.uintLessThan(usize, children.len + 1);
        const peer = if (which == children.len) peers.owner else children[which];
        switch (random.uintLessThan(u32, 10)) {
            0...5 => {
                remember(&test_store, &test_table, testRecord(pid, peer));
                pid += 1;
            },
            6...8 => {
                const wanted: sys.pid_t = if (random.boolean()) -1 else random.intRangeAtMost(sys.pid_t, 1, pid);
                if (take(&test_store, &test_table, peer, wanted)) |record| {
                    taken += 1;
                    try std.testing.expect(wanted == -1 or record.pid == wanted);
                    try std.testing.expect(peers.inSubtree(&test_table, peer, record.parent));
                }
            },
            else => if (which < children.len) {
                // The child exits: its records and children pass to its
                // parent, and a new child of a random peer takes its place.
                const parent = test_table.slots[peer].parent;
                moved += test_table.slots[peer].records;
                moveRecords(&test_store, &test_table, peer, parent);
                try std.testing.expectEqual(parent, peers.remove(&test_table, peer));
                const other = children[random.uintLessThan(usize, children.len)];
                const new_parent = if (other == peer or random.boolean()) peers.owner else other;
                children[which] = peers.take(&test_table, new_parent);
                peers.commit(&test_table, children[which], pid);
                pid += 1;
            },
        }
        checkInvariants(&test_store, &test_table);
        peers.checkInvariants(&test_table);
    }
    try std.testing.expect(taken > 1000 and moved > 100);
}

comptime {
    // docs/guarantees.md quotes the owner's table as 1,024 x 168 bytes.
    std.debug.assert(@sizeOf(Record) == 168);
}
