//! The standard streams' locks around the fork that creates the server.
//!
//! glibc's fork() resets the lock of every stream in the child. musl's
//! fork() resets its internal locks (malloc, the open-file list, atexit,
//! the dynamic loader) but not the per-FILE locks: a stream that another
//! thread had locked at the moment of the fork stays locked in the child
//! forever, and so in the server and every child forked from it, where the
//! first printf or the fflush(NULL) after an entrypoint returns blocks.
//! Locking stdin, stdout and stderr in the forking thread before fork()
//! and unlocking them on both sides after it means no other thread holds
//! them at the fork (musl hands locks held by the forking thread over to
//! the child's thread). The cost: libforks_start waits for a thread that
//! is in the middle of a stdio call on those streams.
//!
//! Streams the caller opened itself are not covered: no C library offers
//! a list of them. A FILE of the caller's that another thread holds at
//! libforks_start stays locked in the server and every child on musl.

const builtin = @import("builtin");
const sys = @import("sys.zig");

/// glibc resets every stream's lock in the child itself; locking here
/// would make its child's funlockfile unbalance the reset lock.
const needed = !(sys.is_linux and builtin.abi.isGnu());

const FILE = opaque {};
extern "c" fn flockfile(stream: *FILE) void;
extern "c" fn funlockfile(stream: *FILE) void;

const standard = if (sys.is_darwin) struct {
    extern "c" var __stdinp: *FILE;
    extern "c" var __stdoutp: *FILE;
    extern "c" var __stderrp: *FILE;
    fn all() [3]*FILE {
        return .{ __stdinp, __stdoutp, __stderrp };
    }
} else struct {
    extern "c" var stdin: *FILE;
    extern "c" var stdout: *FILE;
    extern "c" var stderr: *FILE;
    fn all() [3]*FILE {
        return .{ stdin, stdout, stderr };
    }
};

/// Before fork(): always in the same order (stdin, stdout, stderr), so two
/// threads starting servers at once cannot deadlock each other.
pub fn lockBeforeFork() void {
    if (!needed) return;
    for (standard.all()) |stream| flockfile(stream);
}

/// After fork(), in the parent and in the child, whether or not the fork
/// succeeded.
pub fn unlockAfterFork() void {
    if (!needed) return;
    const streams = standard.all();
    var i: usize = streams.len;
    while (i > 0) {
        i -= 1;
        funlockfile(streams[i]);
    }
}
