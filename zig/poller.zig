//! What the server waits on: its wake pipe, the owner's connection and one
//! connection per running child, each registered with a 64-bit key.
//!
//! Linux: epoll, so a wake-up costs the same with one child or 4,096
//! (poll(2) registers with every socket on every call). macOS, built but
//! untested: poll(2) over the registered list. Level-triggered in both:
//! an fd that stays ready is reported again, so the server must consume
//! what made it ready (a message, end-of-file, an error) or remove it.

const std = @import("std");
const sys = @import("sys.zig");
const limits = @import("limits.zig");

pub const Event = struct { key: u64, events: u32 };

/// Events taken per wait. Small, so the loop's stack stays on the pages it
/// already has (each page written after a fork costs a copy-on-write
/// fault); level-triggered, so whatever does not fit comes at the next wait.
pub const batch = 16;

/// Event bits, the same values for epoll and poll on Linux.
pub const IN: u32 = 0x1;
pub const OUT: u32 = 0x4;
pub const ERR: u32 = 0x8;
pub const HUP: u32 = 0x10;

/// Every connection, the event streams (events.zig) and the server's own.
const capacity = limits.max_children + 4 + 256;

var epoll_fd: sys.fd_t = -1;

const Entry = struct { fd: sys.fd_t, key: u64, events: u32 };
var entries: if (sys.linux_paths) void else [capacity]Entry = undefined;
var entry_count: usize = 0;
var poll_fds: if (sys.linux_paths) void else [capacity]sys.pollfd = undefined;

/// Returns false with errno set if no poller could be made.
pub fn init() bool {
    entry_count = 0;
    if (!sys.linux_paths) return true;
    const linux = std.os.linux;
    const rc = linux.epoll_create1(linux.EPOLL.CLOEXEC);
    if (linux.E.init(rc) != .SUCCESS) {
        sys.setErrno(@intFromEnum(linux.E.init(rc)));
        return false;
    }
    epoll_fd = @intCast(rc);
    return true;
}

/// The epoll fd, for the list of fds a new child closes; -1 on macOS.
pub fn fd() sys.fd_t {
    return epoll_fd;
}

/// Returns false with errno set (ENOMEM, ENOSPC: the user's epoll watch
/// limit) when `watched` cannot be added.
pub fn add(watched: sys.fd_t, key: u64) bool {
    return addFor(watched, key, IN);
}

/// As add, for `events` (IN, OUT, or 0: errors and hang-ups only, which
/// are always reported).
pub fn addFor(watched: sys.fd_t, key: u64, events: u32) bool {
    if (!sys.linux_paths) {
        if (entry_count == capacity) {
            sys.setErrno(sys.E.NOMEM);
            return false;
        }
        entries[entry_count] = .{ .fd = watched, .key = key, .events = events };
        entry_count += 1;
        return true;
    }
    return control(std.os.linux.EPOLL.CTL_ADD, watched, key, events);
}

/// Changes what a registered fd is watched for (see addFor).
pub fn modify(watched: sys.fd_t, key: u64, events: u32) void {
    if (!sys.linux_paths) {
        for (entries[0..entry_count]) |*entry| {
            if (entry.fd == watched) entry.events = events;
        }
        return;
    }
    _ = control(std.os.linux.EPOLL.CTL_MOD, watched, key, events);
}

fn control(op: u32, watched: sys.fd_t, key: u64, events: u32) bool {
    const linux = std.os.linux;
    var event = linux.epoll_event{ .events = events, .data = .{ .u64 = key } };
    const rc = linux.epoll_ctl(epoll_fd, op, watched, &event);
    if (linux.E.init(rc) != .SUCCESS) {
        sys.setErrno(@intFromEnum(linux.E.init(rc)));
        return false;
    }
    return true;
}

/// Before closing `watched`: an epoll registration lives as long as the
/// open file description, and a child forked a moment ago may still hold
/// a copy of it, so closing alone would not end its events.
pub fn remove(watched: sys.fd_t) void {
    if (!sys.linux_paths) {
        for (entries[0..entry_count], 0..) |entry, i| {
            if (entry.fd != watched) continue;
            entry_count -= 1;
            entries[i] = entries[entry_count];
            return;
        }
        return;
    }
    const linux = std.os.linux;
    _ = linux.epoll_ctl(epoll_fd, linux.EPOLL.CTL_DEL, watched, null);
}

/// Waits up to timeout_ms for events; returns how many were stored in
/// `out`, or -1 with errno set.
pub fn wait(out: []Event, timeout_ms: c_int) isize {
    if (!sys.linux_paths) {
        for (entries[0..entry_count], 0..) |entry, i| {
            poll_fds[i] = .{ .fd = entry.fd, .events = @intCast(entry.events), .revents = 0 };
        }
        const ready = sys.poll(&poll_fds, @intCast(entry_count), timeout_ms);
        if (ready <= 0) return ready;
        var stored: usize = 0;
        for (poll_fds[0..entry_count], 0..) |p, i| {
            if (p.revents == 0 or stored == out.len) continue;
            out[stored] = .{ .key = entries[i].key, .events = @as(u16, @bitCast(p.revents)) };
            stored += 1;
        }
        return @intCast(stored);
    }
    const linux = std.os.linux;
    var events: [batch]linux.epoll_event = undefined;
    const max: u32 = @intCast(@min(out.len, events.len));
    const rc = linux.epoll_wait(epoll_fd, &events, max, timeout_ms);
    if (linux.E.init(rc) != .SUCCESS) {
        sys.setErrno(@intFromEnum(linux.E.init(rc)));
        return -1;
    }
    for (events[0..rc], 0..) |event, i| out[i] = .{ .key = event.data.u64, .events = event.events };
    return @intCast(rc);
}
