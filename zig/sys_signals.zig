//! The signal declarations of sys.zig (which re-exports them, so callers
//! write sys.SIGTERM): numbers, masks and sigaction as each C library lays
//! them out. Every call here is async-signal-safe.

const std = @import("std");
const builtin = @import("builtin");
const is_linux = builtin.os.tag == .linux;

pub const SIGHUP: c_int = 1;
pub const SIGINT: c_int = 2;
pub const SIGQUIT: c_int = 3;
pub const SIGKILL: c_int = 9;
pub const SIGPIPE: c_int = 13;
pub const SIGTERM: c_int = 15;
pub const SIGCHLD: c_int = if (is_linux) 17 else 20;
pub const SIGSTOP: c_int = if (is_linux) 19 else 17;
/// One past the highest signal number.
pub const NSIG: c_int = if (is_linux) 65 else 32;

pub const SIG_SETMASK: c_int = if (is_linux) 2 else 3;
pub const SA_RESTART: c_int = if (is_linux) 0x10000000 else 0x2;
pub const SA_NOCLDSTOP: c_int = if (is_linux) 1 else 0x8;

pub const sigset_t = if (is_linux) extern struct { bits: [16]u64 } else u32;

pub const Handler = ?*const fn (c_int) callconv(.c) void;
pub const SIG_DFL: usize = 0;
pub const SIG_IGN: usize = 1;

/// struct sigaction as glibc, musl (both: handler, mask, flags, restorer)
/// and macOS (handler, mask, flags) lay it out.
pub const Sigaction = if (is_linux) extern struct {
    handler: usize,
    mask: sigset_t,
    flags: c_int,
    restorer: usize = 0,
} else extern struct {
    handler: usize,
    mask: sigset_t,
    flags: c_int,
};

pub extern "c" fn sigaction(sig: c_int, act: ?*const Sigaction, old: ?*Sigaction) c_int;
pub extern "c" fn sigemptyset(set: *sigset_t) c_int;
pub extern "c" fn sigfillset(set: *sigset_t) c_int;
pub extern "c" fn pthread_sigmask(how: c_int, set: ?*const sigset_t, old: ?*sigset_t) c_int;

pub fn setDisposition(sig: c_int, handler: usize, flags: c_int) c_int {
    var action: Sigaction = undefined;
    @memset(std.mem.asBytes(&action), 0);
    action.handler = handler;
    action.flags = flags;
    _ = sigfillset(&action.mask);
    return sigaction(sig, &action, null);
}

pub fn blockAllSignals(old: *sigset_t) void {
    var all: sigset_t = undefined;
    _ = sigfillset(&all);
    _ = pthread_sigmask(SIG_SETMASK, &all, old);
}

pub fn setSignalMask(mask: *const sigset_t) void {
    _ = pthread_sigmask(SIG_SETMASK, mask, null);
}

pub fn unblockAllSignals() void {
    var none: sigset_t = undefined;
    _ = sigemptyset(&none);
    _ = pthread_sigmask(SIG_SETMASK, &none, null);
}
