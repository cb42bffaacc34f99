//! What the server reads from /proc: a process's state and parent, the
//! children lists, and files read line by line in pieces (no allocation).

const std = @import("std");
const sys = @import("sys.zig");

/// Field 3 of /proc/<pid>/stat (R, S, Z...), 0 if unreadable.
pub fn processState(pid: sys.pid_t) u8 {
    var stat: Stat = undefined;
    return if (readStat(pid, &stat)) stat.state else 0;
}

pub const Stat = struct { state: u8, ppid: sys.pid_t };

pub fn readStat(pid: sys.pid_t, out: *Stat) bool {
    var path_buf: [64]u8 = undefined;
    const path = std.fmt.bufPrintZ(&path_buf, "/proc/{d}/stat", .{pid}) catch return false;
    var buf: [512]u8 = undefined;
    const n = readSmallFile(path, &buf) orelse return false;
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so
    // parse from the last ')'.
    const text = buf[0..n];
    const close_paren = std.mem.lastIndexOfScalar(u8, text, ')') orelse return false;
    var fields = std.mem.tokenizeScalar(u8, text[close_paren + 1 ..], ' ');
    const state_field = fields.next() orelse return false;
    const ppid_field = fields.next() orelse return false;
    out.state = state_field[0];
    out.ppid = std.fmt.parseInt(sys.pid_t, ppid_field, 10) catch return false;
    return true;
}

pub fn readSmallFile(path: [*:0]const u8, buf: []u8) ?usize {
    const fd = sys.open(path, sys.O_RDONLY | sys.O_CLOEXEC);
    if (fd < 0) return null;
    defer _ = sys.close(fd);
    const n = sys.readFull(fd, buf);
    if (n < 0) return null;
    return @intCast(n);
}

/// Calls visit(context, pid) for every pid listed in a /proc ".../children"
/// file (space-separated), reading it in pieces.
pub fn visitChildrenFile(path: [*:0]const u8, context: anytype, comptime visit: fn (@TypeOf(context), sys.pid_t) void) void {
    const fd = sys.open(path, sys.O_RDONLY | sys.O_CLOEXEC);
    if (fd < 0) return;
    defer _ = sys.close(fd);
    var buf: [4096]u8 = undefined;
    var kept: usize = 0; // digits of a number cut by the previous read
    while (true) {
        const n = sys.read(fd, buf[kept..].ptr, buf.len - kept);
        if (n < 0 and sys.errno() == sys.E.INTR) continue;
        if (n <= 0) break;
        const end = kept + @as(usize, @intCast(n));
        var start: usize = 0;
        var i: usize = 0;
        while (i < end) : (i += 1) {
            if (buf[i] != ' ' and buf[i] != '\n') continue;
            if (i > start) {
                if (std.fmt.parseInt(sys.pid_t, buf[start..i], 10)) |pid| visit(context, pid) else |_| {}
            }
            start = i + 1;
        }
        kept = end - start;
        std.mem.copyForwards(u8, buf[0..kept], buf[start..end]);
        if (kept == buf.len) kept = 0; // not a pid list
    }
}

/// visit(context, line) for every line of a file, read in pieces; lines
/// longer than the buffer are skipped.
pub fn visitLines(path: [*:0]const u8, context: anytype, comptime visit: fn (@TypeOf(context), []const u8) void) void {
    const fd = sys.open(path, sys.O_RDONLY | sys.O_CLOEXEC);
    if (fd < 0) return;
    defer _ = sys.close(fd);
    var buf: [8192]u8 = undefined;
    var kept: usize = 0;
    var skipping = false;
    while (true) {
        const n = sys.read(fd, buf[kept..].ptr, buf.len - kept);
        if (n < 0 and sys.errno() == sys.E.INTR) continue;
        if (n <= 0) break;
        const end = kept + @as(usize, @intCast(n));
        var start: usize = 0;
        while (std.mem.indexOfScalarPos(u8, buf[0..end], start, '\n')) |newline| {
            if (!skipping) visit(context, buf[start..newline]);
            skipping = false;
            start = newline + 1;
        }
        kept = end - start;
        std.mem.copyForwards(u8, buf[0..kept], buf[start..end]);
        if (kept == buf.len) {
            kept = 0;
            skipping = true;
        }
    }
}
