//! The messages between clients and the server.
//!
//! A request is one message on the connection socket (a message socket, so
//! requests from many threads never interleave) with its fds attached.
//! It is answered in one of two ways:
//! - on a reply pipe: the first fd is the write end of a pipe created by
//!   the client for this request alone; the server writes the Reply there
//!   and closes it. No reply can reach the wrong thread, and an event loop
//!   can wait for one by polling its read end.
//! - on an event stream (Flags.to_events): a pipe an event loop opened once
//!   (Op.open_events) and reads for its whole life; the server writes an
//!   EventRecord there tagged with the request's tag, and, with
//!   Flags.exit_event, the child's exit later on the same stream. No fd
//!   travels with such a request (events.zig).

const std = @import("std");
const sys = @import("sys.zig");
const limits = @import("limits.zig");
const abi = @import("abi.zig");

pub const magic: u32 = 0x4b52_464c; // "LFRK"
pub const version: u16 = 1;

pub const Op = enum(u16) {
    fork = 1,
    kill_all = 2,
    wait = 3,
    wait_all = 4,
    stop = 5,
    /// One child (number: its pid; signal), only while it is in the
    /// server's table: exact, never a reused pid.
    kill = 6,
    /// The attached fd is the write end of a pipe that becomes an event
    /// stream of this connection; the answer (its handle) is the stream's
    /// first record.
    open_events = 7,
    _,
};

pub const Flags = struct {
    /// fork: a channel socket end for the child is attached.
    pub const channel: u32 = 1 << 0;
    /// fork: the write end of an exit pipe is attached.
    pub const exit_fd: u32 = 1 << 1;
    /// fork: the payload names a library and a symbol to load in the child.
    pub const symbol: u32 = 1 << 2;
    /// stop: wait for the children before replying.
    pub const wait: u32 = 1 << 3;
    /// stop: leave the children running.
    pub const server_only: u32 = 1 << 4;
    /// wait: WNOHANG.
    pub const no_hang: u32 = 1 << 5;
    /// fork: run the server's own exec entrypoint. Addresses in the
    /// caller mean nothing to a clean server, so this one goes by name.
    pub const builtin_exec: u32 = 1 << 6;
    /// fork with builtin_exec: the whole exec spec is already queued on the
    /// channel, so the server may run the program without copying itself.
    pub const spec_queued: u32 = 1 << 7;
    /// kill: the child and every process below it (tree.zig).
    pub const tree: u32 = 1 << 8;
    /// fork: the exit fd gets the child's rusage after its ExitEvent.
    pub const exit_rusage: u32 = 1 << 9;

    /// Answer on the event stream named by RequestHeader.events, tagged
    /// with RequestHeader.tag, instead of on a reply pipe.
    pub const to_events: u32 = 1 << 10;
    /// fork with to_events: the child's exit goes on the same stream, with
    /// the same tag (and its rusage).
    pub const exit_event: u32 = 1 << 11;
    /// fork with builtin_exec: the exec spec (exec.zig SpecHeader, its
    /// targets, its strings) is the payload, and its `number` fds follow
    /// the channel: the program starts from the request alone.
    pub const spec_inline: u32 = 1 << 12;
    /// fork with spec_inline and to_events, instead of channel: no control
    /// socket; the program is started in place (the owner's, on Linux)
    /// and the answer says whether it was exec'd (EventRecord.exec_error).
    pub const outcome_in_reply: u32 = 1 << 13;

    pub const all: u32 = channel | exit_fd | symbol | wait | server_only | no_hang | builtin_exec | spec_queued | tree | exit_rusage |
        to_events | exit_event | spec_inline | outcome_in_reply;
};

/// The largest exec spec carried in a request (Flags.spec_inline); larger
/// ones are sent on the program's socket.
pub const spec_inline_max = 48 * 1024;
pub const payload_max = @max(limits.max_path + limits.max_symbol, spec_inline_max);

pub const RequestHeader = extern struct {
    magic: u32 = magic,
    version: u16 = version,
    op: Op,
    flags: u32 = 0,
    /// wait and kill: the pid (-1 for any, wait only); kill_all: the signal.
    number: i32 = 0,
    /// fork: address of the entrypoint in the server's image.
    entry: u64 = 0,
    /// fork with Flags.symbol: bytes of payload ("library\x00symbol\x00").
    payload_len: u32 = 0,
    /// kill: the signal.
    signal: u32 = 0,
    /// with Flags.to_events: the requester's own, echoed in the answer.
    tag: u64 = 0,
    /// with Flags.to_events: the stream's handle (EventRecord.handle of
    /// its first record).
    events: u32 = 0,
    reserved: u32 = 0,
};

pub const Request = extern struct {
    header: RequestHeader,
    payload: [payload_max]u8 = undefined,

    pub fn bytes(request: *const Request) []const u8 {
        std.debug.assert(request.header.payload_len <= payload_max);
        return std.mem.asBytes(request)[0 .. @sizeOf(RequestHeader) + request.header.payload_len];
    }

    /// Number of fds that must travel with this request.
    pub fn fdCount(header: *const RequestHeader) usize {
        // The reply pipe, or (open_events) the stream's pipe; nothing with
        // an answer on a stream.
        var count: usize = if (header.flags & Flags.to_events != 0 and header.op != .open_events) 0 else 1;
        if (header.op == .fork) {
            if (header.flags & Flags.exit_fd != 0) count += 1;
            if (header.flags & Flags.channel != 0) count += 1;
            if (header.flags & Flags.spec_inline != 0) count += @intCast(@max(header.number, 0));
        }
        return count;
    }
};

pub const max_request_fds = 3 + limits.max_fds_per_message;

/// Why a received request is rejected; each maps to dropping the peer.
pub const DecodeError = error{ BadSize, BadMagic, BadVersion, BadOp, BadFlags, BadFdCount, BadPayload, BadNumber };

/// Checks everything the server relies on before acting on a request. The
/// server drops a peer whose message fails this, so a fuzzer may feed it
/// any bytes.
/// Returns a copy of the header: the message may sit at any alignment.
pub fn decode(message: []const u8, fd_count: usize) DecodeError!RequestHeader {
    if (message.len < @sizeOf(RequestHeader)) return error.BadSize;
    var copy: RequestHeader = undefined;
    @memcpy(std.mem.asBytes(&copy), message[0..@sizeOf(RequestHeader)]);
    const header = &copy;
    if (header.magic != magic) return error.BadMagic;
    if (header.version != version) return error.BadVersion;
    switch (header.op) {
        .fork, .kill_all, .wait, .wait_all, .stop, .kill, .open_events => {},
        _ => return error.BadOp,
    }
    if (header.flags & ~Flags.all != 0) return error.BadFlags;
    if (message.len != @sizeOf(RequestHeader) + @as(usize, header.payload_len)) return error.BadSize;
    if (header.flags & Flags.spec_inline != 0 and
        (header.op != .fork or header.number < 0 or header.number > limits.max_fds_per_message)) return error.BadNumber;
    if (fd_count != Request.fdCount(header)) return error.BadFdCount;
    switch (header.op) {
        .fork => {
            if (header.flags & Flags.spec_queued != 0 and
                (header.flags & Flags.builtin_exec == 0 or header.flags & Flags.channel == 0)) return error.BadFlags;
            // An inline spec's outcome comes on the channel, or in the
            // answer: exactly one of them.
            if (header.flags & Flags.spec_inline != 0 and
                (header.flags & Flags.builtin_exec == 0 or
                    (header.flags & Flags.channel != 0) == (header.flags & Flags.outcome_in_reply != 0) or
                    header.flags & Flags.spec_queued != 0 or header.payload_len == 0)) return error.BadFlags;
            if (header.flags & Flags.outcome_in_reply != 0 and
                (header.flags & Flags.spec_inline == 0 or header.flags & Flags.to_events == 0)) return error.BadFlags;
            if (header.flags & Flags.builtin_exec != 0) {
                if (header.flags & Flags.symbol != 0 or header.entry != 0) return error.BadFlags;
                if (header.flags & Flags.spec_inline == 0 and header.payload_len != 0) return error.BadFlags;
            } else if (header.flags & Flags.symbol != 0) {
                _ = try splitSymbolPayload(message[@sizeOf(RequestHeader)..]);
            } else {
                if (header.payload_len != 0) return error.BadPayload;
                if (header.entry == 0) return error.BadNumber;
            }
        },
        .kill_all => if (header.number < 0 or header.number >= sys.NSIG) return error.BadNumber,
        .wait => if (header.number != -1 and header.number <= 0) return error.BadNumber,
        .kill => if (header.number <= 0 or header.signal >= sys.NSIG) return error.BadNumber,
        .wait_all, .stop => {},
        .open_events => if (header.flags != 0) return error.BadFlags,
        _ => unreachable,
    }
    if (header.flags & Flags.tree != 0 and header.op != .kill) return error.BadFlags;
    // A stop is answered on a pipe: its sender then waits for the
    // server's end, which an event stream would not say.
    if (header.flags & Flags.to_events != 0 and (header.op == .stop or header.events == 0)) return error.BadFlags;
    if (header.flags & Flags.exit_event != 0 and
        (header.op != .fork or header.flags & Flags.to_events == 0 or header.flags & (Flags.exit_fd | Flags.exit_rusage) != 0)) return error.BadFlags;
    if (header.op != .fork and header.payload_len != 0) return error.BadPayload;
    return copy;
}

pub const SymbolPayload = struct {
    /// Empty: look the symbol up in the image itself.
    library: [:0]const u8,
    symbol: [:0]const u8,
};

/// "library\x00symbol\x00": both NUL-terminated, symbol not empty.
pub fn splitSymbolPayload(payload: []const u8) DecodeError!SymbolPayload {
    const library_end = std.mem.indexOfScalar(u8, payload, 0) orelse return error.BadPayload;
    if (library_end >= limits.max_path) return error.BadPayload;
    const rest = payload[library_end + 1 ..];
    const symbol_end = std.mem.indexOfScalar(u8, rest, 0) orelse return error.BadPayload;
    if (symbol_end == 0 or symbol_end >= limits.max_symbol) return error.BadPayload;
    if (symbol_end + 1 != rest.len) return error.BadPayload;
    return .{
        .library = payload[0..library_end :0],
        .symbol = rest[0..symbol_end :0],
    };
}

/// Written by the server on the request's reply pipe: libforks_Reply.
pub const Reply = abi.Reply;

/// Written on an exit fd: libforks_ExitEvent.
pub const ExitEvent = abi.ExitEvent;

/// Written on an exit fd when the fork asked for Flags.exit_rusage.
pub const ExitMessage = abi.ExitMessage;

pub const event_magic: u32 = abi.event_magic;

pub const EventKind = enum(u32) {
    /// The answer to a request: Reply's fields.
    reply = 1,
    /// A child forked with Flags.exit_event was reaped: pid, wait_status,
    /// rusage.
    exit = 2,
    _,
};

/// One record of an event stream: libforks_EventRecord (abi.zig, where
/// its size and fields are explained) with `kind` typed. Made from abi.zig's
/// declaration, so the layout is declared once.
pub const EventRecord = withKind(abi.EventRecord);

/// `C` with its `kind` field of type EventKind (same size), and no
/// declarations (C's describe the header).
fn withKind(comptime C: type) type {
    const info = @typeInfo(C).@"struct";
    var fields: [info.fields.len]std.builtin.Type.StructField = info.fields[0..].*;
    for (&fields) |*field| {
        if (std.mem.eql(u8, field.name, "kind")) field.type = EventKind;
    }
    return @Type(.{ .@"struct" = .{ .layout = .@"extern", .fields = &fields, .decls = &.{}, .is_tuple = false } });
}

comptime {
    // The typed EventRecord is libforks_EventRecord (abi.zig) field by field.
    std.debug.assert(@sizeOf(EventRecord) == @sizeOf(abi.EventRecord));
    for (@typeInfo(abi.EventRecord).@"struct".fields) |field| {
        std.debug.assert(@offsetOf(EventRecord, field.name) == @offsetOf(abi.EventRecord, field.name));
    }
    std.debug.assert(@sizeOf(RequestHeader) == 48);
    // A request must fit a default-sized socket buffer in one message.
    std.debug.assert(@sizeOf(Request) < 64 * 1024);
}

test "decode accepts a well-formed fork request" {
    const request = Request{ .header = .{ .op = .fork, .entry = 0x1000, .flags = Flags.exit_fd } };
    const header = try decode(request.bytes(), 2);
    try std.testing.expectEqual(Op.fork, header.op);
}

test "decode rejects garbage, wrong fd counts and bad numbers" {
    var zeros = [_]u8{0} ** 64;
    try std.testing.expectError(error.BadMagic, decode(&zeros, 1));
    try std.testing.expectError(error.BadSize, decode(zeros[0..3], 1));
    var request = Request{ .header = .{ .op = .fork, .entry = 0x1000 } };
    try std.testing.expectError(error.BadFdCount, decode(request.bytes(), 2));
    request.header.entry = 0;
    try std.testing.expectError(error.BadNumber, decode(request.bytes(), 1));
    const kill = Request{ .header = .{ .op = .kill_all, .number = 999 } };
    try std.testing.expectError(error.BadNumber, decode(kill.bytes(), 1));
    const wait = Request{ .header = .{ .op = .wait, .number = 0 } };
    try std.testing.expectError(error.BadNumber, decode(wait.bytes(), 1));
    const kill_reused = Request{ .header = .{ .op = .kill, .number = 0, .signal = 9 } };
    try std.testing.expectError(error.BadNumber, decode(kill_reused.bytes(), 1));
    const kill_signal = Request{ .header = .{ .op = .kill, .number = 5, .signal = 65 } };
    try std.testing.expectError(error.BadNumber, decode(kill_signal.bytes(), 1));
    const tree_on_wait = Request{ .header = .{ .op = .wait, .number = 5, .flags = Flags.tree } };
    try std.testing.expectError(error.BadFlags, decode(tree_on_wait.bytes(), 1));
    const bad_op = Request{ .header = .{ .op = @enumFromInt(77) } };
    try std.testing.expectError(error.BadOp, decode(bad_op.bytes(), 1));
}

test "the built-in exec entrypoint goes by flag, never with an address" {
    const good = Request{ .header = .{ .op = .fork, .flags = Flags.builtin_exec | Flags.channel } };
    _ = try decode(good.bytes(), 2);
    const bad = Request{ .header = .{ .op = .fork, .flags = Flags.builtin_exec, .entry = 0x1000 } };
    try std.testing.expectError(error.BadFlags, decode(bad.bytes(), 1));
}

test "event stream requests carry no fd, and only some ops may use them" {
    const fork = Request{ .header = .{ .op = .fork, .entry = 0x1000, .flags = Flags.to_events | Flags.exit_event, .events = 0x101 } };
    _ = try decode(fork.bytes(), 0);
    try std.testing.expectError(error.BadFdCount, decode(fork.bytes(), 1));
    const no_stream = Request{ .header = .{ .op = .wait, .number = 5, .flags = Flags.to_events } };
    try std.testing.expectError(error.BadFlags, decode(no_stream.bytes(), 0));
    const stop = Request{ .header = .{ .op = .stop, .flags = Flags.to_events, .events = 0x101 } };
    try std.testing.expectError(error.BadFlags, decode(stop.bytes(), 0));
    const exit_alone = Request{ .header = .{ .op = .fork, .entry = 0x1000, .flags = Flags.exit_event } };
    try std.testing.expectError(error.BadFlags, decode(exit_alone.bytes(), 1));
    const open = Request{ .header = .{ .op = .open_events } };
    _ = try decode(open.bytes(), 1);
}

test "an inline spec's outcome goes on the channel or in the answer, exactly one" {
    const inline_flags = Flags.builtin_exec | Flags.spec_inline | Flags.to_events | Flags.exit_event;
    var request = Request{ .header = .{ .op = .fork, .flags = inline_flags | Flags.outcome_in_reply, .events = 0x101, .payload_len = 1 } };
    _ = try decode(request.bytes(), 0);
    request.header.flags = inline_flags | Flags.channel;
    _ = try decode(request.bytes(), 1);
    request.header.flags = inline_flags | Flags.channel | Flags.outcome_in_reply;
    try std.testing.expectError(error.BadFlags, decode(request.bytes(), 1));
    request.header.flags = inline_flags;
    try std.testing.expectError(error.BadFlags, decode(request.bytes(), 0));
    // In the answer, so only on a stream, and only for an inline spec.
    request.header.flags = Flags.builtin_exec | Flags.spec_inline | Flags.outcome_in_reply;
    try std.testing.expectError(error.BadFlags, decode(request.bytes(), 1));
    const queued = Request{ .header = .{ .op = .fork, .flags = Flags.builtin_exec | Flags.channel | Flags.outcome_in_reply | Flags.to_events, .events = 0x101 } };
    try std.testing.expectError(error.BadFlags, decode(queued.bytes(), 1));
}

test "symbol payload must be two NUL-terminated strings" {
    const good = try splitSymbolPayload("libx.so\x00entry\x00");
    try std.testing.expectEqualStrings("libx.so", good.library);
    try std.testing.expectEqualStrings("entry", good.symbol);
    const main_image = try splitSymbolPayload("\x00entry\x00");
    try std.testing.expectEqualStrings("", main_image.library);
    try std.testing.expectError(error.BadPayload, splitSymbolPayload("libx.so\x00\x00"));
    try std.testing.expectError(error.BadPayload, splitSymbolPayload("libx.so\x00entry"));
    try std.testing.expectError(error.BadPayload, splitSymbolPayload("libx.so\x00entry\x00junk"));
}
