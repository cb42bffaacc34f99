//! How signals reach the server, and what a new child undoes.
//!
//! Linux: the server keeps every signal blocked for its whole life and
//! installs no handler. SIGCHLD and SIGTERM are read from a signalfd in
//! its poll set; every other signal (SIGPIPE from a reader that left,
//! SIGINT/SIGQUIT/SIGHUP from the terminal when the owner's Ctrl-C ends
//! it) stays pending and harmless, so the server lives long enough to
//! stop its children in order. Every disposition is the default one, so a
//! new child has nothing to reset but its mask: one sigprocmask, done
//! last, just before the entrypoint (fork(2) clears the pending set, so
//! nothing meant for the server reaches the child). No poll is
//! interrupted (EINTR) and no handler runs per exit.
//!
//! Elsewhere (macOS, no signalfd): handlers for SIGCHLD and SIGTERM write
//! a byte to the server's wake pipe, the terminal signals and SIGPIPE are
//! ignored, signals are blocked across each fork, and a new child resets
//! those dispositions before unblocking.
//!
//! Runs in the server (a copy of a possibly multithreaded process) and in
//! fresh children: async-signal-safe calls only.

const std = @import("std");
const sys = @import("sys.zig");

const use_signalfd = sys.linux_paths;

/// What the last take() found.
pub const Received = struct {
    /// A child exited (or stopped): reap.
    child: bool = false,
    /// SIGTERM: stop as if the owner were gone.
    terminate: bool = false,
};

/// The fd the poll loop waits on: the signalfd, or the wake pipe's read
/// end. -1 once lost (see lost()).
var poll_fd: sys.fd_t = -1;
/// The wake pipe's write end, for the handlers (not Linux).
var wake_write: sys.fd_t = -1;

/// Dispositions that differ from the default in the server; a new child
/// resets these (not Linux, where there are none).
const ignored_signals = [_]c_int{ sys.SIGPIPE, sys.SIGINT, sys.SIGQUIT, sys.SIGHUP };
const handled_signals = [_]c_int{ sys.SIGCHLD, sys.SIGTERM };

/// Once, at server start, with every signal blocked (the caller blocked
/// them around the fork or exec that made the server). The host's
/// handlers point into the host's code and state: none may run here, and
/// none may be inherited by children, so every disposition goes back to
/// the default. `wake_pipe`: a non-blocking pipe of the server's own.
/// False (errno set) when the signalfd cannot be made.
pub fn init(wake_pipe: [2]sys.fd_t) bool {
    var sig: c_int = 1;
    while (sig < sys.NSIG) : (sig += 1) {
        if (sig == sys.SIGKILL or sig == sys.SIGSTOP) continue;
        _ = sys.setDisposition(sig, sys.SIG_DFL, 0);
    }
    if (use_signalfd) {
        const linux = std.os.linux;
        // The kernel's sigset: bit n-1 for signal n, 8 bytes on every
        // Linux architecture the library is built for.
        const mask: u64 = bit(sys.SIGCHLD) | bit(sys.SIGTERM);
        const rc = linux.syscall4(.signalfd4, @bitCast(@as(isize, -1)), @intFromPtr(&mask), @sizeOf(u64), linux.SFD.NONBLOCK | linux.SFD.CLOEXEC);
        if (linux.E.init(rc) != .SUCCESS) {
            sys.setErrno(@intFromEnum(linux.E.init(rc)));
            return false;
        }
        poll_fd = @intCast(rc);
        return true;
    }
    poll_fd = wake_pipe[0];
    wake_write = wake_pipe[1];
    for (ignored_signals) |ignored| _ = sys.setDisposition(ignored, sys.SIG_IGN, 0);
    // No SA_NOCLDSTOP: it would stay on SIGCHLD's disposition in children.
    _ = sys.setDisposition(sys.SIGCHLD, @intFromPtr(&onSignal), sys.SA_RESTART);
    _ = sys.setDisposition(sys.SIGTERM, @intFromPtr(&onSignal), sys.SA_RESTART);
    return true;
}

fn bit(sig: c_int) u64 {
    return @as(u64, 1) << @intCast(sig - 1);
}

/// Right before the poll loop starts. Linux: signals stay blocked.
pub fn startServing() void {
    if (!use_signalfd) sys.unblockAllSignals();
}

pub fn fd() sys.fd_t {
    return poll_fd;
}

/// The fd this file made (the signalfd), for the list a new child closes.
/// The wake pipe is the server's and listed there.
pub fn forEachFd(context: anytype, comptime visit: fn (@TypeOf(context), sys.fd_t) void) void {
    if (use_signalfd and poll_fd >= 0) visit(context, poll_fd);
}

/// The fd reported an error or hang-up (the wake pipe cannot, the server
/// holds both ends; a signalfd cannot either): signals may be lost from
/// now on. The caller removes it from the poller first; the server then
/// reaps at every turn and shuts down.
pub fn lost() void {
    if (use_signalfd and poll_fd >= 0) _ = sys.close(poll_fd);
    poll_fd = -1;
}

/// What arrived since the last call; consumes it, so the level-triggered
/// poller does not report it again.
pub fn take() Received {
    var received = Received{};
    if (poll_fd < 0) return .{ .child = true };
    if (use_signalfd) {
        const linux = std.os.linux;
        // At most one of each standard signal is pending per queue
        // (process and thread): four records drain both.
        var infos: [4]linux.signalfd_siginfo = undefined;
        while (true) {
            const n = sys.read(poll_fd, @ptrCast(&infos), @sizeOf(@TypeOf(infos)));
            if (n <= 0) break;
            const count: usize = @as(usize, @intCast(n)) / @sizeOf(linux.signalfd_siginfo);
            for (infos[0..count]) |info| {
                if (info.signo == sys.SIGTERM) received.terminate = true else received.child = true;
            }
            if (count < infos.len) break;
        }
        return received;
    }
    var buf: [64]u8 = undefined;
    while (true) {
        const n = sys.read(poll_fd, &buf, buf.len);
        if (n <= 0) break;
        for (buf[0..@intCast(n)]) |byte| {
            if (byte == 't') received.terminate = true else received.child = true;
        }
    }
    return received;
}

fn onSignal(sig: c_int) callconv(.c) void {
    const saved = sys.errno();
    const byte: [1]u8 = .{if (sig == sys.SIGTERM) 't' else 'c'};
    _ = sys.write(wake_write, &byte, 1);
    sys.setErrno(saved);
}

/// Around the server's fork (not Linux): the child must not run a server
/// handler before it resets them.
pub fn blockForFork(old: *sys.sigset_t) void {
    if (!use_signalfd) sys.blockAllSignals(old);
}

pub fn restoreAfterFork(old: *const sys.sigset_t) void {
    if (!use_signalfd) sys.setSignalMask(old);
}

/// In a new child, once it no longer needs the server's state: the mask
/// (and elsewhere than Linux the server's few dispositions) back to what
/// a process starts with. Nothing is pending: fork(2) cleared it.
pub fn resetInChild() void {
    if (!use_signalfd) {
        for (ignored_signals ++ handled_signals) |sig| _ = sys.setDisposition(sig, sys.SIG_DFL, 0);
    }
    sys.unblockAllSignals();
}
