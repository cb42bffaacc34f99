//! libFuzzer target for the server's request decoder (tests/fuzz/run.sh).
//! The first input byte chooses how many fds "arrived" with the message,
//! the rest is the message: exactly what a hostile peer controls.

const protocol = @import("protocol.zig");

export fn libforks_fuzz_decode(data: [*]const u8, len: usize) c_int {
    if (len == 0) return 0;
    const fd_count: usize = @as(usize, data[0]) % (protocol.max_request_fds + 2);
    const header = protocol.decode(data[1..len], fd_count) catch return 0;
    // Whatever decode accepts must be safe to act on.
    if (header.op == .fork and header.flags & protocol.Flags.symbol != 0) {
        const payload = data[1..len][@sizeOf(protocol.RequestHeader)..];
        _ = protocol.splitSymbolPayload(payload) catch @panic("decode accepted a bad symbol payload");
    }
    if (protocol.Request.fdCount(&header) != fd_count) @panic("decode accepted a wrong fd count");
    return 1;
}
