//! The header publishes the limits as LIBFORKS_MAX_*: they must be the
//! numbers the code enforces.

const std = @import("std");
const limits = @import("limits.zig");

const header = @embedFile("libforks_h");

fn published(comptime name: []const u8) !u64 {
    const key = "#define " ++ name ++ " ";
    const at = std.mem.indexOf(u8, header, key) orelse return error.MissingDefine;
    const rest = std.mem.trimLeft(u8, header[at + key.len ..], " ");
    const end = std.mem.indexOfAny(u8, rest, " \n/") orelse rest.len;
    return std.fmt.parseInt(u64, rest[0..end], 10);
}

test "header limits match limits.zig" {
    try std.testing.expectEqual(@as(u64, limits.max_children), try published("LIBFORKS_MAX_CHILDREN"));
    try std.testing.expectEqual(@as(u64, limits.max_pending), try published("LIBFORKS_MAX_PENDING"));
    try std.testing.expectEqual(@as(u64, limits.max_exit_records), try published("LIBFORKS_MAX_EXIT_RECORDS"));
    try std.testing.expectEqual(@as(u64, limits.max_path), try published("LIBFORKS_MAX_PATH"));
    try std.testing.expectEqual(@as(u64, limits.max_symbol), try published("LIBFORKS_MAX_SYMBOL"));
    try std.testing.expectEqual(@as(u64, limits.max_fds_per_message), try published("LIBFORKS_MAX_FDS"));
    try std.testing.expectEqual(@as(u64, limits.max_share_tokens), try published("LIBFORKS_MAX_SHARE_TOKENS"));
    try std.testing.expectEqual(@as(u64, limits.max_children_per_peer), try published("LIBFORKS_MAX_CHILDREN_PER_PEER"));
    try std.testing.expectEqual(@as(u64, limits.owner_reserved_children), try published("LIBFORKS_OWNER_RESERVED_CHILDREN"));
    try std.testing.expectEqual(@as(u64, limits.max_pending_per_peer), try published("LIBFORKS_MAX_PENDING_PER_PEER"));
    try std.testing.expectEqual(@as(u64, limits.owner_reserved_pending), try published("LIBFORKS_OWNER_RESERVED_PENDING"));
    try std.testing.expectEqual(@as(u64, limits.max_exit_records_per_peer), try published("LIBFORKS_MAX_EXIT_RECORDS_PER_PEER"));
    try std.testing.expectEqual(@as(u64, limits.max_peer_exit_records), try published("LIBFORKS_MAX_PEER_EXIT_RECORDS"));
}
