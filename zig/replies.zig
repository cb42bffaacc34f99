//! Where the server's answers go: a request's own reply pipe, or the
//! requester's event stream (events.zig), tagged.

const std = @import("std");
const sys = @import("sys.zig");
const protocol = @import("protocol.zig");
const write_end = @import("write_end.zig");
const events = @import("events.zig");
const poller = @import("poller.zig");
const Result = @import("result.zig").Result;

/// Poller keys of event streams: this bit and the stream's slot.
pub const key_stream: u64 = 1 << 60;
pub const no_stream = std.math.maxInt(u16);

pub const ReplyTo = struct {
    /// An adopted reply pipe (write_end.zig), or -1.
    fd: sys.fd_t = -1,
    /// Else an event stream's slot, and the request's tag.
    stream: u16 = no_stream,
    tag: u64 = 0,
    /// A wait answered later: its record was owed, not an immediate answer
    /// (events.zig counts only those against a peer's budget).
    deferred: bool = false,

    pub fn pipe(fd: sys.fd_t) ReplyTo {
        return .{ .fd = fd };
    }

    pub fn none() ReplyTo {
        return .{};
    }
};

/// A reply that does not fit a reply pipe (a requester that filled its
/// own pipe) is dropped: the pipe is closed, so the requester reads what
/// it wrote, then end-of-file. On a stream nothing is dropped.
pub fn reply(to: ReplyTo, answer: protocol.Reply) void {
    if (to.fd >= 0) {
        _ = write_end.put(to.fd, std.mem.asBytes(&answer));
        _ = sys.close(to.fd);
        return;
    }
    if (to.stream == no_stream) return;
    const record = protocol.EventRecord{
        .kind = .reply,
        .tag = to.tag,
        .result = answer.result,
        .error_number = answer.error_number,
        .pid = answer.pid,
        .wait_status = answer.wait_status,
        .rusage = answer.rusage,
    };
    putRecord(to.stream, &record, !to.deferred);
}

/// The answer to a spawn whose outcome comes in it
/// (protocol.Flags.outcome_in_reply, always on a stream): the pid, and
/// whether the program was exec'd (error_number 0) or which step failed.
pub fn replySpawned(to: ReplyTo, pid: sys.pid_t, failed_step: i32, error_number: i32) void {
    std.debug.assert(to.fd < 0 and to.stream != no_stream and pid > 0);
    const record = protocol.EventRecord{
        .kind = .reply,
        .tag = to.tag,
        .result = @intFromEnum(Result.OK),
        .pid = pid,
        .exec_step = if (error_number != 0) failed_step else 0,
        .exec_error = error_number,
    };
    putRecord(to.stream, &record, !to.deferred);
}

pub fn replyError(to: ReplyTo, result: Result, error_number: c_int) void {
    reply(to, .{ .result = @intFromEnum(result), .error_number = error_number });
}

/// Writes or queues a record; a stream that starts a backlog is watched
/// for OUT until it drains (server.zig calls flushStream then).
pub fn putRecord(slot: usize, record: *const protocol.EventRecord, immediate: bool) void {
    events.put(slot, record, immediate);
    if (events.needsOut(slot)) {
        poller.modify(events.fdOf(slot), key_stream | slot, poller.OUT);
        events.setWatchingOut(slot, true);
    }
}

/// The stream is writable (or failed): writes its backlog; closes it when
/// its reader is gone. Returns whether it is still open.
pub fn flushStream(slot: usize, failed: bool) bool {
    if (failed or !events.flush(slot)) {
        closeStream(slot);
        return false;
    }
    if (events.backlog(slot) == 0) {
        // Errors and hang-ups are still reported: a reader that goes
        // while nothing is queued closes the stream too.
        poller.modify(events.fdOf(slot), key_stream | slot, 0);
        events.setWatchingOut(slot, false);
    }
    return true;
}

pub fn closeStream(slot: usize) void {
    if (events.fdOf(slot) < 0) return;
    poller.remove(events.fdOf(slot));
    events.close(slot);
}
