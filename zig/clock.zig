//! The server's clock: monotonic milliseconds, for its deadlines.

const sys = @import("sys.zig");

const timespec = extern struct { sec: i64, nsec: i64 };

extern "c" fn clock_gettime(clock: c_int, ts: *timespec) c_int;

const CLOCK_MONOTONIC: c_int = if (sys.is_linux) 1 else 6;

pub fn nowMs() i64 {
    var ts: timespec = undefined;
    _ = clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.sec * 1000 + @divTrunc(ts.nsec, 1_000_000);
}
