//! How a snapshot server forks its children: glibc's and musl's `_Fork()`
//! when the C library has it (glibc >= 2.34, musl >= 1.2.2), `fork()`
//! otherwise (older C libraries, macOS) and always in a clean server.
//!
//! Why: `fork()` runs the `pthread_atfork` handlers every library of the
//! process registered, around every fork. A snapshot server is a copy of
//! the caller, so it carries the caller's handlers (Bun registers a set)
//! and would run them for each child. Those handlers exist to take locks
//! before a fork and release or reset them after it, so that a child of a
//! multithreaded process does not inherit a lock another thread held. The
//! server is single-threaded, holds no lock of anyone's, and was itself
//! made by `fork()` (so the caller's handlers ran once then, and the C
//! library's internal locks were reset in it): at each of its forks every
//! such lock is free already. `_Fork()` is the same system call without
//! the handlers and without the C library's own lock dance (glibc takes
//! the malloc and stdio-list locks only when multithreaded anyway; musl's
//! `_Fork` keeps the signal blocking and the child's thread descriptor,
//! tid included, so `raise()` still works). The child may therefore still
//! use malloc, stdio and dlopen, as after `fork()`. What it no longer gets
//! is a child-side handler's reset of state of its own (a library that
//! reseeds a random generator in one sees the state the server had); those
//! already ran once, in the server.
//!
//! musl's per-FILE locks: its `fork()` does not reset them and neither
//! does `_Fork()`; a stream is locked in the server only if another thread
//! held it when the server was forked, which stdio_locks.zig prevents for
//! the standard streams. Nothing changes there.
//!
//! The symbol is looked up in the caller (libforks_start, which may use
//! the loader freely) before the fork that makes the server: in the
//! server, a copy of a multithreaded process, dlsym is not allowed
//! (ARCHITECTURE.md, post-fork rules). `_Fork` is looked up, not linked,
//! because the library asks for glibc 2.17 only.

const sys = @import("sys.zig");

const ForkFn = *const fn () callconv(.c) sys.pid_t;

/// `_Fork` of this process's C library, or null. Inherited by a snapshot
/// server; a clean server, a fresh exec'd process, starts with null.
var underscore_fork: ?ForkFn = null;

/// In the caller, before forking a snapshot server.
pub fn lookUp() void {
    underscore_fork = if (sys.dlsym(sys.RTLD_DEFAULT, "_Fork")) |address| @ptrCast(@alignCast(address)) else null;
}

/// Whether the server forks its children with `_Fork` (tests, bench).
pub fn usesUnderscoreFork() bool {
    return underscore_fork != null;
}

/// In the server: fork one child, with errno set on failure.
pub fn fork() sys.pid_t {
    if (underscore_fork) |f| return f();
    return sys.fork();
}
