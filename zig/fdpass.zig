//! Sending and receiving file descriptors with SCM_RIGHTS. Used by clients,
//! by the server and by exec'ing children, so it allocates nothing and
//! calls only sendmsg, recvmsg, fcntl and close.

const std = @import("std");
const sys = @import("sys.zig");
const limits = @import("limits.zig");

const max_fds = limits.max_fds_per_message;

/// CMSG_ALIGN: Linux aligns control data to the size of a long, macOS to 4.
fn cmsgAlign(len: usize) usize {
    return std.mem.alignForward(usize, len, if (sys.is_linux) @sizeOf(usize) else 4);
}

const cmsg_data_offset = cmsgAlign(@sizeOf(sys.cmsghdr));

fn cmsgSpace(data_len: usize) usize {
    return cmsg_data_offset + cmsgAlign(data_len);
}

/// struct ucred (Linux SCM_CREDENTIALS): pid, uid, gid.
const Ucred = extern struct { pid: sys.pid_t, uid: u32, gid: u32 };
const SCM_CREDENTIALS: c_int = 2;
const creds_space: usize = if (sys.linux_paths) cmsgSpace(@sizeOf(Ucred)) else 0;

const control_capacity = cmsgSpace(max_fds * @sizeOf(sys.fd_t)) + creds_space;

const ControlBuffer = struct {
    bytes: [control_capacity]u8 align(@alignOf(sys.cmsghdr)) = undefined,
};

/// Sends all of `data` with `fds` attached to its first byte. Returns 0, or
/// -1 with errno set. EINTR is retried; on a stream socket a partial send is
/// completed without the fds (they already travelled).
pub fn send(socket_fd: sys.fd_t, data: []const u8, fds: []const sys.fd_t) c_int {
    return sendFlags(socket_fd, data, fds, 0);
}

/// send() with extra flags (MSG_DONTWAIT: EAGAIN instead of waiting for
/// room; on a message socket nothing is sent then).
pub fn sendFlags(socket_fd: sys.fd_t, data: []const u8, fds: []const sys.fd_t, flags: c_int) c_int {
    return sendControl(socket_fd, data, fds, flags, false);
}

/// sendFlags() that also attaches the sender's credentials (Linux
/// SCM_CREDENTIALS; the kernel refuses a pid, uid or gid that is not the
/// sender's own), so a receiver that turns SO_PASSCRED on only after this
/// was sent still learns who sent it. Elsewhere, the same as sendFlags.
pub fn sendWithCredentials(socket_fd: sys.fd_t, data: []const u8, fds: []const sys.fd_t, flags: c_int) c_int {
    return sendControl(socket_fd, data, fds, flags, sys.linux_paths);
}

fn sendControl(socket_fd: sys.fd_t, data: []const u8, fds: []const sys.fd_t, flags: c_int, credentials: bool) c_int {
    if (data.len == 0 or fds.len > max_fds) {
        sys.setErrno(sys.E.INVAL);
        return -1;
    }
    // macOS has no MSG_NOSIGNAL: SIGPIPE is off per socket, and a socket
    // the caller made (not by libforks) may not have it off yet. Each
    // send sets it, so no call ever raises SIGPIPE.
    if (!sys.linux_paths) {
        const one: c_int = 1;
        _ = sys.setsockopt(socket_fd, sys.SOL_SOCKET, sys.SO_NOSIGPIPE, &one, @sizeOf(c_int));
    }
    var control: ControlBuffer = .{};
    var sent: usize = 0;
    var control_pending = fds.len > 0 or credentials;
    var backoff_ms: u32 = 0;
    while (sent < data.len) {
        var iov = [1]sys.iovec{.{ .base = @constCast(data.ptr + sent), .len = data.len - sent }};
        var message = sys.msghdr{ .iov = &iov, .iovlen = 1, .control = null, .controllen = 0 };
        if (control_pending) {
            const fds_bytes = fds.len * @sizeOf(sys.fd_t);
            var used: usize = 0;
            const total = (if (fds.len > 0) cmsgSpace(fds_bytes) else 0) + (if (credentials) creds_space else 0);
            @memset(control.bytes[0..total], 0);
            if (fds.len > 0) {
                const header: *sys.cmsghdr = @ptrCast(&control.bytes);
                header.len = @intCast(cmsg_data_offset + fds_bytes);
                header.level = sys.SOL_SOCKET;
                header.type = sys.SCM_RIGHTS;
                @memcpy(control.bytes[cmsg_data_offset..][0..fds_bytes], std.mem.sliceAsBytes(fds));
                used = cmsgSpace(fds_bytes);
            }
            if (credentials) {
                const header: *sys.cmsghdr = @ptrCast(@alignCast(&control.bytes[used]));
                header.len = @intCast(cmsg_data_offset + @sizeOf(Ucred));
                header.level = sys.SOL_SOCKET;
                header.type = SCM_CREDENTIALS;
                const creds = Ucred{ .pid = sys.getpid(), .uid = sys.getuid(), .gid = sys.getgid() };
                @memcpy(control.bytes[used + cmsg_data_offset ..][0..@sizeOf(Ucred)], std.mem.asBytes(&creds));
                used += creds_space;
            }
            message.control = &control.bytes;
            message.controllen = @intCast(used);
        }
        const n = sys.sendmsg(socket_fd, &message, sys.MSG_NOSIGNAL | flags);
        if (n < 0) {
            if (sys.errno() == sys.E.INTR) continue;
            if (sys.errno() == sys.E.NOBUFS and waitForRoom(socket_fd, flags, &backoff_ms)) continue;
            if (peerGone(sys.errno())) sys.setErrno(sys.E.PIPE);
            return -1;
        }
        control_pending = false;
        sent += @intCast(n);
    }
    return 0;
}

/// darwin paths: before the library closes a connection it made, it sends
/// an empty datagram, which the server reads as that end's end-of-file (an
/// empty message ends its peer, server.zig). A datagram pair's survivor is
/// never told otherwise that its peer closed: XNU only sets ECONNRESET,
/// which wakes no poll already waiting, so a server would outlive an
/// owner's connection freed by a thread that goes on living. Never blocks:
/// a full receiver (ENOBUFS at once on XNU) is retried for at most about
/// 60 ms, then given up (the owner's exit still ends the server).
pub fn sendHangup(socket_fd: sys.fd_t) void {
    var backoff_ms: u32 = 1;
    while (trySendHangup(socket_fd) != 0) {
        if (sys.errno() != sys.E.NOBUFS or backoff_ms > 32) return;
        sys.sleepMs(backoff_ms);
        backoff_ms *= 2;
    }
}

/// darwin paths: one try at the empty datagram that tells a datagram
/// pair's peer this end is closing (see sendHangup), never waiting: 0 once
/// sent, -1 with errno ENOBUFS while the receiver is full, EPIPE when the
/// peer is gone already. Linux paths: 0 at once, sending nothing: a
/// SOCK_SEQPACKET peer sees end-of-file when the last copy of this end
/// closes, and an empty record would end it while copies remain.
pub fn trySendHangup(socket_fd: sys.fd_t) c_int {
    if (sys.linux_paths) return 0;
    var nothing: u8 = 0;
    var iov = [1]sys.iovec{.{ .base = @ptrCast(&nothing), .len = 0 }};
    var message = sys.msghdr{ .iov = &iov, .iovlen = 1, .control = null, .controllen = 0 };
    while (sys.sendmsg(socket_fd, &message, sys.MSG_DONTWAIT) < 0) {
        if (sys.errno() == sys.E.INTR) continue;
        if (peerGone(sys.errno())) sys.setErrno(sys.E.PIPE);
        return -1;
    }
    return 0;
}

const DESTADDRREQ: c_int = if (sys.is_linux) 89 else 39;

/// darwin paths: how a datagram socket says its peer is gone. XNU sets
/// ECONNRESET on the survivor when the peer closes (unp_drop), reported
/// once by the next send or receive; after that the survivor is
/// disconnected and a send without an address fails with EDESTADDRREQ
/// (Linux's emulation: ECONNREFUSED, then ENOTCONN). A send reports it as
/// EPIPE, as a message socket does on Linux (the header's contract); a
/// receive as end-of-file (receiveMaybeTruncated).
fn peerGone(error_number: c_int) bool {
    if (sys.linux_paths) return false;
    return error_number == sys.E.CONNRESET or error_number == DESTADDRREQ or
        error_number == sys.E.CONNREFUSED or error_number == sys.E.NOTCONN;
}

/// darwin paths: XNU fails a datagram send to a full receiver with ENOBUFS
/// at once, blocking socket or not, and its datagram sockets always poll
/// writable, so there is nothing to wait on: a blocking send sleeps and
/// tries again, 1 ms at first, doubling up to 32 ms (a slow reader costs
/// at most 31 wake-ups a second, never a busy loop). A non-blocking one
/// (MSG_DONTWAIT or O_NONBLOCK: the server, event loops) returns ENOBUFS
/// to its caller, who retries later. A send never waits on Linux paths,
/// where a full receiver blocks or gives EAGAIN and ENOBUFS means memory.
fn waitForRoom(socket_fd: sys.fd_t, flags: c_int, backoff_ms: *u32) bool {
    if (sys.linux_paths or flags & sys.MSG_DONTWAIT != 0) return false;
    const status = sys.fcntl(socket_fd, sys.F_GETFL);
    if (status < 0 or status & sys.O_NONBLOCK != 0) {
        sys.setErrno(sys.E.NOBUFS);
        return false;
    }
    backoff_ms.* = std.math.clamp(backoff_ms.* * 2, 1, 32);
    sys.sleepMs(backoff_ms.*);
    return true;
}

pub const Received = struct {
    /// Bytes received; 0 at end-of-file.
    len: usize,
    /// Fds stored at the start of the caller's slice.
    fd_count: usize,
    /// The sending process as the kernel saw it, when the socket has
    /// SO_PASSCRED (Linux); 0 otherwise.
    sender_pid: sys.pid_t = 0,
};

/// Receives one message (or, on a stream socket, what is available up to
/// data.len) and its fds, all close-on-exec. Returns null with errno set on
/// failure; when the sender's fds or message did not fit (MSG_CTRUNC,
/// MSG_TRUNC, or more fds than `fds` holds), every fd that arrived is closed
/// and errno is EMSGSIZE, so nothing leaks. `flags` may add MSG_DONTWAIT.
pub fn receive(socket_fd: sys.fd_t, data: []u8, fds: []sys.fd_t, flags: c_int) ?Received {
    const received = receiveMaybeTruncated(socket_fd, data, fds, flags) orelse return null;
    if (received.truncated) {
        for (fds[0..received.fd_count]) |*fd| {
            _ = sys.close(fd.*);
            fd.* = -1;
        }
        sys.setErrno(sys.E.MSGSIZE);
        return null;
    }
    return received.whole;
}

pub const MaybeTruncated = struct {
    whole: Received,
    /// The message or its fds did not all arrive (the sender sent more fds
    /// than fit, or the receiver was out of fds). The fds that did arrive
    /// are in the caller's slice and are the caller's to close.
    truncated: bool,
    fd_count: usize,
};

/// receive() for the server, which must still answer a request whose fds
/// only partly arrived (it is out of fds): the first fd is the reply pipe.
pub fn receiveMaybeTruncated(socket_fd: sys.fd_t, data: []u8, fds: []sys.fd_t, flags: c_int) ?MaybeTruncated {
    const capacity: usize = @min(fds.len, max_fds);
    var control: ControlBuffer = .{};
    const control_len = (if (capacity == 0) 0 else cmsgSpace(capacity * @sizeOf(sys.fd_t))) + creds_space;
    var iov = [1]sys.iovec{.{ .base = data.ptr, .len = data.len }};
    var message: sys.msghdr = undefined;
    const n = while (true) {
        message = .{
            .iov = &iov,
            .iovlen = 1,
            .control = if (control_len == 0) null else @as(*anyopaque, &control.bytes),
            .controllen = @intCast(control_len),
        };
        const got = sys.recvmsg(socket_fd, &message, flags | sys.MSG_CMSG_CLOEXEC);
        if (got < 0) {
            if (sys.errno() == sys.E.INTR) continue;
            // The peer's ECONNRESET (peerGone): nothing was queued, and
            // nothing will come: end-of-file. Reported once, as XNU
            // reports it; a datagram socket's survivor is told no more.
            if (!sys.linux_paths and sys.errno() == sys.E.CONNRESET) {
                message.controllen = 0;
                break 0;
            }
            return null;
        }
        break @as(usize, @intCast(got));
    };

    var count: usize = 0;
    var sender_pid: sys.pid_t = 0;
    var overflow = false;
    var offset: usize = 0;
    const control_used: usize = if (message.control == null) 0 else @intCast(message.controllen);
    while (offset + @sizeOf(sys.cmsghdr) <= control_used) {
        const header: *align(1) const sys.cmsghdr = @ptrCast(&control.bytes[offset]);
        const len: usize = @intCast(header.len);
        if (len < cmsg_data_offset or offset + len > control_used) break;
        if (header.level == sys.SOL_SOCKET and header.type == sys.SCM_RIGHTS) {
            const data_len = len - cmsg_data_offset;
            const arrived = data_len / @sizeOf(sys.fd_t);
            for (0..arrived) |i| {
                var fd: sys.fd_t = undefined;
                @memcpy(std.mem.asBytes(&fd), control.bytes[offset + cmsg_data_offset + i * @sizeOf(sys.fd_t) ..][0..@sizeOf(sys.fd_t)]);
                if (count < capacity) {
                    fds[count] = fd;
                    count += 1;
                } else {
                    overflow = true;
                    _ = sys.close(fd);
                }
            }
        }
        if (sys.linux_paths and header.level == sys.SOL_SOCKET and header.type == SCM_CREDENTIALS and len >= cmsg_data_offset + @sizeOf(Ucred)) {
            var creds: Ucred = undefined;
            @memcpy(std.mem.asBytes(&creds), control.bytes[offset + cmsg_data_offset ..][0..@sizeOf(Ucred)]);
            sender_pid = creds.pid;
        }
        offset += cmsgAlign(len);
    }
    for (fds[count..capacity]) |*slot| slot.* = -1;

    if (!sys.linux_paths) {
        for (fds[0..count]) |fd| _ = sys.setCloexec(fd);
    }
    return .{
        .whole = .{ .len = n, .fd_count = count, .sender_pid = sender_pid },
        .truncated = overflow or message.flags & (sys.MSG_CTRUNC | sys.MSG_TRUNC) != 0,
        .fd_count = count,
    };
}

test "fds travel with data and arrive close-on-exec" {
    var pair: [2]sys.fd_t = undefined;
    try std.testing.expectEqual(@as(c_int, 0), sys.socketpairCloexec(sys.message_socket_type, &pair));
    defer _ = sys.close(pair[0]);
    defer _ = sys.close(pair[1]);
    var pipe_fds: [2]sys.fd_t = undefined;
    try std.testing.expectEqual(@as(c_int, 0), sys.pipe(&pipe_fds)); // deliberately not close-on-exec
    defer _ = sys.close(pipe_fds[0]);
    defer _ = sys.close(pipe_fds[1]);

    try std.testing.expectEqual(@as(c_int, 0), send(pair[0], "hello", &pipe_fds));
    var buf: [16]u8 = undefined;
    var got: [4]sys.fd_t = undefined;
    const received = receive(pair[1], &buf, &got, 0) orelse return error.ReceiveFailed;
    try std.testing.expectEqualStrings("hello", buf[0..received.len]);
    try std.testing.expectEqual(@as(usize, 2), received.fd_count);
    try std.testing.expect(sys.isCloexec(got[0]) and sys.isCloexec(got[1]));
    try std.testing.expectEqual(@as(sys.fd_t, -1), got[2]);
    _ = sys.close(got[0]);
    _ = sys.close(got[1]);
}

test "too many fds for the receiver: all closed, EMSGSIZE" {
    var pair: [2]sys.fd_t = undefined;
    try std.testing.expectEqual(@as(c_int, 0), sys.socketpairCloexec(sys.message_socket_type, &pair));
    defer _ = sys.close(pair[0]);
    defer _ = sys.close(pair[1]);
    const five = [5]sys.fd_t{ 0, 1, 2, 0, 1 };
    try std.testing.expectEqual(@as(c_int, 0), send(pair[0], "x", &five));
    var buf: [4]u8 = undefined;
    var got: [3]sys.fd_t = undefined;
    try std.testing.expect(receive(pair[1], &buf, &got, 0) == null);
    try std.testing.expectEqual(sys.E.MSGSIZE, sys.errno());
    for (got) |fd| try std.testing.expectEqual(@as(sys.fd_t, -1), fd);
}

test "send checks its arguments" {
    try std.testing.expectEqual(@as(c_int, -1), send(0, "", &.{}));
    try std.testing.expectEqual(sys.E.INVAL, sys.errno());
    const too_many = [_]sys.fd_t{0} ** (max_fds + 1);
    try std.testing.expectEqual(@as(c_int, -1), send(0, "x", &too_many));
}
