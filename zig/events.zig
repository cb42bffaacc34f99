//! Event streams: one pipe per connection and event loop on which the
//! server writes every answer and exit record for that loop
//! (protocol.EventRecord, tagged), instead of a pipe per request and per
//! child.
//!
//! The server never blocks on a stream and never drops a record. Its
//! write end is the server's own description, non-blocking
//! (write_end.adopt); a record that does not fit waits in the stream's
//! backlog, in order (once a backlog exists every record joins it), and
//! the backlog is written when the pipe is writable again (the stream is
//! polled for OUT only then). Backlogs come from one fixed pool, never
//! from an allocator, and stay bounded by quotas the peers already have:
//! - an exit record is owed by a running child (at most max_children), a
//!   deferred wait's answer by a pending wait (at most max_pending);
//! - an immediate answer (fork, kill, a wait answered at once) comes from
//!   a request; once `immediate_budget` of them wait in one stream's
//!   backlog, the server stops reading the requesting peer's connection
//!   until that stream drains (conns.zig: setPaused), so a reader that
//!   stops reading stalls only its own requests (a Worker's stall, in the
//!   owner's process, stalls the owner's connection: its own threads).
//! A stream whose reader is gone (the pipe's read end closed: an error on
//! the write end) is closed, with its backlog.

const std = @import("std");
const sys = @import("sys.zig");
const limits = @import("limits.zig");
const protocol = @import("protocol.zig");
const peers = @import("peers.zig");
const write_end = @import("write_end.zig");
const Peer = peers.Peer;
const Record = protocol.EventRecord;

pub const max_streams = 128;
/// A child may hold this many streams, all children together
/// children_max_streams: the rest is the owner's (its Workers).
pub const per_child_max_streams = 4;
pub const children_max_streams = 64;
pub const immediate_budget = 32;

const pool_size = limits.max_children + limits.max_pending + max_streams * (immediate_budget + 1);
const none: u32 = std.math.maxInt(u32);
/// Records per write: 16 x 256 bytes is PIPE_BUF, written all or nothing.
const batch = 16;

const Stream = struct {
    /// The server's write end, -1 while the slot is free.
    fd: sys.fd_t,
    peer: Peer,
    /// Part of the handle, so a handle of a closed stream names no later one.
    generation: u16,
    head: u32,
    tail: u32,
    queued: u32,
    /// Immediate answers among the queued records.
    queued_immediate: u32,
    watching_out: bool,
};

const Entry = struct {
    record: Record,
    next: u32,
    immediate: bool,
};

pub const State = struct {
    streams: [max_streams]Stream,
    /// Streams held by children, all together.
    children_streams: usize,
    pool: [pool_size]Entry,
    free_head: u32,
    /// Never-used entries start here: the pool is not threaded at reset,
    /// so its pages are touched only when a backlog needs them.
    fresh: u32,
};

pub var state: State = std.mem.zeroes(State);

pub fn reset() void {
    for (&state.streams) |*s| s.fd = -1;
    state.children_streams = 0;
    state.free_head = none;
    state.fresh = 0;
}

/// A handle: generation << 8 | slot, never 0.
pub fn handleOf(slot: usize) u32 {
    return @as(u32, state.streams[slot].generation) << 8 | @as(u32, @intCast(slot));
}

/// The slot of `handle` if it is an open stream of `peer`: a peer writes
/// only to its own streams.
pub fn find(handle: u32, peer: Peer) ?usize {
    const slot = findHandle(handle) orelse return null;
    if (state.streams[slot].peer != peer) return null;
    return slot;
}

/// The slot of `handle` while that very stream is open.
pub fn findHandle(handle: u32) ?usize {
    const slot = handle & 0xff;
    if (slot >= max_streams) return null;
    if (state.streams[slot].fd < 0 or handleOf(slot) != handle) return null;
    return slot;
}

pub const OpenError = error{ Limit, BadFd };

/// Takes `fd` (a received write end, always consumed) as a stream of `peer`.
pub fn open(peer: Peer, fd: sys.fd_t) OpenError!usize {
    var owned: usize = 0;
    var free: ?usize = null;
    for (&state.streams, 0..) |*s, i| {
        if (s.fd < 0) {
            if (free == null) free = i;
        } else if (s.peer == peer) owned += 1;
    }
    const refused = free == null or (peer != peers.owner and
        (owned >= per_child_max_streams or state.children_streams >= children_max_streams));
    if (refused) {
        _ = sys.close(fd);
        return error.Limit;
    }
    const own = write_end.adopt(fd);
    if (own < 0) return error.BadFd;
    const slot = free.?;
    const s = &state.streams[slot];
    var generation = s.generation +% 1;
    if (generation == 0) generation = 1;
    s.* = .{ .fd = own, .peer = peer, .generation = generation, .head = none, .tail = none, .queued = 0, .queued_immediate = 0, .watching_out = false };
    if (peer != peers.owner) state.children_streams += 1;
    return slot;
}

pub fn fdOf(slot: usize) sys.fd_t {
    return state.streams[slot].fd;
}

pub fn backlog(slot: usize) u32 {
    return state.streams[slot].queued;
}

/// Whether some open stream still has records waiting for room.
pub fn anyBacklog() bool {
    for (&state.streams) |*s| {
        if (s.fd >= 0 and s.queued > 0) return true;
    }
    return false;
}

/// Writes `record` now, or queues it behind the stream's backlog (then
/// see needsOut and peerOverBudget).
pub fn put(slot: usize, record: *const Record, immediate: bool) void {
    const s = &state.streams[slot];
    if (s.fd < 0) return; // its reader is gone
    if (s.queued == 0 and write_end.put(s.fd, std.mem.asBytes(record))) return;
    const index = takeEntry() orelse return; // bounded by construction: see the top
    state.pool[index] = .{ .record = record.*, .next = none, .immediate = immediate };
    if (s.tail == none) s.head = index else state.pool[s.tail].next = index;
    s.tail = index;
    s.queued += 1;
    if (immediate) s.queued_immediate += 1;
    std.debug.assert(s.head != none and s.queued_immediate <= s.queued);
}

/// Whether the stream has a backlog and is not yet watched for OUT; the
/// caller then watches it and calls setWatchingOut().
pub fn needsOut(slot: usize) bool {
    const s = &state.streams[slot];
    return s.fd >= 0 and s.queued > 0 and !s.watching_out;
}

pub fn setWatchingOut(slot: usize, watching: bool) void {
    state.streams[slot].watching_out = watching;
}

/// Whether the peer's requests must wait: one of its streams holds its
/// whole budget of immediate answers, or the pool is nearly spent.
pub fn peerOverBudget(peer: Peer) bool {
    if (state.free_head == none and pool_size - state.fresh <= max_streams) return true;
    for (&state.streams) |*s| {
        if (s.fd >= 0 and s.peer == peer and s.queued_immediate >= immediate_budget) return true;
    }
    return false;
}

/// Writes as much of the backlog as fits. Returns false when the pipe
/// failed (its reader is gone): the caller then closes the stream.
pub fn flush(slot: usize) bool {
    const s = &state.streams[slot];
    var buf: [batch]Record = undefined;
    while (s.queued > 0) {
        var count: usize = 0;
        var index = s.head;
        while (count < batch and index != none) : (index = state.pool[index].next) {
            buf[count] = state.pool[index].record;
            count += 1;
        }
        const bytes = std.mem.sliceAsBytes(buf[0..count]);
        const n = sys.write(s.fd, bytes.ptr, bytes.len);
        if (n < 0) {
            const err = sys.errno();
            if (err == sys.E.INTR) continue;
            return err == sys.E.AGAIN;
        }
        // A pipe takes at most PIPE_BUF bytes at once or none, and larger
        // writes than that are never made: n is whole records.
        const written = @as(usize, @intCast(n)) / @sizeOf(Record);
        for (0..written) |_| dropHead(s);
        if (written < count) return true;
    }
    return true;
}

fn dropHead(s: *Stream) void {
    std.debug.assert(s.queued > 0 and s.head != none);
    const index = s.head;
    const entry = &state.pool[index];
    s.head = entry.next;
    if (s.head == none) s.tail = none;
    s.queued -= 1;
    if (entry.immediate) s.queued_immediate -= 1;
    entry.next = state.free_head;
    state.free_head = index;
}

fn takeEntry() ?u32 {
    if (state.free_head != none) {
        const index = state.free_head;
        state.free_head = state.pool[index].next;
        return index;
    }
    if (state.fresh == pool_size) return null;
    state.fresh += 1;
    return state.fresh - 1;
}

/// Closes the stream and forgets its backlog (the caller removed it from
/// the poller).
pub fn close(slot: usize) void {
    const s = &state.streams[slot];
    if (s.fd < 0) return;
    while (s.queued > 0) dropHead(s);
    _ = sys.close(s.fd);
    s.fd = -1;
    if (s.peer != peers.owner) state.children_streams -= 1;
}

/// Streams of `peer`, for closing them when it goes.
pub fn forEachOf(peer: Peer, context: anytype, comptime visit: fn (@TypeOf(context), usize) void) void {
    for (&state.streams, 0..) |*s, i| {
        if (s.fd >= 0 and s.peer == peer) visit(context, i);
    }
}

/// Every open stream, for the list of fds a new child closes.
pub fn forEachFd(context: anytype, comptime visit: fn (@TypeOf(context), sys.fd_t) void) void {
    for (&state.streams) |*s| {
        if (s.fd >= 0) visit(context, s.fd);
    }
}

/// Checks the streams against the pool: each backlog's list has `queued`
/// entries, `queued_immediate` of them immediate, and every entry ever
/// used is in exactly one backlog or on the free list. For the unit tests.
pub fn checkInvariants() void {
    std.debug.assert(state.fresh <= pool_size);
    var children: usize = 0;
    var in_backlogs: usize = 0;
    for (&state.streams) |*s| {
        if (s.fd < 0) continue;
        if (s.peer != peers.owner) children += 1;
        var count: u32 = 0;
        var immediate: u32 = 0;
        var last = none;
        var index = s.head;
        while (index != none) : (index = state.pool[index].next) {
            std.debug.assert(index < state.fresh);
            count += 1;
            if (state.pool[index].immediate) immediate += 1;
            last = index;
        }
        std.debug.assert(count == s.queued and immediate == s.queued_immediate);
        std.debug.assert(last == s.tail);
        in_backlogs += count;
    }
    var free: usize = 0;
    var index = state.free_head;
    while (index != none) : (index = state.pool[index].next) free += 1;
    std.debug.assert(in_backlogs + free == state.fresh);
    std.debug.assert(children == state.children_streams);
}

// ---------------------------------------------------------------- tests

fn testRecord(tag: u64) Record {
    return .{ .kind = .reply, .tag = tag };
}

test "a full stream keeps every record, in order, and writes them once readable" {
    if (!sys.linux_paths) return error.SkipZigTest;
    const server_pipe = try write_end.TestServerPipe.open();
    defer server_pipe.close();
    reset();
    var pipe: [2]sys.fd_t = undefined;
    try std.testing.expectEqual(@as(c_int, 0), sys.pipeCloexec(&pipe));
    defer _ = sys.close(pipe[0]);
    const slot = try open(peers.owner, pipe[1]);
    defer close(slot);
    const total = 1000; // a pipe holds 256
    for (0..total) |i| put(slot, &testRecord(i), i % 2 == 0);
    checkInvariants();
    try std.testing.expect(needsOut(slot));
    try std.testing.expect(peerOverBudget(peers.owner));
    try std.testing.expect(!peerOverBudget(3));
    var next: u64 = 0;
    var buf: [64]Record = undefined;
    while (next < total) {
        try std.testing.expect(flush(slot));
        checkInvariants();
        const n = sys.read(pipe[0], @ptrCast(&buf), @sizeOf(@TypeOf(buf)));
        try std.testing.expect(n > 0 and @rem(n, @sizeOf(Record)) == 0);
        for (buf[0..@intCast(@divExact(n, @sizeOf(Record)))]) |r| {
            try std.testing.expectEqual(next, r.tag);
            next += 1;
        }
    }
    try std.testing.expectEqual(@as(u32, 0), state.streams[slot].queued);
    try std.testing.expect(!peerOverBudget(peers.owner));
}

test "a child's streams are its own, and bounded" {
    if (!sys.linux_paths) return error.SkipZigTest;
    const server_pipe = try write_end.TestServerPipe.open();
    defer server_pipe.close();
    reset();
    var slots: [per_child_max_streams]usize = undefined;
    var reads: [per_child_max_streams]sys.fd_t = undefined;
    for (&slots, &reads) |*slot, *read_end| {
        var pipe: [2]sys.fd_t = undefined;
        try std.testing.expectEqual(@as(c_int, 0), sys.pipeCloexec(&pipe));
        read_end.* = pipe[0];
        slot.* = try open(7, pipe[1]);
    }
    var extra: [2]sys.fd_t = undefined;
    try std.testing.expectEqual(@as(c_int, 0), sys.pipeCloexec(&extra));
    defer _ = sys.close(extra[0]);
    try std.testing.expectError(error.Limit, open(7, extra[1]));
    try std.testing.expectEqual(slots[0], find(handleOf(slots[0]), 7).?);
    try std.testing.expect(find(handleOf(slots[0]), 8) == null);
    try std.testing.expect(find(handleOf(slots[0]) +% (1 << 8), 7) == null);
    checkInvariants();
    for (slots, reads) |slot, read_end| {
        close(slot);
        _ = sys.close(read_end);
    }
    checkInvariants();
    try std.testing.expectEqual(@as(usize, 0), state.children_streams);
}
