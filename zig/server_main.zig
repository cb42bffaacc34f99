//! libforks-server: the executable a clean server runs (libforks_start_ex
//! with libforks_MODE_CLEAN). A fresh, single-threaded process that holds
//! none of its caller's memory and speaks the same protocol: it is the
//! same server code, reached through execve instead of fork.
//!
//! Usage (by libforks only): libforks-server OWNER_PID CONNECTION_FD
//! OWNER_PIDFD (-1 when there is none; see tree.openOwnerPidfd).

const std = @import("std");
const sys = @import("sys.zig");
const server = @import("server.zig");

pub const panic = std.debug.FullPanic(onPanic);

fn onPanic(message: []const u8, _: ?usize) noreturn {
    for ([_][]const u8{ "libforks-server: internal error: ", message, "\n" }) |part| _ = sys.writeFull(2, part);
    sys._exit(70);
}

pub fn main() u8 {
    const args = std.os.argv;
    const owner_pid = if (args.len == 4) std.fmt.parseInt(sys.pid_t, sys.cString(args[1]), 10) catch 0 else 0;
    const owner_fd = if (args.len == 4) std.fmt.parseInt(sys.fd_t, sys.cString(args[2]), 10) catch -1 else -1;
    var owner_pidfd = if (args.len == 4) std.fmt.parseInt(sys.fd_t, sys.cString(args[3]), 10) catch -1 else -1;
    if (owner_pidfd >= 0 and (owner_pidfd == owner_fd or sys.fcntl(owner_pidfd, sys.F_GETFD) < 0)) owner_pidfd = -1;
    if (owner_pidfd >= 0) _ = sys.setCloexec(owner_pidfd);
    if (owner_pid <= 0 or owner_fd < 0 or sys.fcntl(owner_fd, sys.F_GETFD) < 0) {
        _ = sys.writeFull(2, "libforks-server: started by libforks_start_ex, not by hand\n");
        return 2;
    }
    // The C library's allocator initializes itself on first use (arena
    // setup, a brk): done once here, in a process with one thread, every
    // child that mallocs (dlopen does) inherits it ready instead of paying
    // for it on its own copy.
    // (doNotOptimizeAway: the compiler may drop a malloc/free pair.)
    const block = sys.malloc(64);
    std.mem.doNotOptimizeAway(block);
    sys.free(block);
    // The server starts with every signal blocked (see server.main).
    var old: sys.sigset_t = undefined;
    sys.blockAllSignals(&old);
    server.main(owner_fd, owner_pid, owner_pidfd, .clean);
}
