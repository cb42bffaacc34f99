//! The peers' connections as the poll loop sees them: closing a child's,
//! and pausing and resuming the reads of one whose event stream is over
//! budget (events.zig).

const peers = @import("peers.zig");
const server_state = @import("server_state.zig");
const std = @import("std");
const poller = @import("poller.zig");
const sys = @import("sys.zig");
const events = @import("events.zig");
const Peer = peers.Peer;
const state = &server_state.state;
const key_owner = server_state.key_owner;
const childKey = server_state.childKey;

/// A child's connection ended (end-of-file, shutdown, an error): close
/// the server's end, so nothing polls it again. The child itself runs on
/// and is still reaped and reported; only its requests are over.
pub fn dropConn(slot: Peer) void {
    const c = peers.get(&state.table, slot);
    std.debug.assert(c.conn_fd >= 0);
    poller.remove(c.conn_fd);
    _ = sys.close(c.conn_fd);
    c.conn_fd = -1;
    if (c.child_end >= 0) _ = sys.close(c.child_end);
    c.child_end = -1;
}

pub fn connOf(peer: Peer) sys.fd_t {
    return if (peer == peers.owner) state.owner_fd else state.table.slots[peer].conn_fd;
}

pub fn isPaused(peer: Peer) bool {
    return if (peer == peers.owner) state.owner_paused else state.table.slots[peer].paused;
}

pub fn setPaused(peer: Peer, paused: bool) void {
    const flag = if (peer == peers.owner) &state.owner_paused else &state.table.slots[peer].paused;
    if (flag.* == paused) return;
    flag.* = paused;
    if (paused) state.paused_count += 1 else state.paused_count -= 1;
}

pub fn resumePeers() void {
    if (state.owner_paused and !events.peerOverBudget(peers.owner)) resume_(peers.owner);
    for (0..state.table.high) |i| {
        const slot: Peer = @intCast(i);
        if (peers.isRunning(&state.table, slot) and state.table.slots[slot].paused and !events.peerOverBudget(slot)) resume_(slot);
    }
}

fn resume_(peer: Peer) void {
    setPaused(peer, false);
    if (connOf(peer) >= 0) poller.modify(connOf(peer), if (peer == peers.owner) key_owner else childKey(peer), poller.IN);
}
