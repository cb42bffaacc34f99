//! Running a program in a child: libforks_exec_entrypoint and its spec.
//!
//! The parent forks the entrypoint with a socket, sends the spec on it,
//! and reads the outcome: the socket is close-on-exec in the child, so a
//! successful execve closes it (the parent reads end-of-file), and a
//! failure is reported on it before the child exits with 127 — the error
//! pipe of libuv's process.c, on a socket that also carries the fds.
//!
//! Spec, as sent:
//!   message 1: SpecHeader, then header.fd_count i32 target fd numbers,
//!              with the fds themselves attached (SCM_RIGHTS);
//!   then:      header.body_len bytes in messages of at most chunk_len:
//!              path, argv[0..argc), envp[0..envc), cwd if has_cwd,
//!              each NUL-terminated.

const std = @import("std");
const sys = @import("sys.zig");
const limits = @import("limits.zig");
const fdpass = @import("fdpass.zig");
const client = @import("client.zig");
const Result = @import("result.zig").Result;
const result_mod = @import("result.zig");

pub const spec_magic: u32 = 0x5845_464c; // "LFEX"
const error_magic: u32 = 0x5245_464c; // "LFER"
const chunk_len = 32 * 1024;

pub const SpecHeader = extern struct {
    magic: u32 = spec_magic,
    version: u32 = 1,
    body_len: u32,
    fd_count: u32,
    argc: u32,
    envc: u32,
    has_cwd: u32,
    reserved: u32 = 0,
};

pub const Step = @import("abi.zig").ExecStep;

const ErrorRecord = extern struct {
    magic: u32 = error_magic,
    step: i32,
    error_number: i32,
};

const first_message_max = @sizeOf(SpecHeader) + limits.max_fds_per_message * @sizeOf(i32);

// ---------------------------------------------------------------- child side

pub fn entrypoint(_: client.ServerConn, socket_fd: c_int) callconv(.c) void {
    if (socket_fd < 0) sys._exit(127);
    var control = socket_fd;
    runSpec(&control) catch {
        const record = ErrorRecord{ .step = @intFromEnum(last_failure.step), .error_number = last_failure.error_number };
        // An in-place child runs while the server is suspended (vfork), and
        // the caller holds the other end of this socket: a full queue must
        // cost the report, not the server.
        _ = fdpass.sendFlags(control, std.mem.asBytes(&record), &.{}, if (in_place) sys.MSG_DONTWAIT else 0);
        sys._exit(127);
    };
}

const Failure = struct { step: Step, error_number: c_int };

/// One per process, and only the exec child writes it.
var last_failure: Failure = .{ .step = .receive_spec, .error_number = 0 };

fn failure(step: Step) error{Failed}!noreturn {
    last_failure = .{ .step = step, .error_number = sys.errno() };
    return error.Failed;
}

/// Set by the server's in-place exec child (see server.spawnInPlace): it
/// runs in the server's memory while the server waits, so the spec must be
/// queued already (reads never wait) and lives in in_place_storage, not in
/// a mapping that would outlive the child in the server.
pub var in_place = false;
pub const in_place_max_body = 64 * 1024;
pub const in_place_max_strings = 4096;
var in_place_storage: [in_place_max_body + 8 + (in_place_max_strings + 2) * @sizeOf(usize)]u8 align(16) = undefined;

fn runSpec(control: *sys.fd_t) error{Failed}!noreturn {
    const flags: c_int = if (in_place) sys.MSG_DONTWAIT else 0;
    var first: [first_message_max]u8 align(8) = undefined;
    var fds: [limits.max_fds_per_message]sys.fd_t = undefined;
    const received = fdpass.receive(control.*, &first, &fds, flags) orelse try failure(.receive_spec);
    const header: *const SpecHeader = @ptrCast(&first);
    if (received.len < @sizeOf(SpecHeader) or header.magic != spec_magic or header.version != 1 or
        header.fd_count != received.fd_count or
        received.len != @sizeOf(SpecHeader) + header.fd_count * @sizeOf(i32) or
        header.body_len == 0 or header.body_len > limits.max_exec_spec or header.has_cwd > 1)
    {
        sys.setErrno(sys.E.INVAL);
        try failure(.receive_spec);
    }
    var target_buf: [limits.max_fds_per_message]i32 = undefined;
    const targets = target_buf[0..header.fd_count];
    @memcpy(std.mem.sliceAsBytes(targets), first[@sizeOf(SpecHeader)..received.len]);
    const received_fds = fds[0..received.fd_count];

    // Body and pointer arrays live in fresh anonymous memory (no
    // allocator), or in in_place_storage for an in-place child.
    const string_count = 1 + @as(usize, header.argc) + header.envc + header.has_cwd;
    const pointers_len = (@as(usize, header.argc) + 1 + header.envc + 1) * @sizeOf(usize);
    const map_len = header.body_len + @alignOf(usize) + pointers_len;
    if (in_place and (header.body_len > in_place_max_body or string_count > in_place_max_strings)) {
        sys.setErrno(sys.E.MSGSIZE);
        try failure(.receive_spec);
    }
    const map = if (in_place)
        @intFromPtr(&in_place_storage)
    else
        sys.mmap(null, map_len, sys.PROT_READ | sys.PROT_WRITE, sys.MAP_PRIVATE | sys.MAP_ANONYMOUS, -1, 0);
    if (map == sys.MAP_FAILED) try failure(.receive_spec);
    const body: []u8 = @as([*]u8, @ptrFromInt(map))[0..header.body_len];
    var filled: usize = 0;
    while (filled < body.len) {
        var no_fds: [0]sys.fd_t = .{};
        const part = fdpass.receive(control.*, body[filled..], &no_fds, flags) orelse try failure(.receive_spec);
        if (part.len == 0) {
            sys.setErrno(sys.E.PIPE);
            try failure(.receive_spec);
        }
        filled += part.len;
    }
    if (body[body.len - 1] != 0 or std.mem.count(u8, body, "\x00") != string_count) {
        sys.setErrno(sys.E.INVAL);
        try failure(.receive_spec);
    }

    const pointers: [*]?[*:0]const u8 = @ptrFromInt(std.mem.alignForward(usize, map + header.body_len, @alignOf(usize)));
    var strings = std.mem.splitScalar(u8, body[0 .. body.len - 1], 0);
    const path: [*:0]const u8 = @ptrCast(strings.next().?.ptr);
    const argv = pointers[0 .. header.argc + 1];
    for (argv[0..header.argc]) |*slot| slot.* = @ptrCast(strings.next().?.ptr);
    argv[header.argc] = null;
    const envp = pointers[header.argc + 1 ..][0 .. header.envc + 1];
    for (envp[0..header.envc]) |*slot| slot.* = @ptrCast(strings.next().?.ptr);
    envp[header.envc] = null;
    const cwd: ?[*:0]const u8 = if (header.has_cwd == 1) @ptrCast(strings.next().?.ptr) else null;

    try mapFds(control, received_fds, targets);
    if (cwd) |dir| {
        if (sys.chdir(dir) != 0) try failure(.chdir);
    }
    _ = sys.execve(path, @ptrCast(argv.ptr), @ptrCast(envp.ptr));
    try failure(.execve);
}

/// Puts received_fds[i] at targets[i]. Everything is first moved above the
/// highest target, so no dup2 can overwrite an fd still to be placed (the
/// control socket included). Then every other fd but 0-2 is marked
/// close-on-exec, so the program holds exactly the fds it was given.
fn mapFds(control: *sys.fd_t, received_fds: []sys.fd_t, targets: []const i32) error{Failed}!void {
    var floor: c_int = 3;
    for (targets, 0..) |target, i| {
        if (target < 0) {
            sys.setErrno(sys.E.BADF);
            try failure(.map_fds);
        }
        for (targets[0..i]) |earlier| if (earlier == target) {
            sys.setErrno(sys.E.INVAL);
            try failure(.map_fds);
        };
        floor = @max(floor, target + 1);
    }
    control.* = try moveAbove(control.*, floor);
    for (received_fds) |*fd| fd.* = try moveAbove(fd.*, floor);
    for (received_fds, targets) |fd, target| {
        // dup2 clears close-on-exec on the target: it survives execve.
        if (sys.dup2(fd, target) < 0) try failure(.map_fds);
    }
    markOthersCloexec(targets);
}

fn moveAbove(fd: sys.fd_t, floor: c_int) error{Failed}!sys.fd_t {
    if (fd >= floor) return fd;
    const moved = sys.fcntl(fd, sys.F_DUPFD_CLOEXEC, floor);
    if (moved < 0) try failure(.map_fds);
    _ = sys.close(fd);
    return moved;
}

fn markOthersCloexec(targets: []const i32) void {
    if (sys.visitOpenFds(targets, markUnlessTarget)) return;
    var limit: sys.rlimit = undefined;
    const highest: u64 = if (sys.getrlimit(sys.RLIMIT_NOFILE, &limit) == 0) @min(limit.cur, 65536) else 1024;
    var fd: sys.fd_t = 3;
    while (fd < highest) : (fd += 1) {
        if (std.mem.indexOfScalar(i32, targets, fd) == null) _ = sys.setCloexec(fd);
    }
}

fn markUnlessTarget(targets: []const i32, fd: sys.fd_t) void {
    if (std.mem.indexOfScalar(i32, targets, fd) == null) _ = sys.setCloexec(fd);
}

// ---------------------------------------------------------------- parent side

pub fn sendSpec(
    socket_fd: c_int,
    path: ?[*:0]const u8,
    argv: ?[*:null]const ?[*:0]const u8,
    envp: ?[*:null]const ?[*:0]const u8,
    cwd: ?[*:0]const u8,
    fds: ?[*]const c_int,
    targets: ?[*]const c_int,
    fd_count: usize,
) callconv(.c) Result {
    result_mod.clear();
    const invalid = Result.INVALID_ARGUMENT;
    const file = path orelse return result_mod.failWith(invalid, sys.E.INVAL);
    const args = argv orelse return result_mod.failWith(invalid, sys.E.INVAL);
    const env = envp orelse return result_mod.failWith(invalid, sys.E.INVAL);
    if (fd_count > limits.max_fds_per_message) return result_mod.failWith(invalid, sys.E.INVAL);
    if (fd_count > 0 and (fds == null or targets == null)) return result_mod.failWith(invalid, sys.E.INVAL);
    const fd_list: []const c_int = if (fd_count > 0) fds.?[0..fd_count] else &.{};
    const target_list: []const c_int = if (fd_count > 0) targets.?[0..fd_count] else &.{};
    for (target_list, 0..) |target, i| {
        if (target < 0 or fd_list[i] < 0) return result_mod.failWith(invalid, sys.E.BADF);
        if (std.mem.indexOfScalar(c_int, target_list[0..i], target) != null) return result_mod.failWith(invalid, sys.E.INVAL);
    }

    const argc = std.mem.len(args);
    const envc = std.mem.len(env);
    var body_len: usize = sys.cString(file).len + 1;
    for (args[0..argc]) |arg| body_len += sys.cString(arg.?).len + 1;
    for (env[0..envc]) |entry| body_len += sys.cString(entry.?).len + 1;
    if (cwd) |dir| body_len += sys.cString(dir).len + 1;
    if (body_len > limits.max_exec_spec or argc == 0) return result_mod.failWith(invalid, sys.E.INVAL);

    var first: [first_message_max]u8 align(8) = undefined;
    const header = SpecHeader{
        .body_len = @intCast(body_len),
        .fd_count = @intCast(fd_count),
        .argc = @intCast(argc),
        .envc = @intCast(envc),
        .has_cwd = @intFromBool(cwd != null),
    };
    @memcpy(first[0..@sizeOf(SpecHeader)], std.mem.asBytes(&header));
    @memcpy(first[@sizeOf(SpecHeader)..][0 .. fd_count * @sizeOf(i32)], std.mem.sliceAsBytes(target_list));
    if (fdpass.send(socket_fd, first[0 .. @sizeOf(SpecHeader) + fd_count * @sizeOf(i32)], fd_list) != 0) {
        return result_mod.fail(.WRITE_ERROR);
    }

    var writer = ChunkWriter{ .fd = socket_fd };
    writer.add(sys.cString(file));
    for (args[0..argc]) |arg| writer.add(sys.cString(arg.?));
    for (env[0..envc]) |entry| writer.add(sys.cString(entry.?));
    if (cwd) |dir| writer.add(sys.cString(dir));
    writer.flush();
    if (writer.failed) return result_mod.fail(.WRITE_ERROR);
    return .OK;
}

/// Packs NUL-terminated strings into messages of at most chunk_len bytes.
const ChunkWriter = struct {
    fd: sys.fd_t,
    buf: [chunk_len]u8 = undefined,
    len: usize = 0,
    failed: bool = false,

    fn add(writer: *ChunkWriter, string: []const u8) void {
        writer.addBytes(string);
        writer.addBytes("\x00");
    }

    fn addBytes(writer: *ChunkWriter, bytes: []const u8) void {
        var rest = bytes;
        while (rest.len > 0) {
            const room = writer.buf.len - writer.len;
            const take = @min(room, rest.len);
            @memcpy(writer.buf[writer.len..][0..take], rest[0..take]);
            writer.len += take;
            rest = rest[take..];
            if (writer.len == writer.buf.len) writer.flush();
        }
    }

    fn flush(writer: *ChunkWriter) void {
        if (writer.len == 0 or writer.failed) return;
        if (fdpass.send(writer.fd, writer.buf[0..writer.len], &.{}) != 0) writer.failed = true;
        writer.len = 0;
    }
};

pub fn readResult(socket_fd: c_int, failed_step: ?*c_int) Result {
    result_mod.clear();
    if (socket_fd < 0) return result_mod.failWith(.INVALID_ARGUMENT, sys.E.BADF);
    var record: ErrorRecord = undefined;
    var no_fds: [0]sys.fd_t = .{};
    const received = fdpass.receive(socket_fd, std.mem.asBytes(&record), &no_fds, 0);
    const read_errno = sys.errno();
    _ = sys.close(socket_fd);
    const got = received orelse return result_mod.failWith(.READ_ERROR, read_errno);
    if (got.len == 0) return .OK; // close-on-exec closed it: execve succeeded
    if (got.len != @sizeOf(ErrorRecord) or record.magic != error_magic) return result_mod.failWith(.PROTOCOL_ERROR, 0);
    if (failed_step) |p| p.* = record.step;
    return result_mod.failWith(.EXEC_ERROR, record.error_number);
}
