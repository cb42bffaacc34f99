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
/// file (space-separated).
pub fn visitChildrenFile(path: [*:0]const u8, context: anytype, comptime visit: fn (@TypeOf(context), sys.pid_t) void) void {
    const Pids = struct {
        fn each(inner: @TypeOf(context), word: []const u8) void {
            if (std.fmt.parseInt(sys.pid_t, word, 10)) |pid| visit(inner, pid) else |_| {}
        }
    };
    visitPieces(path, " \n", context, Pids.each);
}

/// visit(context, line) for every line of a file.
pub fn visitLines(path: [*:0]const u8, context: anytype, comptime visit: fn (@TypeOf(context), []const u8) void) void {
    visitPieces(path, "\n", context, visit);
}

/// visit(context, piece) for every piece of a file that ends in one of
/// `separators`, read in pieces of a buffer on the stack (the server
/// allocates nothing): a piece longer than the buffer is skipped, and so
/// is what follows the last separator.
fn visitPieces(path: [*:0]const u8, comptime separators: []const u8, context: anytype, comptime visit: fn (@TypeOf(context), []const u8) void) void {
    const fd = sys.open(path, sys.O_RDONLY | sys.O_CLOEXEC);
    if (fd < 0) return;
    defer _ = sys.close(fd);
    var buf: [8192]u8 = undefined;
    var kept: usize = 0; // the start of a piece cut by the previous read
    var skipping = false;
    while (true) {
        const n = sys.read(fd, buf[kept..].ptr, buf.len - kept);
        if (n < 0 and sys.errno() == sys.E.INTR) continue;
        if (n <= 0) break;
        const end = kept + @as(usize, @intCast(n));
        var start: usize = 0;
        while (std.mem.indexOfAnyPos(u8, buf[0..end], start, separators)) |separator| {
            if (!skipping) visit(context, buf[start..separator]);
            skipping = false;
            start = separator + 1;
        }
        kept = end - start;
        std.mem.copyForwards(u8, buf[0..kept], buf[start..end]);
        if (kept == buf.len) {
            kept = 0;
            skipping = true;
        }
    }
}

test "a children file's pids are visited across reads, a piece too long for the buffer skipped" {
    if (!sys.linux_paths) return error.SkipZigTest;
    var pipe: [2]sys.fd_t = undefined;
    try std.testing.expectEqual(@as(c_int, 0), sys.pipeCloexec(&pipe));
    defer _ = sys.close(pipe[0]);
    // 5000 pids of 5 digits: the list crosses the buffer's end several
    // times; then a piece of 9001 digits (whose tail alone would read as
    // pid 5), then two more pids.
    var expected: u64 = 0;
    var word: [6]u8 = undefined;
    for (0..5000) |i| {
        const pid = 10000 + i;
        expected += pid;
        const text = try std.fmt.bufPrint(&word, "{d} ", .{pid});
        try std.testing.expectEqual(@as(c_int, 0), sys.writeFull(pipe[1], text));
    }
    const long = [_]u8{'0'} ** 9000;
    try std.testing.expectEqual(@as(c_int, 0), sys.writeFull(pipe[1], &long));
    try std.testing.expectEqual(@as(c_int, 0), sys.writeFull(pipe[1], "5"));
    try std.testing.expectEqual(@as(c_int, 0), sys.writeFull(pipe[1], " 42 43\n"));
    expected += 42 + 43;
    _ = sys.close(pipe[1]);

    const Sum = struct {
        total: u64 = 0,
        count: usize = 0,
        fn add(sum: *@This(), pid: sys.pid_t) void {
            sum.total += @intCast(pid);
            sum.count += 1;
        }
    };
    var sum = Sum{};
    var path_buf: [64]u8 = undefined;
    const path = try std.fmt.bufPrintZ(&path_buf, "/proc/self/fd/{d}", .{pipe[0]});
    visitChildrenFile(path, &sum, Sum.add);
    try std.testing.expectEqual(@as(usize, 5002), sum.count);
    try std.testing.expectEqual(expected, sum.total);
}
