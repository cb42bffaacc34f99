//! Running a program in a child: libforks_exec_entrypoint and its spec.
//!
//! The parent forks the entrypoint with a socket, sends the spec on it,
//! and reads the outcome: the socket is close-on-exec in the child, so a
//! successful execve closes it (the parent reads end-of-file), and a
//! failure is reported on it before the child exits with 127 — the error
//! pipe of libuv's process.c, on a socket that also carries the fds.
//!
//! On the darwin paths the socket is a datagram pair, whose survivor is
//! never told that its peer closed (XNU sets ECONNRESET on it but wakes
//! nobody; Linux reports nothing), so end-of-file cannot say "exec'd"
//! there. The server then makes a close-on-exec pipe for each exec child
//! before forking it (openReport), sends the read end to the caller as the
//! socket's first message (a ReportNotice with one fd), and the child keeps
//! the write end, the only one left once the server closes its copy after
//! the fork: its end-of-file says the child exec'd (or died, or was never
//! forked, as the socket's says on Linux), an ErrorRecord on it says which
//! step failed. Linux keeps the socket alone: one pipe, one send and two
//! closes fewer in the server per program.
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
const abi = @import("abi.zig");
const result_mod = @import("result.zig");
const Error = result_mod.Error;
const withErrno = result_mod.withErrno;

pub const spec_magic: u32 = 0x5845_464c; // "LFEX"
const error_magic: u32 = 0x5245_464c; // "LFER"
const report_magic: u32 = 0x5045_464c; // "LFEP"
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

/// The message carrying the report pipe's read end (darwin paths).
const ReportNotice = extern struct {
    magic: u32 = report_magic,
};

/// Whether exec children report through a pipe (see the top of this file).
pub const report_pipe = !sys.linux_paths;

const first_message_max = @sizeOf(SpecHeader) + limits.max_fds_per_message * @sizeOf(i32);

// ---------------------------------------------------------------- child side

/// libforks_exec_entrypoint, the built-in entrypoint a caller may fork.
/// Run as any entrypoint (by symbol, or called from another), it has no
/// report pipe from the server: on the darwin paths it makes its own.
pub fn entrypoint(_: abi.ServerConn, socket_fd: c_int) callconv(.c) void {
    run(socket_fd, openReport(socket_fd), false, false);
}

/// Runs the spec received on socket_fd; on failure reports the step and
/// errno there (or on report_fd, the report pipe's write end, when it is
/// not -1) and exits with 127. `in_place`: the server's in-place exec
/// child (server.spawnInPlace), which runs in the server's memory while
/// the server waits, so the spec must be queued already (reads never wait)
/// and lives in in_place_storage, not in a mapping that would outlive the
/// child in the server. `queued`: the owner said the whole spec is
/// queued already (protocol.Flags.spec_queued), so reads never wait
/// either, as for the in-place child the owner's request gets on Linux:
/// on the darwin paths (no in-place child) an owner that queued nothing
/// gets the failure, not a child that waits while the owner waits for
/// its outcome. A child's spec_queued fork is an ordinary one everywhere,
/// whose spec may still come.
pub fn run(socket_fd: c_int, report_fd: sys.fd_t, in_place: bool, queued: bool) noreturn {
    if (socket_fd < 0) sys._exit(127);
    var out = Outcome{ .control = socket_fd, .report = report_fd };
    runSpec(&out, in_place, in_place or queued) catch |failed| reportFailure(out, failed, in_place or queued);
}

/// Where the outcome goes: the control socket, or the report pipe when
/// `report` is not -1. Both move when the program's fds are placed.
const Outcome = struct { control: sys.fd_t, report: sys.fd_t };

/// The spec came with the fork request (protocol.Flags.spec_inline): it
/// is in this process's memory (a copy of the server's, or the server's
/// own for an in-place child, which leaves it untouched) and its fds are
/// already here. Only the outcome goes back on `socket_fd`.
pub fn runInline(socket_fd: sys.fd_t, report_fd: sys.fd_t, spec: []const u8, spec_fds: []const sys.fd_t, in_place: bool) noreturn {
    var out = Outcome{ .control = socket_fd, .report = report_fd };
    runInlineSpec(&out, spec, spec_fds) catch |failed| reportFailure(out, failed, in_place);
}

/// The outcome of an in-place child whose caller sent no socket
/// (protocol.Flags.outcome_in_reply). The child shares the server's memory
/// (CLONE_VM) and writes its failure here before it exits; the server,
/// which CLONE_VFORK suspends until the child has exec'd or exited, reads
/// it once clone returns and puts it in the fork's answer: how posix_spawn
/// hands back its child's error. Volatile: nothing in the server's own
/// code writes it between the clear and the read.
var in_place_outcome: ErrorRecord = .{ .step = 0, .error_number = 0 };

/// In the server, before an in-place child that reports here.
pub fn clearInPlaceOutcome() void {
    const outcome: *volatile ErrorRecord = &in_place_outcome;
    outcome.step = 0;
    outcome.error_number = 0;
}

/// In the server, once clone returned: the failed step and its errno, or
/// error_number 0 when the program was exec'd (or the child ended before
/// reaching its spec, as the socket's end-of-file would also say).
pub fn inPlaceOutcome() struct { step: i32, error_number: i32 } {
    const outcome: *volatile ErrorRecord = &in_place_outcome;
    return .{ .step = outcome.step, .error_number = outcome.error_number };
}

/// `no_wait`: an in-place child, or one whose owner queued its spec: a
/// caller whose socket is full loses the report rather than keep the
/// child (or, in place, the server) waiting.
fn reportFailure(out: Outcome, failed: StepError, no_wait: bool) noreturn {
    // errno is still the failing call's: nothing ran since.
    const record = ErrorRecord{ .step = @intFromEnum(stepOf(failed)), .error_number = sys.errno() };
    // No socket: an in-place child reporting in the server's memory.
    if (out.control < 0 and out.report < 0) {
        std.debug.assert(no_wait);
        const outcome: *volatile ErrorRecord = &in_place_outcome;
        outcome.step = record.step;
        outcome.error_number = if (record.error_number != 0) record.error_number else sys.E.INVAL;
        sys._exit(127);
    }
    // The pipe is this child's alone and empty: 12 bytes fit and arrive
    // in one piece (at most PIPE_BUF).
    if (out.report >= 0) {
        _ = sys.writeFull(out.report, std.mem.asBytes(&record));
        sys._exit(127);
    }
    const control = out.control;
    // An in-place child runs while the server is suspended (vfork), and
    // the caller holds the other end of this socket: a full queue must
    // cost the report, not the server.
    _ = fdpass.sendFlags(control, std.mem.asBytes(&record), &.{}, if (no_wait) sys.MSG_DONTWAIT else 0);
    sys._exit(127);
}

fn runInlineSpec(out: *Outcome, spec: []const u8, spec_fds: []const sys.fd_t) StepError!noreturn {
    if (spec.len < @sizeOf(SpecHeader)) return stepFailed(error.ReceiveSpec, sys.E.INVAL);
    var header: SpecHeader = undefined;
    @memcpy(std.mem.asBytes(&header), spec[0..@sizeOf(SpecHeader)]);
    const targets_len = @as(usize, header.fd_count) * @sizeOf(i32);
    if (header.magic != spec_magic or header.version != 1 or header.fd_count != spec_fds.len or
        header.body_len == 0 or spec.len != @sizeOf(SpecHeader) + targets_len + header.body_len or header.has_cwd > 1)
    {
        return stepFailed(error.ReceiveSpec, sys.E.INVAL);
    }
    var target_buf: [limits.max_fds_per_message]i32 = undefined;
    const targets = target_buf[0..header.fd_count];
    @memcpy(std.mem.sliceAsBytes(targets), spec[@sizeOf(SpecHeader)..][0..targets_len]);
    var fd_buf: [limits.max_fds_per_message]sys.fd_t = undefined;
    const fds = fd_buf[0..spec_fds.len];
    @memcpy(fds, spec_fds);
    const body = spec[@sizeOf(SpecHeader) + targets_len ..];
    const string_count = 1 + @as(usize, header.argc) + header.envc + header.has_cwd;
    if (string_count > in_place_max_strings or body[body.len - 1] != 0 or std.mem.count(u8, body, "\x00") != string_count) {
        return stepFailed(error.ReceiveSpec, sys.E.INVAL);
    }
    // Only the pointer arrays are written: in in_place_storage, which is
    // this child's own copy, or the in-place child's alone.
    const pointers: [*]?[*:0]const u8 = @ptrCast(@alignCast(&in_place_storage));
    try execFrom(out, body, pointers, header, fds, targets);
}

/// Points argv and envp into `body`, places the fds, changes directory
/// and execs: returns only by failing.
fn execFrom(out: *Outcome, body: []const u8, pointers: [*]?[*:0]const u8, header: SpecHeader, fds: []sys.fd_t, targets: []const i32) StepError!noreturn {
    var strings = std.mem.splitScalar(u8, body[0 .. body.len - 1], 0);
    const path: [*:0]const u8 = @ptrCast(strings.next().?.ptr);
    const argv = pointers[0 .. header.argc + 1];
    for (argv[0..header.argc]) |*slot| slot.* = @ptrCast(strings.next().?.ptr);
    argv[header.argc] = null;
    const envp = pointers[header.argc + 1 ..][0 .. header.envc + 1];
    for (envp[0..header.envc]) |*slot| slot.* = @ptrCast(strings.next().?.ptr);
    envp[header.envc] = null;
    const cwd: ?[*:0]const u8 = if (header.has_cwd == 1) @ptrCast(strings.next().?.ptr) else null;

    try mapFds(out, fds, targets);
    if (cwd) |dir| {
        if (sys.chdir(dir) != 0) return error.Chdir;
    }
    _ = sys.execve(path, @ptrCast(argv.ptr), @ptrCast(envp.ptr));
    return error.Execve;
}

/// Which step failed; errno says why.
const StepError = error{ ReceiveSpec, MapFds, Chdir, Execve };

fn stepOf(failed: StepError) Step {
    return switch (failed) {
        error.ReceiveSpec => .receive_spec,
        error.MapFds => .map_fds,
        error.Chdir => .chdir,
        error.Execve => .execve,
    };
}

/// A failed step whose errno is not a call's.
fn stepFailed(failed: StepError, error_number: c_int) StepError {
    sys.setErrno(error_number);
    return failed;
}

pub const in_place_max_body = 64 * 1024;
pub const in_place_max_strings = 4096;
var in_place_storage: [in_place_max_body + 8 + (in_place_max_strings + 2) * @sizeOf(usize)]u8 align(16) = undefined;

fn runSpec(out: *Outcome, in_place: bool, no_wait: bool) StepError!noreturn {
    const control = &out.control;
    const flags: c_int = if (no_wait) sys.MSG_DONTWAIT else 0;
    var first: [first_message_max]u8 align(8) = undefined;
    var fds: [limits.max_fds_per_message]sys.fd_t = undefined;
    const received = fdpass.receive(control.*, &first, &fds, flags) orelse return error.ReceiveSpec;
    const header: *const SpecHeader = @ptrCast(&first);
    if (received.len < @sizeOf(SpecHeader) or header.magic != spec_magic or header.version != 1 or
        header.fd_count != received.fd_count or
        received.len != @sizeOf(SpecHeader) + header.fd_count * @sizeOf(i32) or
        header.body_len == 0 or header.body_len > limits.max_exec_spec or header.has_cwd > 1)
    {
        return stepFailed(error.ReceiveSpec, sys.E.INVAL);
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
        return stepFailed(error.ReceiveSpec, sys.E.MSGSIZE);
    }
    const map = if (in_place)
        @intFromPtr(&in_place_storage)
    else
        sys.mmap(null, map_len, sys.PROT_READ | sys.PROT_WRITE, sys.MAP_PRIVATE | sys.MAP_ANONYMOUS, -1, 0);
    if (map == sys.MAP_FAILED) return error.ReceiveSpec;
    const body: []u8 = @as([*]u8, @ptrFromInt(map))[0..header.body_len];
    var filled: usize = 0;
    while (filled < body.len) {
        var no_fds: [0]sys.fd_t = .{};
        const part = fdpass.receive(control.*, body[filled..], &no_fds, flags) orelse return error.ReceiveSpec;
        if (part.len == 0) {
            return stepFailed(error.ReceiveSpec, sys.E.PIPE);
        }
        filled += part.len;
    }
    if (body[body.len - 1] != 0 or std.mem.count(u8, body, "\x00") != string_count) {
        return stepFailed(error.ReceiveSpec, sys.E.INVAL);
    }

    const pointers: [*]?[*:0]const u8 = @ptrFromInt(std.mem.alignForward(usize, map + header.body_len, @alignOf(usize)));
    try execFrom(out, body, pointers, header.*, received_fds, targets);
}

/// Puts received_fds[i] at targets[i]. Everything is first moved above the
/// highest target, so no dup2 can overwrite an fd still to be placed (the
/// control socket and the report pipe included). Then every other fd but 0-2 is marked
/// close-on-exec, so the program holds exactly the fds it was given.
fn mapFds(out: *Outcome, received_fds: []sys.fd_t, targets: []const i32) StepError!void {
    var floor: c_int = 3;
    for (targets, 0..) |target, i| {
        if (target < 0) {
            return stepFailed(error.MapFds, sys.E.BADF);
        }
        for (targets[0..i]) |earlier| if (earlier == target) {
            return stepFailed(error.MapFds, sys.E.INVAL);
        };
        floor = @max(floor, target + 1);
    }
    if (out.control >= 0) out.control = try moveAbove(out.control, floor);
    if (out.report >= 0) out.report = try moveAbove(out.report, floor);
    for (received_fds) |*fd| fd.* = try moveAbove(fd.*, floor);
    for (received_fds, targets) |fd, target| {
        // dup2 clears close-on-exec on the target: it survives execve.
        if (sys.dup2(fd, target) < 0) return error.MapFds;
    }
    markOthersCloexec(targets);
}

fn moveAbove(fd: sys.fd_t, floor: c_int) StepError!sys.fd_t {
    if (fd >= floor) return fd;
    const moved = sys.fcntl(fd, sys.F_DUPFD_CLOEXEC, floor);
    if (moved < 0) return error.MapFds;
    _ = sys.close(fd);
    return moved;
}

fn markOthersCloexec(targets: []const i32) void {
    if (markGapsCloexec(targets)) return;
    if (sys.visitOpenFds(targets, markUnlessTarget)) return;
    var limit: sys.rlimit = undefined;
    const highest: u64 = if (sys.getrlimit(sys.RLIMIT_NOFILE, &limit) == 0) @min(limit.cur, 65536) else 1024;
    var fd: sys.fd_t = 3;
    while (fd < highest) : (fd += 1) {
        if (std.mem.indexOfScalar(i32, targets, fd) == null) _ = sys.setCloexec(fd);
    }
}

/// Linux 5.11+: close_range(2) with CLOSE_RANGE_CLOEXEC over each gap
/// between the targets, one call per gap. The /proc/self/fd walk it
/// replaces costs an open, two getdents and an fcntl per fd (15 µs here),
/// all while a vfork parent waits. False where the flag is unknown: what
/// it marked is marked again by the fallback.
fn markGapsCloexec(targets: []const i32) bool {
    if (!sys.linux_paths) return false;
    const none = std.math.maxInt(u32);
    var first: u32 = 3;
    var gaps: usize = 0;
    while (true) : (gaps += 1) {
        // Each turn passes one target: a gap before each, and the last.
        std.debug.assert(gaps <= targets.len);
        var next: u32 = none;
        for (targets) |target| {
            const number: u32 = @intCast(target);
            if (number >= first and number < next) next = number;
        }
        if (next > first and !sys.closeRange(first, next - 1, sys.CLOSE_RANGE_CLOEXEC)) return false;
        if (next == none) return true;
        first = next + 1;
    }
}

fn markUnlessTarget(targets: []const i32, fd: sys.fd_t) void {
    if (std.mem.indexOfScalar(i32, targets, fd) == null) _ = sys.setCloexec(fd);
}

// ---------------------------------------------------------------- server side

/// darwin paths (report_pipe): the report pipe of an exec child about to
/// be forked with `control` as its socket (or, in exec.entrypoint, of
/// this child itself). Sends the read end to the
/// caller on `control` (never waiting: the caller's receive queue is
/// empty until the outcome) and returns the write end for the child, or
/// -1 when no pipe could be made or sent: the child then reports on the
/// socket, as on Linux. The server closes the write end after the fork.
pub fn openReport(control: sys.fd_t) sys.fd_t {
    if (!report_pipe or control < 0) return -1;
    var ends: [2]sys.fd_t = undefined;
    if (sys.pipeCloexec(&ends) != 0) return -1;
    const notice = ReportNotice{};
    const sent = fdpass.sendFlags(control, std.mem.asBytes(&notice), ends[0..1], sys.MSG_DONTWAIT);
    _ = sys.close(ends[0]);
    if (sent != 0) {
        _ = sys.close(ends[1]);
        return -1;
    }
    return ends[1];
}

// ---------------------------------------------------------------- parent side

/// The C caller's fds and their targets (two arrays of `fd_count`) as
/// slices, checked first: at most a message's worth, and no null array
/// with a count. Then sendSpec takes them.
pub fn fdLists(fds: ?[*]const c_int, targets: ?[*]const c_int, fd_count: usize) Error!struct { []const c_int, []const c_int } {
    const invalid = error.INVALID_ARGUMENT;
    if (fd_count > limits.max_fds_per_message) return withErrno(invalid, sys.E.INVAL);
    if (fd_count > 0 and (fds == null or targets == null)) return withErrno(invalid, sys.E.INVAL);
    const fd_list: []const c_int = if (fd_count > 0) fds.?[0..fd_count] else &.{};
    const target_list: []const c_int = if (fd_count > 0) targets.?[0..fd_count] else &.{};
    return .{ fd_list, target_list };
}

/// Sends the spec on `socket_fd`; `fd_list[i]` is to become `target_list[i]`
/// in the program (fdLists made both).
pub fn sendSpec(socket_fd: c_int, path: ?[*:0]const u8, argv: ?[*:null]const ?[*:0]const u8, envp: ?[*:null]const ?[*:0]const u8, cwd: ?[*:0]const u8, fd_list: []const c_int, target_list: []const c_int) Error!void {
    const invalid = error.INVALID_ARGUMENT;
    const file = path orelse return withErrno(invalid, sys.E.INVAL);
    const args = argv orelse return withErrno(invalid, sys.E.INVAL);
    const env = envp orelse return withErrno(invalid, sys.E.INVAL);
    std.debug.assert(fd_list.len == target_list.len);
    const fd_count = fd_list.len;
    for (target_list, 0..) |target, i| {
        if (target < 0 or fd_list[i] < 0) return withErrno(invalid, sys.E.BADF);
        if (std.mem.indexOfScalar(c_int, target_list[0..i], target) != null) return withErrno(invalid, sys.E.INVAL);
    }

    const argc = std.mem.len(args);
    const envc = std.mem.len(env);
    var body_len: usize = sys.cString(file).len + 1;
    for (args[0..argc]) |arg| body_len += sys.cString(arg.?).len + 1;
    for (env[0..envc]) |entry| body_len += sys.cString(entry.?).len + 1;
    if (cwd) |dir| body_len += sys.cString(dir).len + 1;
    if (body_len > limits.max_exec_spec or argc == 0) return withErrno(invalid, sys.E.INVAL);

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
        return error.WRITE_ERROR;
    }

    var writer = ChunkWriter{ .fd = socket_fd };
    writer.add(sys.cString(file));
    for (args[0..argc]) |arg| writer.add(sys.cString(arg.?));
    for (env[0..envc]) |entry| writer.add(sys.cString(entry.?));
    if (cwd) |dir| writer.add(sys.cString(dir));
    writer.flush();
    if (writer.failed) return error.WRITE_ERROR;
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

pub fn readResult(socket_fd: c_int, failed_step: ?*c_int) Error!void {
    if (socket_fd < 0) return withErrno(error.INVALID_ARGUMENT, sys.E.BADF);
    var record: ErrorRecord = undefined;
    var report: [1]sys.fd_t = .{-1};
    const received = fdpass.receive(socket_fd, std.mem.asBytes(&record), &report, 0);
    // Open until the outcome is known: a child still reading its spec
    // must not see its caller gone (on the darwin paths, ECONNRESET).
    defer sys.closeKeepErrno(socket_fd);
    var got = received orelse return withErrno(error.READ_ERROR, sys.errno());
    if (got.fd_count == 1) {
        defer sys.closeKeepErrno(report[0]);
        if (got.len != @sizeOf(ReportNotice) or record.magic != report_magic) return withErrno(error.PROTOCOL_ERROR, 0);
        const n = sys.readFull(report[0], std.mem.asBytes(&record));
        if (n < 0) return withErrno(error.READ_ERROR, sys.errno());
        got.len = @intCast(n);
    }
    if (got.len == 0) return; // close-on-exec closed it: execve succeeded
    if (got.len != @sizeOf(ErrorRecord) or record.magic != error_magic) return withErrno(error.PROTOCOL_ERROR, 0);
    if (failed_step) |p| p.* = record.step;
    return withErrno(error.EXEC_ERROR, record.error_number);
}
