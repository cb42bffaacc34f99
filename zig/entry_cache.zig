//! `{ library, symbol }` entrypoints a clean server resolves itself.
//!
//! A child that loads its own entrypoint (dlopen + dlsym, child.zig) writes
//! the loader's pages and reads its code and hash tables for the first
//! time in that address space: about 17 page faults per child, each a page
//! copy or a page-table fill. When the library is already mapped in the
//! server (the C library, or any other library the server itself uses),
//! the child would find it at the very same address, so the server looks it
//! up once and hands the child the address. RTLD_NOLOAD never maps
//! anything: no constructor of a caller's library ever runs in the server,
//! and a library the server does not have is still loaded by the child.
//!
//! Only a clean server does this. It is a fresh single-threaded process,
//! so the loader's lock is free; a snapshot server is a copy of a
//! multithreaded caller, whose loader lock another thread may have held at
//! fork, forever.
//!
//! Both answers are kept, found and not found: the server loads no library
//! after it starts, so an answer never changes, and asking again would write
//! the loader's pages (each such write after a fork costs the server a page
//! copy while the child lives).

const std = @import("std");
const sys = @import("sys.zig");
const protocol = @import("protocol.zig");

/// Distinct entrypoints remembered. Past it, new ones are loaded by the
/// child, as without the cache.
pub const max_entries = 16;
/// Longest "library\x00symbol" remembered; longer ones are loaded by the
/// child.
pub const max_key = 256;

const Entry = struct {
    key: [max_key]u8,
    key_len: usize,
    /// 0: the server does not have the library or the symbol.
    address: usize,
};

var entries: [max_entries]Entry = undefined;
var entry_count: usize = 0;

/// The entrypoint's address if the server already has its library mapped,
/// else null (the child loads it).
pub fn resolve(symbol: protocol.SymbolPayload) ?usize {
    var key_buffer: [max_key]u8 = undefined;
    const key = makeKey(&key_buffer, symbol) orelse return null;
    for (entries[0..entry_count]) |*entry| {
        if (std.mem.eql(u8, entry.key[0..entry.key_len], key)) return if (entry.address == 0) null else entry.address;
    }
    if (entry_count == max_entries) return null;
    // NOLOAD: found only if the server already has the library, which then
    // stays mapped after the lookup closes it.
    const library: ?[*:0]const u8 = if (symbol.library.len == 0) null else symbol.library.ptr;
    const found = sys.lookUpSymbol(library, symbol.symbol.ptr, sys.RTLD_NOW | sys.RTLD_LOCAL | sys.RTLD_NOLOAD);
    const address: usize = if (found) |pointer| @intFromPtr(pointer) else 0;
    const entry = &entries[entry_count];
    @memcpy(entry.key[0..key.len], key);
    entry.key_len = key.len;
    entry.address = address;
    entry_count += 1;
    std.debug.assert(entry_count <= max_entries);
    return if (address == 0) null else address;
}

/// Forgets every answer (a server started from a child of another server
/// starts from a copy of that server's memory).
pub fn reset() void {
    entry_count = 0;
}

fn makeKey(buffer: *[max_key]u8, symbol: protocol.SymbolPayload) ?[]const u8 {
    const len = symbol.library.len + 1 + symbol.symbol.len;
    if (len > max_key) return null;
    @memcpy(buffer[0..symbol.library.len], symbol.library);
    buffer[symbol.library.len] = 0;
    @memcpy(buffer[symbol.library.len + 1 ..][0..symbol.symbol.len], symbol.symbol);
    return buffer[0..len];
}

test "a key that does not fit is not cached" {
    var buffer: [max_key]u8 = undefined;
    const long = "x" ** max_key;
    try std.testing.expect(makeKey(&buffer, .{ .library = long, .symbol = "main" }) == null);
    const key = makeKey(&buffer, .{ .library = "libc.so.6", .symbol = "_exit" }).?;
    try std.testing.expectEqualStrings("libc.so.6\x00_exit", key);
}
