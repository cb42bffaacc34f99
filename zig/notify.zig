//! Readiness notification for event loops that cannot poll arbitrary fds
//! themselves (Bun's JavaScript thread).
//!
//! Each doorbell is a pipe plus its own epoll set (kqueue on macOS), so two
//! event loops may watch the same fd (a connection shared by Workers). One
//! thread per process waits on a master set holding every doorbell's set;
//! when a watched fd is ready it writes `token | events << 48` to that
//! doorbell's pipe, which the event loop reads asynchronously. Watches are
//! one-shot. Any number of exit fds, reply fds and channels cost one thread
//! in total, and JavaScript never runs native callbacks from another thread.
//!
//! The thread never waits on one event loop: a doorbell whose pipe is full
//! (its loop is busy and has not read its records) keeps its records here
//! and is left out until its pipe has room, while every other doorbell keeps
//! ringing. A doorbell belongs to the thread that opened it and is closed
//! when that thread exits (a terminated Bun Worker), so its slot is free
//! again.

const std = @import("std");
const sys = @import("sys.zig");
const limits = @import("limits.zig");
const result_mod = @import("result.zig");
const abi = @import("abi.zig");
const Error = result_mod.Error;
const withErrno = result_mod.withErrno;

pub const event_readable = abi.event_readable;
pub const event_writable = abi.event_writable;
pub const event_error = abi.event_error;
pub const event_hangup = abi.event_hangup;

const token_bits = abi.doorbell_token_bits;
const token_mask: u64 = (1 << token_bits) - 1;

/// Records collected from one doorbell's set in one pass, and the most it
/// keeps while its pipe is full.
const batch = 64;
/// Set in a master key's slot half for the doorbell's write end (room in a
/// full pipe), clear for its watch set.
const write_side: u32 = 1 << 31;

const Doorbell = struct {
    read_fd: sys.fd_t = -1,
    write_fd: sys.fd_t = -1,
    /// This doorbell's own set of watches.
    set_fd: sys.fd_t = -1,
    /// Bumped whenever the slot is reused, so the master set's stale entry
    /// for a closed doorbell can never ring its successor.
    generation: u32 = 0,
    /// The opening thread's number (see threadNumber): the doorbell is
    /// closed when that thread exits.
    owner: usize = 0,
    /// Records taken from the set but not yet written: the pipe was full.
    pending: [batch]u64 = undefined,
    pending_start: usize = 0,
    pending_end: usize = 0,
};

var mutex: std.Thread.Mutex = .{};
var doorbells: [limits.max_doorbells]Doorbell = [_]Doorbell{.{}} ** limits.max_doorbells;
var master_fd: sys.fd_t = -1;
var thread_started = false;

fn masterKey(slot: usize, generation: u32) u64 {
    return (@as(u64, generation) << 32) | slot;
}

// ---------------------------------------------------------------- API

pub fn open(out: ?*c_int) Error!void {
    const doorbell_fd = out orelse return withErrno(error.INVALID_ARGUMENT, sys.E.INVAL);
    mutex.lock();
    defer mutex.unlock();
    if (!thread_started) {
        try startThread();
    }
    const owner = threadNumber() orelse return withErrno(error.THREAD_ERROR, sys.E.AGAIN);
    const slot = for (&doorbells, 0..) |*d, i| {
        if (d.read_fd < 0) break i;
    } else return withErrno(error.LIMIT_ERROR, sys.E.MFILE);
    var fds: [2]sys.fd_t = undefined;
    if (sys.pipeCloexec(&fds) != 0) return error.PIPE_CREATION_ERROR;
    const set_fd = backend.create();
    const generation = doorbells[slot].generation +% 1;
    // The write end is non-blocking so the thread never sleeps inside a
    // write while holding the lock; a full doorbell keeps its records (see serve).
    if (set_fd < 0 or sys.setNonblocking(fds[1], true) != 0 or
        backend.arm(master_fd, set_fd, event_readable, masterKey(slot, generation)) != 0)
    {
        sys.closeKeepErrno(fds[0]);
        sys.closeKeepErrno(fds[1]);
        sys.closeKeepErrno(set_fd);
        return error.PIPE_CREATION_ERROR;
    }
    doorbells[slot] = .{ .read_fd = fds[0], .write_fd = fds[1], .set_fd = set_fd, .generation = generation, .owner = owner };
    doorbell_fd.* = fds[0];
}

pub fn close(doorbell_fd: c_int) Error!void {
    mutex.lock();
    defer mutex.unlock();
    const slot = findSlot(doorbell_fd) orelse return withErrno(error.INVALID_ARGUMENT, sys.E.BADF);
    closeSlot(slot);
}

/// With the mutex held.
fn closeSlot(slot: usize) void {
    const d = &doorbells[slot];
    // Closing the set and the write end also takes them out of the master
    // set.
    _ = sys.close(d.set_fd);
    _ = sys.close(d.read_fd);
    _ = sys.close(d.write_fd);
    d.* = .{ .generation = d.generation };
}

// ---------------------------------------------------------------- owners

/// Each thread that opens a doorbell gets a number, kept as its value of
/// `owner_key`; the key's destructor runs when the thread exits (a Bun
/// Worker that ends or is terminated runs no JavaScript then) and closes
/// that thread's doorbells. Numbers are never reused, unlike thread ids.
var owner_key: std.c.pthread_key_t = undefined;
var owner_key_made = false;
var next_thread_number: usize = 1;

/// With the mutex held.
fn threadNumber() ?usize {
    if (!owner_key_made) {
        if (std.c.pthread_key_create(&owner_key, ownerExited) != .SUCCESS) return null;
        owner_key_made = true;
    }
    if (std.c.pthread_getspecific(owner_key)) |value| return @intFromPtr(value);
    const number = next_thread_number;
    if (std.c.pthread_setspecific(owner_key, @ptrFromInt(number)) != 0) return null;
    next_thread_number += 1;
    return number;
}

fn ownerExited(value: *anyopaque) callconv(.c) void {
    const number = @intFromPtr(value);
    mutex.lock();
    defer mutex.unlock();
    for (&doorbells, 0..) |*d, slot| {
        if (d.read_fd >= 0 and d.owner == number) closeSlot(slot);
    }
}

pub fn watch(doorbell_fd: c_int, fd: c_int, events: c_int, token: u64) Error!void {
    if (fd < 0) return withErrno(error.INVALID_ARGUMENT, sys.E.BADF);
    if (events <= 0 or events & ~@as(c_int, event_readable | event_writable) != 0) return withErrno(error.INVALID_ARGUMENT, sys.E.INVAL);
    if (token > token_mask) return withErrno(error.INVALID_ARGUMENT, sys.E.INVAL);
    mutex.lock();
    defer mutex.unlock();
    const slot = findSlot(doorbell_fd) orelse return withErrno(error.INVALID_ARGUMENT, sys.E.BADF);
    if (backend.arm(doorbells[slot].set_fd, fd, @intCast(events), token) != 0) return error.INVALID_ARGUMENT;
}

pub fn unwatch(doorbell_fd: c_int, fd: c_int) Error!void {
    if (fd < 0) return withErrno(error.INVALID_ARGUMENT, sys.E.BADF);
    mutex.lock();
    defer mutex.unlock();
    const slot = findSlot(doorbell_fd) orelse return withErrno(error.INVALID_ARGUMENT, sys.E.BADF);
    backend.disarm(doorbells[slot].set_fd, fd);
}

fn findSlot(doorbell_fd: c_int) ?usize {
    if (doorbell_fd < 0) return null;
    for (doorbells, 0..) |d, i| {
        if (d.read_fd == doorbell_fd) return i;
    }
    return null;
}

// ---------------------------------------------------------------- thread

fn startThread() Error!void {
    master_fd = backend.create();
    if (master_fd < 0) return error.THREAD_ERROR;
    // The thread inherits this mask: with every signal blocked, the host's
    // signals are never delivered on it.
    var old: sys.sigset_t = undefined;
    sys.blockAllSignals(&old);
    defer sys.setSignalMask(&old);
    const thread = std.Thread.spawn(.{ .stack_size = sys.threadStackSize(64 * 1024) }, run, .{}) catch {
        _ = sys.close(master_fd);
        master_fd = -1;
        return withErrno(error.THREAD_ERROR, sys.E.AGAIN);
    };
    thread.detach();
    thread_started = true;
}

fn run() void {
    var ready: [limits.max_doorbells]backend.Ready = undefined;
    while (true) {
        const count = backend.wait(master_fd, &ready, -1);
        for (ready[0..count]) |item| serve(item.key);
    }
}

/// One pass over one doorbell, never waiting on it: writes the records it
/// still holds, collects one batch from its set and writes that. While its
/// pipe is full the set stays out of the master set (its events stay
/// queued in it) and the pipe's write end is watched for room instead, so
/// a loop that does not read costs the others nothing.
fn serve(key: u64) void {
    const half: u32 = @truncate(key);
    const slot: usize = @intCast(half & ~write_side);
    const generation: u32 = @intCast(key >> 32);
    if (slot >= limits.max_doorbells) return;
    mutex.lock();
    defer mutex.unlock();
    const d = &doorbells[slot];
    if (d.set_fd < 0 or d.generation != generation) return;
    if (flush(d)) {
        var ready: [batch]backend.Ready = undefined;
        const n = backend.wait(d.set_fd, &ready, 0);
        for (ready[0..n]) |item| {
            d.pending[d.pending_end] = std.mem.nativeToLittle(u64, (item.key & token_mask) | (@as(u64, item.events & 0xff) << token_bits));
            d.pending_end += 1;
        }
        // Re-armed one-shot: if more than a batch is ready the master set
        // reports it again at once, after the other doorbells of this round.
        if (flush(d)) {
            _ = backend.arm(master_fd, d.set_fd, event_readable, masterKey(slot, generation));
            return;
        }
    }
    _ = backend.arm(master_fd, d.write_fd, event_writable, masterKey(slot | write_side, generation));
}

/// Writes what `d` holds without blocking; false when the pipe is full.
/// Whole records only: every write is a multiple of 8 bytes, at most
/// PIPE_BUF, so the pipe takes all of it or none.
fn flush(d: *Doorbell) bool {
    while (d.pending_start < d.pending_end) {
        const all = d.pending[d.pending_start..d.pending_end];
        var n = sys.write(d.write_fd, std.mem.sliceAsBytes(all).ptr, all.len * 8);
        // Not room for all: one record may still fit, so a wake-up for room
        // always makes progress and never spins.
        if (n < 0 and sys.errno() == sys.E.AGAIN and all.len > 1) n = sys.write(d.write_fd, std.mem.sliceAsBytes(all[0..1]).ptr, 8);
        if (n > 0) {
            d.pending_start += @as(usize, @intCast(n)) / 8;
        } else if (n < 0 and sys.errno() == sys.E.INTR) {
            continue;
        } else if (n < 0 and sys.errno() == sys.E.AGAIN) {
            return false;
        } else {
            // The read end is gone: nobody is left to hear these records.
            break;
        }
    }
    d.pending_start = 0;
    d.pending_end = 0;
    return true;
}

// ---------------------------------------------------------------- backends

const backend = if (sys.is_linux) Epoll else Kqueue;

const Epoll = struct {
    const linux = std.os.linux;
    extern "c" fn epoll_create1(flags: c_int) c_int;
    extern "c" fn epoll_ctl(epfd: c_int, op: c_int, fd: c_int, event: ?*linux.epoll_event) c_int;
    extern "c" fn epoll_wait(epfd: c_int, events: [*]linux.epoll_event, max: c_int, timeout: c_int) c_int;

    const Ready = struct { key: u64, events: u32 };

    fn create() sys.fd_t {
        return epoll_create1(sys.O_CLOEXEC);
    }

    fn arm(set: sys.fd_t, fd: sys.fd_t, events: u32, key: u64) c_int {
        var interest: u32 = linux.EPOLL.ONESHOT;
        if (events & event_readable != 0) interest |= linux.EPOLL.IN;
        if (events & event_writable != 0) interest |= linux.EPOLL.OUT;
        var event = linux.epoll_event{ .events = interest, .data = .{ .u64 = key } };
        if (epoll_ctl(set, linux.EPOLL.CTL_MOD, fd, &event) == 0) return 0;
        if (sys.errno() != sys.E.NOENT) return -1;
        return epoll_ctl(set, linux.EPOLL.CTL_ADD, fd, &event);
    }

    fn disarm(set: sys.fd_t, fd: sys.fd_t) void {
        _ = epoll_ctl(set, linux.EPOLL.CTL_DEL, fd, null);
    }

    fn wait(set: sys.fd_t, out: []Ready, timeout_ms: c_int) usize {
        var events: [64]linux.epoll_event = undefined;
        const n = epoll_wait(set, &events, @intCast(@min(out.len, events.len)), timeout_ms);
        if (n <= 0) return 0;
        for (events[0..@intCast(n)], out[0..@intCast(n)]) |event, *item| {
            var bits: u32 = 0;
            if (event.events & linux.EPOLL.IN != 0) bits |= event_readable;
            if (event.events & linux.EPOLL.OUT != 0) bits |= event_writable;
            if (event.events & linux.EPOLL.ERR != 0) bits |= event_error;
            if (event.events & linux.EPOLL.HUP != 0) bits |= event_hangup;
            item.* = .{ .key = event.data.u64, .events = bits };
        }
        return @intCast(n);
    }
};

const Kqueue = struct {
    const Kevent = sys.Kevent;
    const timespec = extern struct { sec: isize, nsec: isize };
    const EVFILT_READ = sys.EVFILT_READ;
    const EVFILT_WRITE = sys.EVFILT_WRITE;
    const EV_ADD = sys.EV_ADD;
    const EV_DELETE = sys.EV_DELETE;
    const EV_ONESHOT = sys.EV_ONESHOT;
    const EV_EOF = sys.EV_EOF;
    const EV_ERROR = sys.EV_ERROR;
    const kqueue = sys.kqueue;
    const kevent = sys.kevent;

    const Ready = struct { key: u64, events: u32 };

    fn create() sys.fd_t {
        const fd = kqueue();
        if (fd >= 0) _ = sys.setCloexec(fd);
        return fd;
    }

    fn arm(set: sys.fd_t, fd: sys.fd_t, events: u32, key: u64) c_int {
        var changes: [2]Kevent = undefined;
        var count: usize = 0;
        if (events & event_readable != 0) {
            changes[count] = .{ .ident = @intCast(fd), .filter = EVFILT_READ, .flags = EV_ADD | EV_ONESHOT, .fflags = 0, .data = 0, .udata = key };
            count += 1;
        }
        if (events & event_writable != 0) {
            changes[count] = .{ .ident = @intCast(fd), .filter = EVFILT_WRITE, .flags = EV_ADD | EV_ONESHOT, .fflags = 0, .data = 0, .udata = key };
            count += 1;
        }
        return if (kevent(set, &changes, @intCast(count), null, 0, null) < 0) -1 else 0;
    }

    fn disarm(set: sys.fd_t, fd: sys.fd_t) void {
        for ([_]i16{ EVFILT_READ, EVFILT_WRITE }) |filter| {
            const change = [1]Kevent{.{ .ident = @intCast(fd), .filter = filter, .flags = EV_DELETE, .fflags = 0, .data = 0, .udata = 0 }};
            _ = kevent(set, &change, 1, null, 0, null);
        }
    }

    fn wait(set: sys.fd_t, out: []Ready, timeout_ms: c_int) usize {
        var events: [64]Kevent = undefined;
        const zero = timespec{ .sec = 0, .nsec = 0 };
        const n = kevent(set, null, 0, &events, @intCast(@min(out.len, events.len)), if (timeout_ms == 0) &zero else null);
        if (n <= 0) return 0;
        for (events[0..@intCast(n)], out[0..@intCast(n)]) |event, *item| {
            var bits: u32 = if (event.filter == EVFILT_WRITE) event_writable else event_readable;
            if (event.flags & EV_EOF != 0) bits |= event_hangup;
            if (event.flags & EV_ERROR != 0) bits |= event_error;
            item.* = .{ .key = event.udata, .events = bits };
        }
        return @intCast(n);
    }
};
