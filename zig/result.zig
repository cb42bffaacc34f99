//! libforks_Result and the per-thread errno of the last failure.

const std = @import("std");
const sys = @import("sys.zig");

pub const Result = enum(c_int) {
    OK = 0,
    READ_ERROR = -1,
    WRITE_ERROR = -2,
    KILL_ERROR = -3,
    SOCKET_CREATION_ERROR = -4,
    MALLOC_ERROR = -5,
    FORK_ERROR = -6,
    WAIT_ERROR = -7,
    STOP_ERROR = -8,
    PIPE_CREATION_ERROR = -9,
    INVALID_ARGUMENT = -10,
    SERVER_GONE = -11,
    NOT_OWNER = -12,
    PROTOCOL_ERROR = -13,
    WOULD_BLOCK = -14,
    LOAD_ERROR = -15,
    EXEC_ERROR = -16,
    THREAD_ERROR = -17,
    LIMIT_ERROR = -18,
    _,

    pub fn name(result: Result) [*:0]const u8 {
        inline for (@typeInfo(Result).@"enum".fields) |field| {
            if (@intFromEnum(result) == field.value) return field.name;
        }
        return "UNKNOWN";
    }
};

/// errno of the last failed system call on this thread. Bun FFI cannot read
/// the C errno reliably (the runtime may make calls in between), so every
/// failure records it here too.
threadlocal var last_errno: c_int = 0;

pub fn lastErrno() c_int {
    return last_errno;
}

/// Records the current errno as this thread's last failure and returns
/// `result`, so call sites read `return fail(.FORK_ERROR);`.
pub fn fail(result: Result) Result {
    last_errno = sys.errno();
    return result;
}

/// Records a given errno (one that came from the server, say).
pub fn failWith(result: Result, error_number: c_int) Result {
    last_errno = error_number;
    sys.setErrno(error_number);
    return result;
}

pub fn clear() void {
    last_errno = 0;
}

test "every known result has its name and unknown values say so" {
    try std.testing.expectEqualStrings("FORK_ERROR", std.mem.span(Result.FORK_ERROR.name()));
    try std.testing.expectEqualStrings("LIMIT_ERROR", std.mem.span(Result.LIMIT_ERROR.name()));
    try std.testing.expectEqualStrings("UNKNOWN", std.mem.span(@as(Result, @enumFromInt(-99)).name()));
}
