//! libforks_Result and the per-thread errno of the last failure.

const std = @import("std");
const sys = @import("sys.zig");

pub const Result = @import("abi.zig").Result;

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
