//! Handles that cross event loops, and what dies with a thread.
//!
//! Share tokens: a connection handed to another thread of this process
//! travels as a number that is a key into this table, never as an address.
//! A token names a slot and a generation (with random bits), is taken
//! exactly once, and only in the process that made it, so a forged, reused
//! or copied token is refused instead of dereferenced.
//!
//! Thread ownership: a thread may adopt connections and fds; when it exits
//! (a Bun Worker that ends or is terminated, which runs no JavaScript on
//! the way out) its adopted connections are freed (a server it started
//! shuts down as if its owner died) and its adopted fds are closed.

const std = @import("std");
const sys = @import("sys.zig");
const limits = @import("limits.zig");
const client = @import("client.zig");
const result_mod = @import("result.zig");
const Error = result_mod.Error;
const withErrno = result_mod.withErrno;
const ServerConn = client.ServerConn;

// ---------------------------------------------------------------- tokens

const Token = struct {
    /// 0 while the slot is free.
    value: u64 = 0,
    conn: ServerConn = .{ .private = null },
    owner_pid: sys.pid_t = 0,
    /// The adopted set of the thread that made it, if that thread adopts:
    /// its tokens nobody took are dropped when it exits, or they would
    /// keep its server alive with nobody left to drop them.
    maker: ?*Adopted = null,
};

var mutex: std.Thread.Mutex = .{};
var tokens: [limits.max_share_tokens]Token = [_]Token{.{}} ** limits.max_share_tokens;
var generations: [limits.max_share_tokens]u16 = [_]u16{0} ** limits.max_share_tokens;

/// Token layout: slot in bits 0..15, the slot's generation in 16..31,
/// random bits in 32..52 (so it stays an exact JavaScript number).
fn makeToken(slot: usize, generation: u16) u64 {
    var random: u32 = 0;
    std.posix.getrandom(std.mem.asBytes(&random)) catch {};
    return @as(u64, slot) | (@as(u64, generation) << 16) | (@as(u64, random & 0x1f_ffff) << 32);
}

/// A new handle on `conn` (libforks_conn_share), parked under a token.
pub fn share(conn: ServerConn, out: ?*u64) Error!void {
    const token_out = out orelse return withErrno(error.INVALID_ARGUMENT, sys.E.INVAL);
    mutex.lock();
    defer mutex.unlock();
    const slot = for (tokens, 0..) |t, i| {
        if (t.value == 0) break i;
    } else return withErrno(error.LIMIT_ERROR, sys.E.MFILE);
    var handle: ServerConn = undefined;
    try client.shareConn(conn, &handle);
    generations[slot] +%= 1;
    const value = makeToken(slot, generations[slot]);
    tokens[slot] = .{ .value = value, .conn = handle, .owner_pid = sys.getpid(), .maker = existing() };
    token_out.* = value;
}

/// Takes the handle parked under `token`: once, in the process that made it.
pub fn attach(token: u64, out: ?*ServerConn) Error!void {
    const conn_out = out orelse return withErrno(error.INVALID_ARGUMENT, sys.E.INVAL);
    mutex.lock();
    defer mutex.unlock();
    const slot = find(token) orelse return withErrno(error.INVALID_ARGUMENT, sys.E.NOENT);
    // A fork of this process holds a copy of the table, not the threads it
    // was made for.
    if (tokens[slot].owner_pid != sys.getpid()) return withErrno(error.NOT_OWNER, sys.E.PERM);
    conn_out.* = tokens[slot].conn;
    tokens[slot] = .{};
}

/// Frees the handle of a token nobody attached.
pub fn drop(token: u64) Error!void {
    mutex.lock();
    const slot = find(token) orelse {
        mutex.unlock();
        return withErrno(error.INVALID_ARGUMENT, sys.E.NOENT);
    };
    const conn = tokens[slot].conn;
    const mine = tokens[slot].owner_pid == sys.getpid();
    tokens[slot] = .{};
    mutex.unlock();
    // A fork's copy of the table is forgotten, not freed: the connection
    // state it points to belongs to the process that made the token.
    if (mine) client.freeConn(conn);
}

fn find(token: u64) ?usize {
    const slot: usize = @intCast(token & 0xffff);
    if (token == 0 or slot >= tokens.len or tokens[slot].value != token) return null;
    return slot;
}

// ---------------------------------------------------------------- threads

const Adopted = struct {
    conns: std.ArrayListUnmanaged(ServerConn) = .{},
    fds: std.AutoHashMapUnmanaged(sys.fd_t, void) = .{},
};

const allocator = std.heap.c_allocator;
var thread_key: std.c.pthread_key_t = undefined;
var thread_key_made = false;

/// The calling thread's adopted set, made on first use.
fn adopted() ?*Adopted {
    {
        mutex.lock();
        defer mutex.unlock();
        if (!thread_key_made) {
            if (std.c.pthread_key_create(&thread_key, threadExited) != .SUCCESS) return null;
            @atomicStore(bool, &thread_key_made, true, .release);
        }
    }
    if (std.c.pthread_getspecific(thread_key)) |value| return @ptrCast(@alignCast(value));
    const set = allocator.create(Adopted) catch return null;
    set.* = .{};
    if (std.c.pthread_setspecific(thread_key, set) != 0) {
        allocator.destroy(set);
        return null;
    }
    return set;
}

fn existing() ?*Adopted {
    if (!@atomicLoad(bool, &thread_key_made, .acquire)) return null;
    const value = std.c.pthread_getspecific(thread_key) orelse return null;
    return @ptrCast(@alignCast(value));
}

fn threadExited(value: *anyopaque) callconv(.c) void {
    const set: *Adopted = @ptrCast(@alignCast(value));
    var dropped: [limits.max_share_tokens]ServerConn = undefined;
    var count: usize = 0;
    {
        mutex.lock();
        defer mutex.unlock();
        for (&tokens) |*t| {
            if (t.value != 0 and t.maker == set) {
                dropped[count] = t.conn;
                count += 1;
                t.* = .{};
            }
        }
    }
    for (dropped[0..count]) |conn| client.freeConn(conn);
    // Then connections: a server this thread started starts shutting its
    // children down while the fds go.
    for (set.conns.items) |conn| client.freeConn(conn);
    var fds = set.fds.keyIterator();
    while (fds.next()) |fd| _ = sys.close(fd.*);
    set.conns.deinit(allocator);
    set.fds.deinit(allocator);
    allocator.destroy(set);
}

pub fn adoptConn(conn: ServerConn) Error!void {
    if (conn.private == null) return withErrno(error.INVALID_ARGUMENT, sys.E.INVAL);
    const set = adopted() orelse return withErrno(error.MALLOC_ERROR, sys.E.NOMEM);
    set.conns.append(allocator, conn) catch return withErrno(error.MALLOC_ERROR, sys.E.NOMEM);
}

pub fn releaseConn(conn: ServerConn) Error!void {
    const set = existing() orelse return withErrno(error.INVALID_ARGUMENT, sys.E.NOENT);
    for (set.conns.items, 0..) |item, i| {
        if (item.private == conn.private) {
            _ = set.conns.swapRemove(i);
            return;
        }
    }
    return withErrno(error.INVALID_ARGUMENT, sys.E.NOENT);
}

pub fn adoptFd(fd: sys.fd_t) Error!void {
    if (fd < 0) return withErrno(error.INVALID_ARGUMENT, sys.E.BADF);
    const set = adopted() orelse return withErrno(error.MALLOC_ERROR, sys.E.NOMEM);
    set.fds.put(allocator, fd, {}) catch return withErrno(error.MALLOC_ERROR, sys.E.NOMEM);
}

pub fn releaseFd(fd: sys.fd_t) Error!void {
    const set = existing() orelse return withErrno(error.INVALID_ARGUMENT, sys.E.NOENT);
    if (!set.fds.remove(fd)) return withErrno(error.INVALID_ARGUMENT, sys.E.NOENT);
}

test "a token is taken once, and a forged one is refused" {
    // Only the table is exercised: share() needs a live connection, so a
    // slot is filled by hand.
    mutex.lock();
    generations[3] +%= 1;
    const value = makeToken(3, generations[3]);
    tokens[3] = .{ .value = value, .conn = .{ .private = null }, .owner_pid = sys.getpid() };
    mutex.unlock();
    var out: ServerConn = undefined;
    try std.testing.expectError(error.INVALID_ARGUMENT, attach(value ^ (1 << 40), &out));
    try std.testing.expectError(error.INVALID_ARGUMENT, attach(12345, &out));
    try std.testing.expectError(error.INVALID_ARGUMENT, attach(0, &out));
    try attach(value, &out);
    try std.testing.expectError(error.INVALID_ARGUMENT, attach(value, &out));
    try std.testing.expect(value < (1 << 53));
}
