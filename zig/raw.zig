//! The raw calls of tree.zig and its parts: Linux system calls that
//! leave errno untouched (a new child and the server use them between
//! other calls whose errno matters), and whether a pidfd says its process
//! exited.

const std = @import("std");
const sys = @import("sys.zig");
const linux = std.os.linux;

pub fn succeeded(rc: usize) bool {
    return linux.E.init(rc) == .SUCCESS;
}

pub fn rawClose(fd: sys.fd_t) void {
    if (fd >= 0) _ = linux.syscall1(.close, @as(usize, @intCast(fd)));
}

pub fn pidfdReadable(fd: sys.fd_t) bool {
    var ready = [1]sys.pollfd{.{ .fd = fd, .events = sys.POLLIN, .revents = 0 }};
    return sys.poll(&ready, 1, 0) == 1;
}

pub fn openAt(dir: sys.fd_t, path: [*:0]const u8, flags: u32) sys.fd_t {
    const rc = linux.syscall4(.openat, @as(usize, @intCast(dir)), @intFromPtr(path), flags | @as(u32, @intCast(sys.O_CLOEXEC)), 0);
    if (!succeeded(rc)) return -1;
    return @intCast(rc);
}
