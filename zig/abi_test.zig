//! The header as a C compiler reads it (through Zig's translate-c, which
//! uses clang's layouts) against abi.zig: the generated header must
//! declare exactly the values and layouts the code uses. Compiled with
//! the generated header's directory on the include path (build.zig).

const std = @import("std");
const abi = @import("abi.zig");
const c = @cImport(@cInclude("libforks_ext.h"));
/// The fork-server API alone.
const api = @cImport(@cInclude("libforks.h"));

fn expectSameLayout(comptime Zig: type, comptime C: type) !void {
    try std.testing.expectEqual(@sizeOf(Zig), @sizeOf(C));
    try std.testing.expectEqual(@alignOf(Zig), @alignOf(C));
    inline for (@typeInfo(Zig).@"struct".fields) |field| {
        try std.testing.expectEqual(@offsetOf(Zig, field.name), @offsetOf(C, field.name));
        try std.testing.expectEqual(@sizeOf(field.type), @sizeOf(@FieldType(C, field.name)));
    }
}

test "the header's structs have abi.zig's layouts" {
    try expectSameLayout(abi.ServerConn, c.libforks_ServerConn);
    try expectSameLayout(abi.ExitEvent, c.libforks_ExitEvent);
    try expectSameLayout(abi.StartOptions, c.libforks_StartOptions);
    try expectSameLayout(abi.ForkRequest, c.libforks_ForkRequest);
    try expectSameLayout(abi.Reply, c.libforks_Reply);
    try expectSameLayout(abi.EventRecord, c.libforks_EventRecord);
    try expectSameLayout(abi.EventRequest, c.libforks_EventRequest);
    try expectSameLayout(abi.SpawnRequest, c.libforks_SpawnRequest);
    try std.testing.expectEqual(@sizeOf(abi.rusage), @sizeOf(c.struct_rusage));
    try std.testing.expectEqual(@as(usize, c.libforks_EXIT_MESSAGE_SIZE), @sizeOf(abi.ExitMessage));
}

test "the header's result codes and limits are abi.zig's" {
    inline for (@typeInfo(abi.Result).@"enum".fields) |field| {
        try std.testing.expectEqual(field.value, @field(c, "libforks_" ++ field.name));
    }
    inline for (abi.limits ++ abi.quotas ++ abi.modes ++ abi.kill_flags ++ abi.event_constants ++ abi.event_ops) |constant| {
        try std.testing.expectEqual(constant.value, @field(c, constant.c_name));
    }
}

test "libforks.h is the fork-server API, libforks_ext.h the binding support" {
    // The seed's functions, in libforks.h.
    inline for (.{ "libforks_start", "libforks_get_server_pid", "libforks_kill_all", "libforks_wait", "libforks_wait_all", "libforks_stop", "libforks_free_conn", "libforks_fork", "libforks_read_socket_fds", "libforks_write_socket_fds" }) |name| {
        try std.testing.expect(@hasDecl(api, name));
    }
    inline for (.{ "libforks_pipe", "libforks_socketpair", "libforks_set_nonblocking", "libforks_memfd", "libforks_doorbell_open", "libforks_watch", "libforks_reply_read", "libforks_wait_async", "libforks_fork_async", "libforks_conn_token", "libforks_events_open", "libforks_events_read", "libforks_send_event_request", "libforks_spawn_async" }) |name| {
        try std.testing.expect(!@hasDecl(api, name));
        try std.testing.expect(@hasDecl(c, name));
    }
}
