//! The errors inner modules return. A failure is a Zig error (abi.Error:
//! one per libforks_Result) with errno set to what the caller should see;
//! root.zig, the C boundary, turns it into a libforks_Result and records
//! errno for libforks_last_errno, in one place.
//!
//! errno carries the detail from the failing call to the boundary, so
//! cleanup on an error path uses the *KeepErrno calls of sys.zig.

const sys = @import("sys.zig");
const abi = @import("abi.zig");

pub const Result = abi.Result;
pub const Error = abi.Error;

/// `err` with errno set to `error_number`: for failures that are not the
/// errno of a call just made (a bad argument, a server's answer).
pub fn withErrno(err: Error, error_number: c_int) Error {
    sys.setErrno(error_number);
    return err;
}

/// A bad argument: INVALID_ARGUMENT with errno EINVAL.
pub fn invalid() Error {
    return withErrno(error.INVALID_ARGUMENT, sys.E.INVAL);
}

/// The failing Result the server (or a start-up announcement) sent, as an
/// error with its errno; a code this version does not know is a protocol
/// error.
pub fn fromReply(result: i32, error_number: c_int) Error {
    const err = abi.errorOf(@enumFromInt(result)) orelse return withErrno(error.PROTOCOL_ERROR, 0);
    return withErrno(err, error_number);
}
