//! Dynamic loading, memory and threads: the C library calls of sys.zig
//! (which re-exports them) that the server's loop never makes: the client
//! side, the clean server's entrypoint lookup, and a child before fork
//! uses them.

const std = @import("std");
const builtin = @import("builtin");
const is_linux = builtin.os.tag == .linux;

// ---------------------------------------------------------------- loading

pub const RTLD_NOW: c_int = 2;
pub const RTLD_LOCAL: c_int = if (is_linux) 0 else 4;
/// The same value in glibc and musl.
pub const RTLD_NOLOAD: c_int = if (is_linux) 4 else 0x10;
pub extern "c" fn dlopen(path: ?[*:0]const u8, mode: c_int) ?*anyopaque;
pub extern "c" fn dlsym(handle: ?*anyopaque, symbol: [*:0]const u8) ?*anyopaque;
pub extern "c" fn dlclose(handle: *anyopaque) c_int;
pub extern "c" fn dlerror() ?[*:0]const u8;

pub const RTLD_DEFAULT: ?*anyopaque = if (is_linux) null else @ptrFromInt(@as(usize, @bitCast(@as(isize, -2))));

/// The address `symbol` has in `library` (null: this image and what it
/// loaded), opened with dlopen `mode` just for the lookup and closed again;
/// null if either is not found. The address stays valid only while
/// something else keeps the library loaded.
pub fn lookUpSymbol(library: ?[*:0]const u8, symbol: [*:0]const u8, mode: c_int) ?*anyopaque {
    const path = library orelse return dlsym(RTLD_DEFAULT, symbol);
    const handle = dlopen(path, mode) orelse return null;
    defer _ = dlclose(handle);
    return dlsym(handle, symbol);
}

// ---------------------------------------------------------------- memory

pub const PROT_READ: c_int = 1;
pub const PROT_WRITE: c_int = 2;
pub const MAP_PRIVATE: c_int = 2;
pub const MAP_ANONYMOUS: c_int = if (is_linux) 0x20 else 0x1000;
pub const MAP_FAILED: usize = std.math.maxInt(usize);
pub extern "c" fn mmap(addr: ?*anyopaque, len: usize, prot: c_int, flags: c_int, fd: c_int, offset: i64) usize;

// ---------------------------------------------------------------- threads

extern "c" fn sysconf(name: c_int) c_long;
const sc_pagesize: c_int = if (is_linux) 30 else 29;
const sc_thread_stack_min: c_int = if (is_linux) 75 else 93;

/// A thread stack of at least `wanted` bytes that pthread_attr_setstacksize
/// accepts on this system: never below the C library's minimum, which is
/// known only at run time (aarch64 glibc's PTHREAD_STACK_MIN is 128 KiB,
/// x86-64 glibc's 16 KiB, musl's 2 KiB) and rounded up to whole pages
/// (macOS refuses other sizes). std.Thread.spawn asserts that the size was
/// accepted, so a size below the minimum would abort the host.
pub fn threadStackSize(wanted: usize) usize {
    const minimum = sysconf(sc_thread_stack_min);
    const page = sysconf(sc_pagesize);
    var size = wanted;
    if (minimum > 0) size = @max(size, @as(usize, @intCast(minimum)));
    if (page > 0) size = std.mem.alignForward(usize, size, @as(usize, @intCast(page)));
    return size;
}

pub extern "c" fn malloc(size: usize) ?*anyopaque;
pub extern "c" fn free(ptr: ?*anyopaque) void;
