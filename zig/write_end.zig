//! Pipe write ends the server writes to: reply pipes and exit pipes.
//!
//! A peer makes those pipes and sends the server their write ends, so it
//! also holds the pipe's read end and, often, another copy of the write
//! end. O_NONBLOCK is a flag of the open file description, which a copy
//! passed with SCM_RIGHTS shares: setting it on the received fd is not
//! enough, because the peer can clear it again with fcntl on its own copy
//! and then fill the pipe, and a blocking write would stop the server for
//! as long as the peer likes.
//!
//! So on Linux the server re-opens the pipe through /proc/self/fd/N with
//! O_WRONLY | O_NONBLOCK: open(2) of a pipe makes a new open file
//! description of the same pipe, whose flags are the server's alone, and
//! the received fd is closed at once. Every record the server writes
//! (a 160-byte reply, an 8-byte exit event) is at most PIPE_BUF, so a
//! non-blocking write of it is all or nothing: it fits, or fails with
//! EAGAIN and the record is dropped (the caller then closes the pipe, and
//! the reader sees end-of-file). Only anonymous pipes are accepted: a named
//! FIFO or any other file could live on a file system whose open or write
//! waits for a process (FUSE), and a socket needs no pipe at all.
//!
//! Residual: the kernel's pipe lock is held by a writer while it copies
//! its buffer in, so a peer whose own page faults can be made to stall
//! (a FUSE-backed mapping) could still delay the server's write by that
//! long; that needs more than a hostile child of the server can normally
//! arrange, and is documented, not solved, here.
//!
//! Where /proc is not mounted, and on macOS, there is no way to get a
//! description of one's own: O_NONBLOCK is set on the shared one, best
//! effort. On macOS (the darwin paths) it is set again right before each
//! write, so a peer that cleared it once since (and then filled the pipe)
//! no longer blocks the server; one that clears it again in the instant
//! between that fcntl and the write still can. Without /proc on Linux, a
//! peer that clears it can block the server.

const std = @import("std");
const sys = @import("sys.zig");

/// st_dev of the pipe file system, learnt from the server's own pipe: every
/// anonymous pipe has it. 0 until init.
var pipe_dev: u64 = 0;
/// An fd kept only to be given up: when the server is out of fds the
/// re-open needs one for a moment (the received fd is closed right after).
var spare_fd: sys.fd_t = -1;
/// What the spare is a copy of: the server's own wake pipe, never a peer's
/// pipe (a copy of that would keep its reader from seeing end-of-file).
var spare_source: sys.fd_t = -1;
/// /proc/self/fd of the server, held open: a re-open is then one name
/// looked up in it, not a walk of the whole path (a few microseconds per
/// request on these machines).
var fd_dir: sys.fd_t = -1;
/// Whether /proc/self/fd re-opens work here; cleared after the first
/// failure that says /proc is missing, so a server without it does not try
/// again for every request.
var reopen_works = sys.linux_paths;

/// `own_pipe` is a pipe end of the server itself (its wake pipe).
pub fn init(own_pipe: sys.fd_t) void {
    pipe_dev = 0;
    reopen_works = sys.linux_paths;
    if (sys.linux_paths) {
        var st: std.os.linux.Stat = undefined;
        if (fstat(own_pipe, &st)) pipe_dev = st.dev;
    }
    spare_source = own_pipe;
    spare_fd = sys.fcntl(own_pipe, sys.F_DUPFD_CLOEXEC, @as(c_int, 3));
    if (sys.linux_paths) {
        fd_dir = sys.open("/proc/self/fd", sys.O_RDONLY | sys.O_DIRECTORY | sys.O_CLOEXEC);
        // Only the kernel's procfs re-opens the very file an fd names;
        // checked once here rather than on every re-opened pipe.
        if (fd_dir >= 0 and !isProcfs(fd_dir)) {
            _ = sys.close(fd_dir);
            fd_dir = -1;
        }
        if (fd_dir < 0) reopen_works = false;
    }
}

/// The fds this module holds, for the list of fds a new child closes.
pub fn forEachFd(context: anytype, comptime visit: fn (@TypeOf(context), sys.fd_t) void) void {
    if (spare_fd >= 0) visit(context, spare_fd);
    if (fd_dir >= 0) visit(context, fd_dir);
}

/// Takes a write end received from a peer (the fd is always consumed) and
/// returns one that only the server's flags govern, non-blocking; or -1
/// when the fd is not an anonymous pipe (or the server is out of fds).
pub fn adopt(fd: sys.fd_t) sys.fd_t {
    if (fd < 0) return -1;
    if (!sys.linux_paths or !reopen_works) return adoptShared(fd);
    var st: std.os.linux.Stat = undefined;
    if (!fstat(fd, &st) or !std.os.linux.S.ISFIFO(st.mode) or st.dev != pipe_dev) {
        _ = sys.close(fd);
        return -1;
    }
    if (spare_fd < 0) retakeSpare(); // given up earlier, when fds ran out
    var name_buf: [16]u8 = undefined;
    const name = std.fmt.bufPrintZ(&name_buf, "{d}", .{fd}) catch unreachable;
    const flags = sys.O_WRONLY | sys.O_NONBLOCK | sys.O_CLOEXEC;
    var own = sys.openat(fd_dir, name.ptr, flags);
    var err = sys.errno();
    var spare_used = false;
    if (own < 0 and err == sys.E.MFILE and spare_fd >= 0) {
        _ = sys.close(spare_fd);
        spare_fd = -1;
        spare_used = true;
        own = sys.openat(fd_dir, name.ptr, flags);
        err = sys.errno();
    }
    if (own < 0 and (err == sys.E.NOENT or err == sys.E.ACCES)) {
        // No usable /proc here: fall back for this and every later pipe.
        reopen_works = false;
        if (spare_used) retakeSpare();
        return adoptShared(fd);
    }
    _ = sys.close(fd);
    // The received fd is closed now: its number is free for the spare.
    if (spare_used) retakeSpare();
    return own; // -1 when even the spare did not make room
}

fn retakeSpare() void {
    spare_fd = sys.fcntl(spare_source, sys.F_DUPFD_CLOEXEC, @as(c_int, 3));
}

fn adoptShared(fd: sys.fd_t) sys.fd_t {
    if (sys.setNonblocking(fd, true) != 0) {
        _ = sys.close(fd);
        return -1;
    }
    return fd;
}

/// One write of a whole record (at most PIPE_BUF bytes, so atomic): true
/// when it was written, false when it did not fit or nobody reads.
pub fn put(fd: sys.fd_t, record: []const u8) bool {
    std.debug.assert(record.len <= 512); // POSIX's smallest PIPE_BUF
    // A shared description (macOS): the peer may have cleared O_NONBLOCK.
    if (!sys.linux_paths and sys.setNonblocking(fd, true) != 0) return false;
    while (true) {
        const n = sys.write(fd, record.ptr, record.len);
        if (n >= 0) return @as(usize, @intCast(n)) == record.len;
        if (sys.errno() != sys.E.INTR) return false;
    }
}

fn closeHeld() void {
    forEachFd({}, closeOne);
    spare_fd = -1;
    fd_dir = -1;
}

fn closeOne(_: void, fd: sys.fd_t) void {
    _ = sys.close(fd);
}

fn isProcfs(fd: sys.fd_t) bool {
    const linux = std.os.linux;
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    // struct statfs: f_type is its first word on every 64-bit Linux.
    var buf: [16]i64 align(8) = undefined;
    if (linux.E.init(linux.syscall2(.fstatfs, @as(usize, @intCast(fd)), @intFromPtr(&buf))) != .SUCCESS) return false;
    return buf[0] == PROC_SUPER_MAGIC;
}

fn fstat(fd: sys.fd_t, st: *std.os.linux.Stat) bool {
    const linux = std.os.linux;
    return linux.E.init(linux.fstat(fd, st)) == .SUCCESS;
}

/// What the server holds for these tests (here and in events.zig): a pipe
/// of its own (as its wake pipe), given to init(); close() undoes both.
pub const TestServerPipe = struct {
    fds: [2]sys.fd_t,

    pub fn open() !TestServerPipe {
        var fds: [2]sys.fd_t = undefined;
        try std.testing.expectEqual(@as(c_int, 0), sys.pipeCloexec(&fds));
        init(fds[0]);
        return .{ .fds = fds };
    }

    pub fn close(self: TestServerPipe) void {
        closeHeld();
        _ = sys.close(self.fds[0]);
        _ = sys.close(self.fds[1]);
    }
};

/// A peer's pipe, and what the server receives of it: a copy of its write
/// end (`received`, for adopt()).
const TestPeerPipe = struct {
    fds: [2]sys.fd_t,
    received: sys.fd_t,

    fn open() !TestPeerPipe {
        var fds: [2]sys.fd_t = undefined;
        try std.testing.expectEqual(@as(c_int, 0), sys.pipeCloexec(&fds));
        const received = sys.fcntl(fds[1], sys.F_DUPFD_CLOEXEC, @as(c_int, 3));
        try std.testing.expect(received >= 0);
        return .{ .fds = fds, .received = received };
    }

    fn close(self: TestPeerPipe) void {
        _ = sys.close(self.fds[0]);
        _ = sys.close(self.fds[1]);
    }
};

test "a re-opened write end keeps its own O_NONBLOCK when the peer clears it" {
    if (!sys.linux_paths) return error.SkipZigTest;
    const server_pipe = try TestServerPipe.open();
    defer server_pipe.close();

    const peer = try TestPeerPipe.open();
    defer _ = sys.close(peer.fds[0]);
    const adopted = adopt(peer.received);
    try std.testing.expect(adopted >= 0);
    try std.testing.expect(reopen_works);
    defer _ = sys.close(adopted);
    // The peer fills the pipe and leaves its description blocking.
    try std.testing.expectEqual(@as(c_int, 0), sys.setNonblocking(peer.fds[1], true));
    const chunk = [_]u8{0} ** 4096;
    while (sys.write(peer.fds[1], &chunk, chunk.len) > 0) {}
    try std.testing.expectEqual(@as(c_int, 0), sys.setNonblocking(peer.fds[1], false));
    _ = sys.close(peer.fds[1]);
    // The server's write does not wait: the record is dropped.
    try std.testing.expect(!put(adopted, "12345678"));
    try std.testing.expect(sys.fcntl(adopted, sys.F_GETFL) & sys.O_NONBLOCK != 0);
}

test "only anonymous pipes are adopted" {
    if (!sys.linux_paths) return error.SkipZigTest;
    const server_pipe = try TestServerPipe.open();
    defer server_pipe.close();
    var pair: [2]sys.fd_t = undefined;
    try std.testing.expectEqual(@as(c_int, 0), sys.socketpairCloexec(sys.message_socket_type, &pair));
    defer _ = sys.close(pair[1]);
    try std.testing.expectEqual(@as(sys.fd_t, -1), adopt(pair[0]));
    const null_fd = sys.open("/dev/null", sys.O_WRONLY | sys.O_CLOEXEC);
    try std.testing.expectEqual(@as(sys.fd_t, -1), adopt(null_fd));
    // A pipe nobody reads any more: adopted (open(2) of an anonymous pipe
    // does not check for readers), and the write fails with EPIPE.
    var gone: [2]sys.fd_t = undefined;
    try std.testing.expectEqual(@as(c_int, 0), sys.pipeCloexec(&gone));
    _ = sys.close(gone[0]);
    const orphan = adopt(gone[1]);
    try std.testing.expect(orphan >= 0);
    defer _ = sys.close(orphan);
    try std.testing.expect(!put(orphan, "12345678"));
}

test "out of fds, a re-open still works through the spare, which is then taken back" {
    if (!sys.linux_paths) return error.SkipZigTest;
    const server_pipe = try TestServerPipe.open();
    defer server_pipe.close();
    const peer = try TestPeerPipe.open();
    defer peer.close();
    const received = peer.received;

    // Fill the fd table to the soft limit, lowered for this test.
    var saved: sys.rlimit = undefined;
    try std.testing.expectEqual(@as(c_int, 0), sys.getrlimit(sys.RLIMIT_NOFILE, &saved));
    defer _ = sys.setrlimit(sys.RLIMIT_NOFILE, &saved);
    var highest: sys.fd_t = received;
    for ([_]sys.fd_t{ server_pipe.fds[0], server_pipe.fds[1], peer.fds[0], peer.fds[1], spare_fd, fd_dir }) |fd| highest = @max(highest, fd);
    const low = sys.rlimit{ .cur = @intCast(highest + 64), .max = saved.max };
    try std.testing.expectEqual(@as(c_int, 0), sys.setrlimit(sys.RLIMIT_NOFILE, &low));
    var fillers: [128]sys.fd_t = undefined;
    var filled: usize = 0;
    defer for (fillers[0..filled]) |fd| {
        _ = sys.close(fd);
    };
    while (filled < fillers.len) {
        const fd = sys.fcntl(server_pipe.fds[0], sys.F_DUPFD_CLOEXEC, @as(c_int, 3));
        if (fd < 0) break;
        fillers[filled] = fd;
        filled += 1;
    }
    try std.testing.expect(sys.fcntl(server_pipe.fds[0], sys.F_DUPFD_CLOEXEC, @as(c_int, 3)) < 0);

    const adopted = adopt(received);
    try std.testing.expect(adopted >= 0);
    defer _ = sys.close(adopted);
    try std.testing.expect(put(adopted, "12345678"));
    // The spare is back, and it is a copy of the server's own pipe.
    try std.testing.expect(spare_fd >= 0);
    var spare_st: std.os.linux.Stat = undefined;
    var own_st: std.os.linux.Stat = undefined;
    try std.testing.expect(fstat(spare_fd, &spare_st) and fstat(server_pipe.fds[0], &own_st));
    try std.testing.expectEqual(own_st.ino, spare_st.ino);
}
