//! The C library calls and constants libforks uses, declared here once so
//! every other file reads as plain POSIX. Only thin system-call wrappers
//! are used in the server and in freshly forked children: each is
//! async-signal-safe and takes no lock another thread could hold.
//!
//! This is the one namespace the other files use: the signal declarations
//! (sys_signals.zig), those for loading, memory and threads
//! (sys_runtime.zig) and macOS's kqueue (sys_kqueue.zig) live in files of
//! their own and are re-exported here.

const std = @import("std");
const builtin = @import("builtin");
const build_options = @import("build_options");
const signals = @import("sys_signals.zig");
const runtime = @import("sys_runtime.zig");
const kqueue_decls = @import("sys_kqueue.zig");

/// The system built for: these two choose constants, struct layouts and
/// C library symbols only, never behaviour.
pub const is_linux = builtin.os.tag == .linux;
pub const is_darwin = builtin.os.tag.isDarwin();

/// The one switch for behaviour. `.darwin` on macOS, and on Linux in the
/// `-Ddarwin-paths=true` build (build.zig), which takes every fallback the
/// macOS build takes so that its code runs, and is tested, here: datagram
/// sockets instead of SOCK_SEQPACKET, close-on-exec set after creation (no
/// SOCK_CLOEXEC, pipe2, MSG_CMSG_CLOEXEC), SO_NOSIGPIPE instead of
/// MSG_NOSIGNAL, socket buffers sized explicitly (XNU's defaults are 2 KiB
/// datagrams and 4 KiB queues), ENOBUFS waited out, no SO_PASSCRED, no
/// /proc, no memfd, no close_range, no pidfds, prctl or cgroups, poll(2)
/// in the server. What stays Linux's own in that build, because macOS's
/// counterpart does not exist here: the readiness thread's epoll (kqueue on
/// macOS), and the owner watch (tree.openOwnerWatch: a pidfd opened where
/// macOS registers EVFILT_PROC).
pub const Paths = enum { linux, darwin };
pub const paths: Paths = if (is_darwin or build_options.darwin_paths) .darwin else .linux;
/// Shorthand: the Linux-only facilities above are used.
pub const linux_paths = paths == .linux;

comptime {
    if (is_darwin and build_options.darwin_paths) @compileError("-Ddarwin-paths=true is a Linux build");
}

comptime {
    if (!is_linux and !is_darwin) @compileError("libforks supports Linux and macOS");
}

pub const pid_t = c_int;
pub const fd_t = c_int;
/// struct rusage (abi.zig: it is part of libforks_Reply).
pub const rusage = @import("abi.zig").rusage;

comptime {
    std.debug.assert(@sizeOf(rusage) == 144);
    std.debug.assert(@sizeOf(usize) == 8); // the six targets are 64-bit
}

// ---------------------------------------------------------------- errno

pub const E = struct {
    pub const PERM: c_int = 1;
    pub const SRCH: c_int = 3;
    pub const INTR: c_int = 4;
    pub const BADF: c_int = 9;
    pub const CHILD: c_int = 10;
    pub const AGAIN: c_int = if (is_linux) 11 else 35;
    pub const NOMEM: c_int = 12;
    pub const INVAL: c_int = 22;
    pub const MFILE: c_int = 24;
    pub const PIPE: c_int = 32;
    pub const NOSYS: c_int = if (is_linux) 38 else 78;
    pub const MSGSIZE: c_int = if (is_linux) 90 else 40;
    pub const CONNRESET: c_int = if (is_linux) 104 else 54;
    pub const NOBUFS: c_int = if (is_linux) 105 else 55;
    pub const CONNREFUSED: c_int = if (is_linux) 111 else 61;
    pub const NOTCONN: c_int = if (is_linux) 107 else 57;
    pub const NOENT: c_int = 2;
    pub const ACCES: c_int = 13;
};

extern "c" fn __errno_location() *c_int; // glibc and musl
extern "c" fn __error() *c_int; // macOS

pub fn errnoPtr() *c_int {
    return if (is_linux) __errno_location() else __error();
}

pub fn errno() c_int {
    return errnoPtr().*;
}

pub fn setErrno(value: c_int) void {
    errnoPtr().* = value;
}

// ---------------------------------------------------------------- files

pub const O_NONBLOCK: c_int = if (is_linux) 0o4000 else 0x4;
pub const O_CLOEXEC: c_int = if (is_linux) 0o2000000 else 0x1000000;
pub const O_RDONLY: c_int = 0;
pub const O_WRONLY: c_int = 1;
/// Per architecture on Linux: 0o200000 on x86-64 is O_DIRECT on arm64,
/// where opening a directory with it fails with EINVAL.
pub const O_DIRECTORY: c_int = if (is_linux) @bitCast(@as(u32, @bitCast(std.os.linux.O{ .DIRECTORY = true }))) else 0x100000;
pub const F_DUPFD_CLOEXEC: c_int = if (is_linux) 1030 else 67;
pub const F_GETFD: c_int = 1;
pub const F_SETFD: c_int = 2;
pub const F_GETFL: c_int = 3;
pub const F_SETFL: c_int = 4;
pub const FD_CLOEXEC: c_int = 1;

pub extern "c" fn read(fd: fd_t, buf: [*]u8, len: usize) isize;
pub extern "c" fn write(fd: fd_t, buf: [*]const u8, len: usize) isize;
pub extern "c" fn close(fd: fd_t) c_int;
pub extern "c" fn open(path: [*:0]const u8, flags: c_int, ...) c_int;
pub extern "c" fn openat(dir: fd_t, path: [*:0]const u8, flags: c_int, ...) c_int;
pub extern "c" fn pipe(fds: *[2]fd_t) c_int;
extern "c" fn pipe2(fds: *[2]fd_t, flags: c_int) c_int;
pub extern "c" fn fcntl(fd: fd_t, cmd: c_int, ...) c_int;
pub extern "c" fn dup2(old: fd_t, new: fd_t) c_int;
pub extern "c" fn chdir(path: [*:0]const u8) c_int;
pub extern "c" fn execve(path: [*:0]const u8, argv: [*:null]const ?[*:0]const u8, envp: [*:null]const ?[*:0]const u8) c_int;
pub extern "c" fn fflush(stream: ?*anyopaque) c_int;
extern "c" fn strlen(string: [*:0]const u8) usize;

/// A caller's C string as a slice. libc's strlen, not std.mem.span: Zig's
/// reads whole words past the terminator (harmless, but memory checkers
/// such as valgrind report it inside the caller's buffers).
pub fn cString(string: [*:0]const u8) [:0]const u8 {
    return string[0..strlen(string) :0];
}

/// close(2) that keeps errno: used on cleanup paths, where the interesting
/// errno is the one of the call that failed before.
pub fn closeKeepErrno(fd: fd_t) void {
    if (fd < 0) return;
    const saved = errno();
    _ = close(fd);
    setErrno(saved);
}

pub fn setCloexec(fd: fd_t) c_int {
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

pub fn isCloexec(fd: fd_t) bool {
    const flags = fcntl(fd, F_GETFD);
    return flags >= 0 and (flags & FD_CLOEXEC) != 0;
}

pub fn setNonblocking(fd: fd_t, on: bool) c_int {
    const flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    const wanted = if (on) flags | O_NONBLOCK else flags & ~O_NONBLOCK;
    if (wanted == flags) return 0;
    return fcntl(fd, F_SETFL, wanted);
}

/// A pipe whose both ends are close-on-exec. macOS has no pipe2: there the
/// flag is set right after; the window is harmless because libforks never
/// forks or execs concurrently with itself in the process creating pipes
/// (the server is single-threaded) and Bun spawns with posix_spawn, which
/// honours only fds marked by then.
pub fn pipeCloexec(fds: *[2]fd_t) c_int {
    if (linux_paths) return pipe2(fds, O_CLOEXEC);
    if (pipe(fds) != 0) return -1;
    if (setCloexec(fds[0]) != 0 or setCloexec(fds[1]) != 0) {
        closeKeepErrno(fds[0]);
        closeKeepErrno(fds[1]);
        return -1;
    }
    return 0;
}

/// close_range(2), Linux 5.9+: closes every fd from `first` to `last`, or
/// with CLOSE_RANGE_CLOEXEC (5.11+) marks them close-on-exec. A raw system
/// call, so it is safe in a child right after fork or vfork. False on any
/// error (an older kernel, an unknown flag).
pub const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;

pub fn closeRange(first: u32, last: u32, flags: u32) bool {
    const linux = std.os.linux;
    return linux.E.init(linux.syscall3(.close_range, first, last, flags)) == .SUCCESS;
}

/// Calls visit(context, fd) for every open fd >= 3 of this process, read
/// from /proc/self/fd with getdents64: no allocation, no opendir, so it is
/// safe right after fork. Closing or changing fds in visit is fine: the
/// entries already read are plain numbers. False where /proc is not
/// available (the caller then falls back to probing numbers).
pub fn visitOpenFds(context: anytype, comptime visit: fn (@TypeOf(context), fd_t) void) bool {
    if (!linux_paths) return false;
    const linux = std.os.linux;
    const dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return false;
    defer _ = close(dir);
    var buf: [4096]u8 align(8) = undefined;
    while (true) {
        const rc = linux.getdents64(dir, &buf, buf.len);
        if (linux.E.init(rc) != .SUCCESS) return false;
        if (rc == 0) return true;
        var offset: usize = 0;
        while (offset < rc) {
            const entry: *align(1) const linux.dirent64 = @ptrCast(&buf[offset]);
            offset += entry.reclen;
            const name = std.mem.sliceTo(@as([*:0]const u8, @ptrCast(&entry.name)), 0);
            const fd = std.fmt.parseInt(fd_t, name, 10) catch continue;
            if (fd >= 3 and fd != dir) visit(context, fd);
        }
    }
}

/// read(2) of exactly buf.len bytes, retrying EINTR and short reads.
/// Returns the number of bytes read: less than buf.len only at end-of-file.
/// -1 on error.
pub fn readFull(fd: fd_t, buf: []u8) isize {
    var done: usize = 0;
    while (done < buf.len) {
        const n = read(fd, buf.ptr + done, buf.len - done);
        if (n < 0) {
            if (errno() == E.INTR) continue;
            return -1;
        }
        if (n == 0) break;
        done += @intCast(n);
    }
    return @intCast(done);
}

/// write(2) of all of buf, retrying EINTR and short writes.
pub fn writeFull(fd: fd_t, buf: []const u8) c_int {
    var done: usize = 0;
    while (done < buf.len) {
        const n = write(fd, buf.ptr + done, buf.len - done);
        if (n < 0) {
            if (errno() == E.INTR) continue;
            return -1;
        }
        done += @intCast(n);
    }
    return 0;
}

// ---------------------------------------------------------------- sockets

pub const AF_UNIX: c_int = 1;
pub const SOCK_STREAM: c_int = 1;
pub const SOCK_DGRAM: c_int = 2;
pub const SOCK_SEQPACKET: c_int = 5;
pub const SOCK_CLOEXEC: c_int = if (linux_paths) 0o2000000 else 0;
pub const SOL_SOCKET: c_int = if (is_linux) 1 else 0xffff;
pub const SCM_RIGHTS: c_int = 1;
pub const SO_NOSIGPIPE: c_int = 0x1022; // macOS only (emulated by tests/darwin-paths on Linux)
pub const SO_PASSCRED: c_int = 16; // Linux only
pub const SO_SNDBUF: c_int = if (is_linux) 7 else 0x1001;
pub const SO_RCVBUF: c_int = if (is_linux) 8 else 0x1002;
pub const SHUT_RDWR: c_int = 2;

pub const MSG_TRUNC: c_int = if (is_linux) 0x20 else 0x10;
pub const MSG_CTRUNC: c_int = if (is_linux) 0x8 else 0x20;
pub const MSG_DONTWAIT: c_int = if (is_linux) 0x40 else 0x80;
pub const MSG_NOSIGNAL: c_int = if (linux_paths) 0x4000 else 0;
pub const MSG_CMSG_CLOEXEC: c_int = if (linux_paths) 0x40000000 else 0;

/// Message sockets keep one request per sendmsg, which is what lets many
/// threads share one connection without a lock. macOS has no AF_UNIX
/// SOCK_SEQPACKET; its datagram socket pairs keep boundaries too.
pub const message_socket_type: c_int = if (linux_paths) SOCK_SEQPACKET else SOCK_DGRAM;

pub const iovec = extern struct {
    base: ?*anyopaque,
    len: usize,
};

pub const msghdr = extern struct {
    name: ?*anyopaque = null,
    namelen: u32 = 0,
    iov: [*]iovec,
    iovlen: if (is_linux) usize else c_int,
    control: ?*anyopaque,
    controllen: if (is_linux) usize else u32,
    flags: c_int = 0,
};

pub const cmsghdr = extern struct {
    len: if (is_linux) usize else u32,
    level: c_int,
    type: c_int,
};

pub extern "c" fn socketpair(domain: c_int, kind: c_int, protocol: c_int, fds: *[2]fd_t) c_int;
const libc = struct {
    extern "c" fn sendmsg(fd: fd_t, msg: *const msghdr, flags: c_int) isize;
};

/// sendmsg(2). On musl it is the system call itself: musl up to 1.2.3
/// copies control data into a 1,024-byte buffer (to clear the padding of
/// its 64-bit struct layout) and fails with ENOMEM beyond it, and 253 fds
/// need 1,032 bytes. msghdr and cmsghdr here already have the kernel's
/// layout, so nothing needs copying.
pub fn sendmsg(fd: fd_t, msg: *const msghdr, flags: c_int) isize {
    if (!(is_linux and builtin.abi.isMusl())) return libc.sendmsg(fd, msg, flags);
    const linux = std.os.linux;
    const rc = linux.sendmsg(fd, @ptrCast(msg), @bitCast(flags));
    const signed: isize = @bitCast(rc);
    if (signed < 0 and signed > -4096) {
        setErrno(@intCast(-signed));
        return -1;
    }
    return signed;
}
pub extern "c" fn recvmsg(fd: fd_t, msg: *msghdr, flags: c_int) isize;
pub extern "c" fn shutdown(fd: fd_t, how: c_int) c_int;
pub extern "c" fn setsockopt(fd: fd_t, level: c_int, name: c_int, value: ?*const anyopaque, len: u32) c_int;

/// darwin paths: the buffers of every datagram socket pair libforks makes.
/// XNU's defaults, a 2,048-byte datagram at most (a longer one fails with
/// EMSGSIZE) and 4,096 bytes queued per receiver (then ENOBUFS), fit
/// neither a fork request naming a symbol (protocol.Request, 5,152
/// bytes), an exec-spec chunk (exec.zig, 32 KiB), a channel part
/// (src/channel-framing.ts, 60 KiB and its header), nor more than a few
/// pipelined requests; SO_SNDBUF raises the first per sending socket, SO_RCVBUF the
/// second per receiving one, within XNU's sb_max (about 7 MiB).
pub const datagram_max: c_int = 64 * 1024;
pub const datagram_queue: c_int = 256 * 1024;

/// A close-on-exec AF_UNIX socket pair of `kind`. On macOS SIGPIPE is
/// suppressed per socket, as MSG_NOSIGNAL does not exist there, and a
/// datagram pair gets buffers that hold what libforks sends on it.
pub fn socketpairCloexec(kind: c_int, fds: *[2]fd_t) c_int {
    if (socketpair(AF_UNIX, kind | SOCK_CLOEXEC, 0, fds) != 0) return -1;
    if (!linux_paths) {
        const one: c_int = 1;
        for (fds) |fd| {
            if (setCloexec(fd) != 0 or setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, @sizeOf(c_int)) != 0 or
                (kind == SOCK_DGRAM and (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &datagram_max, @sizeOf(c_int)) != 0 or
                    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &datagram_queue, @sizeOf(c_int)) != 0)))
            {
                closeKeepErrno(fds[0]);
                closeKeepErrno(fds[1]);
                return -1;
            }
        }
    }
    return 0;
}

const timespec = extern struct { sec: i64, nsec: i64 };
extern "c" fn nanosleep(wanted: *const timespec, left: ?*timespec) c_int;

/// Sleeps `ms` milliseconds (async-signal-safe; an interrupted sleep just
/// ends sooner).
pub fn sleepMs(ms: u32) void {
    const wanted = timespec{ .sec = ms / 1000, .nsec = @as(i64, ms % 1000) * 1_000_000 };
    _ = nanosleep(&wanted, null);
}

// ---------------------------------------------------------------- processes

pub const WNOHANG: c_int = 1;

pub extern "c" fn fork() pid_t;
pub extern "c" fn _exit(code: c_int) noreturn;
pub extern "c" fn getpid() pid_t;
pub extern "c" fn getppid() pid_t;
pub extern "c" fn getuid() u32;
pub extern "c" fn getgid() u32;
pub extern "c" fn kill(pid: pid_t, sig: c_int) c_int;
pub extern "c" fn waitpid(pid: pid_t, status: ?*c_int, options: c_int) pid_t;

extern "c" fn clone(func: *const fn (?*anyopaque) callconv(.c) c_int, stack: ?*anyopaque, flags: c_int, arg: ?*anyopaque, ...) c_int;
const CLONE_VM: c_int = 0x100;
const CLONE_VFORK: c_int = 0x4000;

/// A child that shares this process's memory (CLONE_VM) and runs `func`
/// on `stack` while the calling thread waits until it execs or exits
/// (CLONE_VFORK), as posix_spawn starts one; SIGCHLD at its exit. Linux.
pub fn cloneVfork(func: *const fn (?*anyopaque) callconv(.c) c_int, stack: []align(16) u8) pid_t {
    const top = @intFromPtr(stack.ptr) + stack.len;
    return clone(func, @ptrFromInt(top), CLONE_VM | CLONE_VFORK | SIGCHLD, null);
}
pub extern "c" fn wait4(pid: pid_t, status: ?*c_int, options: c_int, usage: ?*rusage) pid_t;

pub const RLIMIT_NOFILE: c_int = if (is_linux) 7 else 8;
pub const rlimit = extern struct { cur: u64, max: u64 };
pub extern "c" fn getrlimit(resource: c_int, limit: *rlimit) c_int;
pub extern "c" fn setrlimit(resource: c_int, limit: *const rlimit) c_int;

// ---------------------------------------------------------------- polling

pub const POLLIN: c_short = 0x1;
pub const POLLOUT: c_short = 0x4;
pub const POLLERR: c_short = 0x8;
pub const POLLHUP: c_short = 0x10;
pub const POLLNVAL: c_short = 0x20;

pub const pollfd = extern struct {
    fd: fd_t,
    events: c_short,
    revents: c_short,
};

pub extern "c" fn poll(fds: [*]pollfd, count: c_uint, timeout_ms: c_int) c_int;

// macOS only (sys_kqueue.zig).
pub const Kevent = kqueue_decls.Kevent;
pub const EVFILT_READ = kqueue_decls.EVFILT_READ;
pub const EVFILT_WRITE = kqueue_decls.EVFILT_WRITE;
pub const EVFILT_PROC = kqueue_decls.EVFILT_PROC;
pub const EV_ADD = kqueue_decls.EV_ADD;
pub const EV_DELETE = kqueue_decls.EV_DELETE;
pub const EV_EOF = kqueue_decls.EV_EOF;
pub const EV_ERROR = kqueue_decls.EV_ERROR;
pub const EV_ONESHOT = kqueue_decls.EV_ONESHOT;
pub const NOTE_EXIT = kqueue_decls.NOTE_EXIT;
pub const kqueue = kqueue_decls.kqueue;
pub const kevent = kqueue_decls.kevent;

// ---------------------------------------------------------------- signals

pub const SIGHUP = signals.SIGHUP;
pub const SIGINT = signals.SIGINT;
pub const SIGQUIT = signals.SIGQUIT;
pub const SIGKILL = signals.SIGKILL;
pub const SIGPIPE = signals.SIGPIPE;
pub const SIGTERM = signals.SIGTERM;
pub const SIGCHLD = signals.SIGCHLD;
pub const SIGSTOP = signals.SIGSTOP;
pub const NSIG = signals.NSIG;
pub const SIG_SETMASK = signals.SIG_SETMASK;
pub const SA_RESTART = signals.SA_RESTART;
pub const SA_NOCLDSTOP = signals.SA_NOCLDSTOP;
pub const sigset_t = signals.sigset_t;
pub const Handler = signals.Handler;
pub const SIG_DFL = signals.SIG_DFL;
pub const SIG_IGN = signals.SIG_IGN;
pub const Sigaction = signals.Sigaction;
pub const sigaction = signals.sigaction;
pub const sigemptyset = signals.sigemptyset;
pub const sigfillset = signals.sigfillset;
pub const pthread_sigmask = signals.pthread_sigmask;
pub const setDisposition = signals.setDisposition;
pub const blockAllSignals = signals.blockAllSignals;
pub const setSignalMask = signals.setSignalMask;
pub const unblockAllSignals = signals.unblockAllSignals;

// ---------------------------------------------------------------- loading, memory, threads

pub const RTLD_NOW = runtime.RTLD_NOW;
pub const RTLD_LOCAL = runtime.RTLD_LOCAL;
pub const RTLD_NOLOAD = runtime.RTLD_NOLOAD;
pub const dlopen = runtime.dlopen;
pub const dlsym = runtime.dlsym;
pub const dlclose = runtime.dlclose;
pub const dlerror = runtime.dlerror;
pub const RTLD_DEFAULT = runtime.RTLD_DEFAULT;
pub const lookUpSymbol = runtime.lookUpSymbol;
pub const PROT_READ = runtime.PROT_READ;
pub const PROT_WRITE = runtime.PROT_WRITE;
pub const MAP_PRIVATE = runtime.MAP_PRIVATE;
pub const MAP_ANONYMOUS = runtime.MAP_ANONYMOUS;
pub const MAP_FAILED = runtime.MAP_FAILED;
pub const mmap = runtime.mmap;
pub const threadStackSize = runtime.threadStackSize;
pub const malloc = runtime.malloc;
pub const free = runtime.free;
