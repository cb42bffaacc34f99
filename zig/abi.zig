//! The C contract of libforks, declared once: result codes and their
//! strings, the published limits, flags and modes, and every struct a
//! caller sees. `zig build` generates from this file the marked sections
//! of lib/include/libforks.h and all of src/abi.ts (gen_abi.zig), so the
//! header, the Bun package and the code never disagree; a Zig unit test
//! (abi_test.zig) reads the header through the C compiler and compares
//! its layouts with these.
//!
//! Everything here is ABI: a value once published is never changed, and
//! result codes and struct fields are only ever appended.

const std = @import("std");

// ---------------------------------------------------------------- results

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

    /// libforks_result_string: the name without the prefix.
    pub fn name(result: Result) [*:0]const u8 {
        inline for (@typeInfo(Result).@"enum".fields) |field| {
            if (@intFromEnum(result) == field.value) return field.name;
        }
        return "UNKNOWN";
    }

    /// What the header says of each code (empty: nothing to add).
    pub fn doc(result: Result) []const u8 {
        return switch (result) {
            .OK => "No error",
            .INVALID_ARGUMENT => "a NULL pointer, bad pid, bad signal...",
            .SERVER_GONE => "the server exited or was stopped",
            .NOT_OWNER => "only the process that started the server may stop it",
            .PROTOCOL_ERROR => "a malformed message was received",
            .WOULD_BLOCK => "WNOHANG and nothing to report yet (not a failure)",
            .LOAD_ERROR => "dlopen or dlsym failed",
            .EXEC_ERROR => "a spawned program could not be started",
            .THREAD_ERROR => "the readiness thread could not be started",
            .LIMIT_ERROR => "a fixed limit of this library was reached",
            else => "",
        };
    }

    /// The seed's codes end here; the ones after it were added by this
    /// implementation.
    pub const first_added: Result = .INVALID_ARGUMENT;
};

/// The Zig error of each failing Result (every code but OK, same names):
/// inner modules return these, root.zig turns them back into a Result.
pub const Error = blk: {
    const fields = @typeInfo(Result).@"enum".fields;
    var errors: [fields.len - 1]std.builtin.Type.Error = undefined;
    var count: usize = 0;
    for (fields) |field| {
        if (field.value == 0) continue;
        errors[count] = .{ .name = field.name };
        count += 1;
    }
    break :blk @Type(.{ .error_set = &errors });
};

pub fn errorOf(result: Result) ?Error {
    inline for (@typeInfo(Result).@"enum".fields) |field| {
        if (field.value != 0 and @intFromEnum(result) == field.value) return @field(Error, field.name);
    }
    return null;
}

pub fn resultOf(err: Error) Result {
    switch (err) {
        inline else => |e| return @field(Result, @errorName(e)),
    }
}

// ---------------------------------------------------------------- limits

/// A number published as a C macro (`#define c_name value`) and in
/// src/abi.ts (`limits.ts_name`).
pub const Constant = struct {
    c_name: []const u8,
    ts_name: []const u8,
    value: i64,
    /// One line for the header; empty: none.
    doc: []const u8 = "",
};

/// Fixed limits. Requests beyond them fail with LIMIT_ERROR.
pub const limits = [_]Constant{
    .{ .c_name = "LIBFORKS_MAX_CHILDREN", .ts_name = "maxChildren", .value = 4096, .doc = "running children per server" },
    .{ .c_name = "LIBFORKS_MAX_PENDING", .ts_name = "maxPending", .value = 1024, .doc = "outstanding waits per server" },
    .{ .c_name = "LIBFORKS_MAX_EXIT_RECORDS", .ts_name = "maxExitRecords", .value = 1024, .doc = "remembered exits of the owner's children" },
    .{ .c_name = "LIBFORKS_MAX_PATH", .ts_name = "maxPath", .value = 4096, .doc = "library path for libforks_fork_symbol" },
    .{ .c_name = "LIBFORKS_MAX_SYMBOL", .ts_name = "maxSymbol", .value = 1024, .doc = "symbol name for libforks_fork_symbol" },
    .{ .c_name = "LIBFORKS_MAX_FDS", .ts_name = "maxFds", .value = 253, .doc = "fds in one message (Linux SCM_MAX_FD)" },
    .{ .c_name = "LIBFORKS_MAX_SHARE_TOKENS", .ts_name = "maxShareTokens", .value = 1024, .doc = "unattached libforks_conn_token tokens per process" },
};

/// What one child of the server may hold, and what all children together
/// leave the owner (limits.zig says how they are counted).
pub const quotas = [_]Constant{
    .{ .c_name = "LIBFORKS_MAX_CHILDREN_PER_PEER", .ts_name = "maxChildrenPerPeer", .value = 256 },
    .{ .c_name = "LIBFORKS_OWNER_RESERVED_CHILDREN", .ts_name = "ownerReservedChildren", .value = 1024 },
    .{ .c_name = "LIBFORKS_MAX_PENDING_PER_PEER", .ts_name = "maxPendingPerPeer", .value = 64 },
    .{ .c_name = "LIBFORKS_OWNER_RESERVED_PENDING", .ts_name = "ownerReservedPending", .value = 256 },
    .{ .c_name = "LIBFORKS_MAX_EXIT_RECORDS_PER_PEER", .ts_name = "maxExitRecordsPerPeer", .value = 64 },
    .{ .c_name = "LIBFORKS_MAX_PEER_EXIT_RECORDS", .ts_name = "maxPeerExitRecords", .value = 256 },
};

/// The value of a published limit or quota, by its C name.
pub fn published(comptime c_name: []const u8) i64 {
    for (limits ++ quotas) |constant| {
        if (std.mem.eql(u8, constant.c_name, c_name)) return constant.value;
    }
    @compileError("no published limit " ++ c_name);
}

// ---------------------------------------------------------------- flags

/// libforks_StartOptions.mode.
pub const modes = [_]Constant{
    .{ .c_name = "libforks_MODE_SNAPSHOT", .ts_name = "snapshot", .value = 0, .doc = "a fork of the caller (libforks_start)" },
    .{ .c_name = "libforks_MODE_CLEAN", .ts_name = "clean", .value = 1, .doc = "a fresh libforks-server program" },
};
pub const mode_snapshot: c_int = modes[0].value;
pub const mode_clean: c_int = modes[1].value;

/// libforks_kill_async's flags.
pub const kill_flags = [_]Constant{
    .{ .c_name = "LIBFORKS_KILL_TREE", .ts_name = "tree", .value = 1, .doc = "libforks_kill_async: as libforks_kill_tree" },
};
pub const kill_tree: c_int = kill_flags[0].value;

/// libforks_watch's events, and the bits of a doorbell record.
pub const watch_events = [_]Constant{
    .{ .c_name = "LIBFORKS_WATCH_READABLE", .ts_name = "readable", .value = 1 },
    .{ .c_name = "LIBFORKS_WATCH_WRITABLE", .ts_name = "writable", .value = 4 },
    .{ .c_name = "LIBFORKS_WATCH_ERROR", .ts_name = "error", .value = 8 },
    .{ .c_name = "LIBFORKS_WATCH_HANGUP", .ts_name = "hangup", .value = 16 },
};
pub const event_readable: u32 = watch_events[0].value;
pub const event_writable: u32 = watch_events[1].value;
pub const event_error: u32 = watch_events[2].value;
pub const event_hangup: u32 = watch_events[3].value;
/// A doorbell record is a little-endian u64: token | events << token_bits.
pub const doorbell_token_bits = 48;
pub const doorbell_record_size = 8;

/// libforks_read_exec_result's *failed_step_ptr.
pub const ExecStep = enum(i32) { receive_spec = 1, map_fds = 2, chdir = 3, execve = 4 };

// ---------------------------------------------------------------- structs

/// What gen_abi.zig needs to write a struct in C: its name, and per field
/// a C type where the Zig type alone does not say it, and a comment.
pub const CField = struct { c_type: ?[]const u8 = null, doc: []const u8 = "" };

/// libforks_ServerConn: passed by value, one pointer.
pub const ServerConn = extern struct {
    private: ?*anyopaque,

    pub const c_name = "libforks_ServerConn";
    pub const c_fields = .{ .private = CField{} };
};

pub const Entrypoint = *const fn (ServerConn, c_int) callconv(.c) void;

/// struct rusage as glibc, musl and macOS lay it out on 64-bit targets
/// (std.os.linux.rusage carries 128 extra reserved bytes: the kernel's
/// layout, not the C library's, so it must not be used with wait4). The
/// longs after the two timevals are in struct rusage's order.
pub const rusage = extern struct {
    utime_sec: i64,
    utime_usec: i64,
    stime_sec: i64,
    stime_usec: i64,
    maxrss: i64,
    ixrss: i64,
    idrss: i64,
    isrss: i64,
    minflt: i64,
    majflt: i64,
    nswap: i64,
    inblock: i64,
    oublock: i64,
    msgsnd: i64,
    msgrcv: i64,
    nsignals: i64,
    nvcsw: i64,
    nivcsw: i64,
};

pub const ExitEvent = extern struct {
    pid: i32,
    wait_status: i32,

    pub const c_name = "libforks_ExitEvent";
    pub const c_fields = .{
        .pid = CField{ .c_type = "pid_t", .doc = "Child process pid" },
        .wait_status = CField{ .c_type = "int", .doc = "Status returned by waitpid(2)" },
    };
};

/// An ExitEvent and the child's rusage after it, in one write, when the
/// fork asked for exit_rusage.
pub const ExitMessage = extern struct {
    event: ExitEvent,
    rusage: rusage,
};

pub const exit_message_size = Constant{
    .c_name = "libforks_EXIT_MESSAGE_SIZE",
    .ts_name = "exitMessageSize",
    .value = @sizeOf(ExitMessage),
};

pub const StartOptions = extern struct {
    size: usize,
    mode: c_int,
    server_path: ?[*:0]const u8,
    server_fd: c_int,

    pub const c_name = "libforks_StartOptions";
    pub const c_fields = .{
        .size = CField{ .doc = "sizeof(libforks_StartOptions)" },
        .mode = CField{ .doc = "libforks_MODE_*" },
        .server_path = CField{ .doc = "clean: path of the libforks-server executable shipped beside the library in lib/<platform>/" },
        .server_fd = CField{ .doc = "clean, Linux: an fd of that executable (e.g. a memfd) run with fexecve; -1 to use server_path" },
    };
};

pub const ForkRequest = extern struct {
    size: usize,
    entrypoint: ?Entrypoint,
    library: ?[*:0]const u8,
    symbol: ?[*:0]const u8,
    socket_fd: c_int,
    exit_fd: c_int,
    nonblocking: bool,
    spec_queued: bool = false,
    exit_rusage: bool = false,
    exit_event: bool = false,
    events: u32 = 0,
    tag: u64 = 0,

    pub const c_name = "libforks_ForkRequest";
    pub const c_fields = .{
        .size = CField{ .doc = "sizeof(libforks_ForkRequest)" },
        .entrypoint = CField{ .doc = "or NULL" },
        .library = CField{ .doc = "with symbol, as libforks_fork_symbol" },
        .symbol = CField{ .doc = "NULL when entrypoint is given" },
        .socket_fd = CField{ .doc = "the child's socket end, or -1" },
        .exit_fd = CField{ .doc = "write end of the exit pipe (an anonymous pipe, else INVALID_ARGUMENT in the reply), or -1" },
        .nonblocking = CField{ .doc = "WOULD_BLOCK instead of waiting when the connection's queue is full (poll libforks_conn_fd for writing, then retry)" },
        .spec_queued = CField{ .doc = "entrypoint libforks_exec_entrypoint only: the whole exec spec (at most 64 KiB of strings, 4,096 strings) is already queued on the caller's end of socket_fd. The server then starts the program as posix_spawn does (CLONE_VM | CLONE_VFORK on Linux), without copying itself: for the owner's requests only (the server waits while such a program starts); a child's is an ordinary fork." },
        .exit_rusage = CField{ .doc = "with exit_fd: the child's rusage is written right after its libforks_ExitEvent, in the same write of libforks_EXIT_MESSAGE_SIZE bytes: read both at once. The rusage is the kernel's layout, which is glibc's and macOS's struct rusage whole; musl's struct rusage declares 128 more reserved bytes after it, which are not sent." },
        .exit_event = CField{ .doc = "with events: the child's exit is a record on that stream (exit_fd must be -1)" },
        .events = CField{ .doc = "an event stream's handle (libforks_events_open), or 0: the answer is a record there, tagged with tag, and *reply_fd_ptr is set to -1" },
        .tag = CField{ .doc = "the caller's, echoed in the records" },
    };
};

/// The size callers built before exit_event, events and tag pass: still
/// accepted, those fields then 0.
pub const fork_request_v1_size = 48;

// ---------------------------------------------------------------- event streams

pub const event_constants = [_]Constant{
    .{ .c_name = "libforks_EVENT_MAGIC", .ts_name = "magic", .value = 0x5645_464c, .doc = "\"LFEV\"" },
    .{ .c_name = "libforks_EVENT_REPLY", .ts_name = "reply", .value = 1, .doc = "the answer to a request: libforks_Reply's fields" },
    .{ .c_name = "libforks_EVENT_EXIT", .ts_name = "exit", .value = 2, .doc = "a child forked with exit_event was reaped" },
    .{ .c_name = "libforks_EVENT_RECORD_SIZE", .ts_name = "recordSize", .value = 256 },
};
pub const event_magic: u32 = event_constants[0].value;

/// One record of an event stream. 256 bytes, a power of two: a pipe holds
/// a whole number of them per page, and a reader whose buffer is a
/// multiple of 256 bytes (Bun's are) never gets part of one; 16 of them
/// are PIPE_BUF, so a batch of up to 16 is written atomically.
pub const EventRecord = extern struct {
    magic: u32 = event_magic,
    kind: u32,
    tag: u64,
    result: i32 = 0,
    error_number: i32 = 0,
    pid: i32 = 0,
    wait_status: i32 = 0,
    rusage: rusage = std.mem.zeroes(rusage),
    handle: u32 = 0,
    exec_step: i32 = 0,
    exec_error: i32 = 0,
    reserved: [68]u8 = [_]u8{0} ** 68,

    pub const c_name = "libforks_EventRecord";
    pub const c_fields = .{
        .magic = CField{ .doc = "libforks_EVENT_MAGIC" },
        .kind = CField{ .doc = "libforks_EVENT_REPLY or libforks_EVENT_EXIT" },
        .tag = CField{ .doc = "the request's (an exit: its fork's)" },
        .result = CField{ .doc = "REPLY: a libforks_Result" },
        .error_number = CField{ .doc = "REPLY" },
        .pid = CField{ .doc = "REPLY: as libforks_Reply; EXIT: the child" },
        .wait_status = CField{ .doc = "REPLY (wait), EXIT" },
        .rusage = CField{ .c_type = "unsigned char[144]", .doc = "the kernel's struct rusage" },
        .handle = CField{ .doc = "the stream's first record: its handle" },
        .exec_step = CField{ .doc = "REPLY to libforks_spawn_async with socket_fd -1: the libforks_ExecStep that failed, when exec_error is not 0" },
        .exec_error = CField{ .doc = "REPLY to libforks_spawn_async with socket_fd -1: 0 once the program is exec'd, else the failed step's errno (the child exits with 127; its EXIT record follows)" },
        .reserved = CField{ .c_type = "unsigned char[68]" },
    };
};

/// libforks_EventRequest.op.
pub const event_ops = [_]Constant{
    .{ .c_name = "libforks_EVENT_OP_KILL_ALL", .ts_name = "killAll", .value = 2 },
    .{ .c_name = "libforks_EVENT_OP_WAIT", .ts_name = "wait", .value = 3 },
    .{ .c_name = "libforks_EVENT_OP_WAIT_ALL", .ts_name = "waitAll", .value = 4 },
    .{ .c_name = "libforks_EVENT_OP_KILL", .ts_name = "kill", .value = 6 },
};
pub const event_op_kill_all: c_int = event_ops[0].value;
pub const event_op_wait: c_int = event_ops[1].value;
pub const event_op_wait_all: c_int = event_ops[2].value;
pub const event_op_kill: c_int = event_ops[3].value;

/// A wait, kill or kill_all answered on an event stream.
pub const EventRequest = extern struct {
    size: usize,
    op: c_int,
    pid: i32,
    signal: c_int,
    flags: c_int,
    events: u32,
    tag: u64,

    pub const c_name = "libforks_EventRequest";
    pub const c_fields = .{
        .size = CField{ .doc = "sizeof(libforks_EventRequest)" },
        .op = CField{ .doc = "libforks_EVENT_OP_*" },
        .pid = CField{ .c_type = "pid_t", .doc = "WAIT (-1: any), KILL" },
        .signal = CField{ .doc = "KILL, KILL_ALL" },
        .flags = CField{ .doc = "WAIT: WNOHANG; KILL: LIBFORKS_KILL_TREE" },
        .events = CField{ .doc = "the stream's handle" },
        .tag = CField{},
    };
};

/// A program run from the fork request alone (libforks_spawn_async).
pub const SpawnRequest = extern struct {
    size: usize,
    strings: ?[*]const u8,
    strings_len: usize,
    argc: u32,
    envc: u32,
    has_cwd: bool,
    fds: ?[*]const c_int,
    targets: ?[*]const c_int,
    fd_count: c_int,
    socket_fd: c_int,
    events: u32,
    tag: u64,

    pub const c_name = "libforks_SpawnRequest";
    pub const c_fields = .{
        .size = CField{ .doc = "sizeof(libforks_SpawnRequest)" },
        .strings = CField{ .doc = "path, argv[0..argc), envp[0..envc), then cwd with has_cwd: each NUL-terminated, back to back" },
        .strings_len = CField{},
        .argc = CField{ .doc = "at least 1" },
        .envc = CField{},
        .has_cwd = CField{},
        .fds = CField{ .doc = "fds[i] becomes the program's targets[i]" },
        .targets = CField{},
        .fd_count = CField{ .doc = "at most LIBFORKS_MAX_FDS" },
        .socket_fd = CField{ .doc = "the child's end of the control socket, or -1 where libforks_spawn_outcome_in_answer(conn): then the answer says whether the program was exec'd (exec_error)" },
        .events = CField{ .doc = "an event stream's handle" },
        .tag = CField{},
    };
};

/// Written by the server on a request's reply pipe, and read by
/// libforks_reply_read: the wire format is the C struct.
pub const Reply = extern struct {
    result: i32,
    error_number: i32 = 0,
    pid: i32 = 0,
    wait_status: i32 = 0,
    rusage: rusage = std.mem.zeroes(rusage),

    pub const c_name = "libforks_Reply";
    pub const c_fields = .{
        .result = CField{ .doc = "a libforks_Result" },
        .error_number = CField{ .doc = "errno when result says a system call failed" },
        .pid = CField{ .doc = "waited pid (wait), child pid (fork)" },
        .wait_status = CField{ .doc = "waitpid(2) status (wait)" },
        .rusage = CField{ .c_type = "struct rusage", .doc = "the child's rusage (wait)" },
    };
};

/// The structs gen_abi.zig writes, in the order src/abi.ts lists them.
pub const structs = .{ ServerConn, ExitEvent, ExitMessage, StartOptions, ForkRequest, Reply, rusage, EventRecord, EventRequest, SpawnRequest };

comptime {
    std.debug.assert(@sizeOf(rusage) == 144);
    std.debug.assert(@sizeOf(ExitEvent) == 8);
    std.debug.assert(@offsetOf(ExitMessage, "rusage") == 8 and @sizeOf(ExitMessage) == 152);
    std.debug.assert(@offsetOf(Reply, "rusage") == 16);
    std.debug.assert(@sizeOf(ForkRequest) == 56 and @offsetOf(ForkRequest, "exit_event") == 43);
    std.debug.assert(@offsetOf(ForkRequest, "events") == 44 and @offsetOf(ForkRequest, "tag") == 48);
    std.debug.assert(@sizeOf(EventRecord) == event_constants[3].value);
    std.debug.assert(@offsetOf(EventRecord, "rusage") == 32 and @offsetOf(EventRecord, "handle") == 176);
    std.debug.assert(@offsetOf(EventRecord, "exec_step") == 180 and @offsetOf(EventRecord, "exec_error") == 184);
}

test "every known result has its name, its error, and unknown values say so" {
    try std.testing.expectEqualStrings("FORK_ERROR", std.mem.span(Result.FORK_ERROR.name()));
    try std.testing.expectEqualStrings("LIMIT_ERROR", std.mem.span(Result.LIMIT_ERROR.name()));
    try std.testing.expectEqualStrings("UNKNOWN", std.mem.span(@as(Result, @enumFromInt(-99)).name()));
    try std.testing.expectEqual(Result.SERVER_GONE, resultOf(error.SERVER_GONE));
    try std.testing.expectEqual(@as(?Error, error.LIMIT_ERROR), errorOf(.LIMIT_ERROR));
    try std.testing.expectEqual(@as(?Error, null), errorOf(.OK));
    try std.testing.expectEqual(@as(?Error, null), errorOf(@enumFromInt(-99)));
}
