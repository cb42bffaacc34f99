//! The C ABI of libforks: every symbol of lib/include/libforks.h, each a
//! thin shim over the module that implements it, and the one place where
//! a Zig error becomes a libforks_Result: inner modules return abi.Error
//! with errno set, and `status` / `count` below record that errno for
//! libforks_last_errno and return the code.

const std = @import("std");
const sys = @import("sys.zig");
const abi = @import("abi.zig");
const limits = @import("limits.zig");
const protocol = @import("protocol.zig");
const fdpass = @import("fdpass.zig");
const client = @import("client.zig");
const event_client = @import("event_client.zig");
const start = @import("start.zig");
const exec = @import("exec.zig");
const notify = @import("notify.zig");
const handles = @import("handles.zig");
const result_mod = @import("result.zig");
const Result = abi.Result;
const Error = abi.Error;
const ServerConn = abi.ServerConn;

pub const version = "0.1.0";

/// errno of the last failed call on this thread. Bun FFI cannot read the C
/// errno reliably (the runtime may make calls in between), so every
/// failure records it here too; a success clears it.
threadlocal var last_errno: c_int = 0;

/// A call's outcome as a libforks_Result.
fn status(outcome: Error!void) Result {
    outcome catch |err| {
        last_errno = sys.errno();
        return abi.resultOf(err);
    };
    last_errno = 0;
    return .OK;
}

/// A call that returns a count or an fd: -1 on failure, errno set.
fn count(outcome: Error!c_int) c_int {
    const value = outcome catch {
        last_errno = sys.errno();
        return -1;
    };
    last_errno = 0;
    return value;
}

export fn libforks_start(conn_ptr: ?*ServerConn) Result {
    return status(start.start(conn_ptr));
}

export fn libforks_get_server_pid(conn: ServerConn) sys.pid_t {
    return client.serverPid(conn);
}

export fn libforks_kill_all(conn: ServerConn, signal: c_int) Result {
    return status(client.killAll(conn, signal));
}

export fn libforks_kill_all_async(conn: ServerConn, signal: c_int, reply_fd_ptr: ?*c_int) Result {
    return status(client.killAllAsync(conn, signal, reply_fd_ptr));
}

export fn libforks_kill(conn: ServerConn, pid: sys.pid_t, signal: c_int) Result {
    return status(client.kill(conn, pid, signal, 0));
}

export fn libforks_kill_tree(conn: ServerConn, pid: sys.pid_t, signal: c_int) Result {
    return status(client.kill(conn, pid, signal, client.kill_tree));
}

export fn libforks_kill_async(conn: ServerConn, pid: sys.pid_t, signal: c_int, flags: c_int, reply_fd_ptr: ?*c_int) Result {
    return status(client.killAsync(conn, pid, signal, flags, reply_fd_ptr));
}

export fn libforks_stop(conn: ServerConn, wait: bool) Result {
    return status(client.stop(conn, wait, false));
}

export fn libforks_stop_server_only(conn: ServerConn) Result {
    return status(client.stop(conn, true, true));
}

export fn libforks_free_conn(conn: ServerConn) void {
    client.freeConn(conn);
}

export fn libforks_conn_share(conn: ServerConn, shared_ptr: ?*ServerConn) Result {
    return status(client.shareConn(conn, shared_ptr));
}

export fn libforks_conn_token(conn: ServerConn, token_ptr: ?*u64) Result {
    return status(handles.share(conn, token_ptr));
}

export fn libforks_conn_attach(token: u64, conn_ptr: ?*ServerConn) Result {
    return status(handles.attach(token, conn_ptr));
}

export fn libforks_conn_token_drop(token: u64) Result {
    return status(handles.drop(token));
}

export fn libforks_thread_adopt_conn(conn: ServerConn) Result {
    return status(handles.adoptConn(conn));
}

export fn libforks_thread_release_conn(conn: ServerConn) Result {
    return status(handles.releaseConn(conn));
}

export fn libforks_thread_adopt_fd(fd: c_int) Result {
    return status(handles.adoptFd(fd));
}

export fn libforks_thread_release_fd(fd: c_int) Result {
    return status(handles.releaseFd(fd));
}

export fn libforks_start_ex(conn_ptr: ?*ServerConn, options: ?*const abi.StartOptions) Result {
    return status(start.startEx(conn_ptr, options));
}

export fn libforks_fork(conn: ServerConn, pid_ptr: ?*sys.pid_t, socket_fd_ptr: ?*c_int, exit_fd_ptr: ?*c_int, entrypoint: ?abi.Entrypoint) Result {
    return status(client.fork(conn, .{ .pid = pid_ptr, .socket_fd = socket_fd_ptr, .exit_fd = exit_fd_ptr }, entrypoint));
}

export fn libforks_fork_async(conn: ServerConn, request: ?*const abi.ForkRequest, reply_fd_ptr: ?*c_int) Result {
    return status(client.forkAsync(conn, request, reply_fd_ptr));
}

export fn libforks_events_open(conn: ServerConn, read_fd_ptr: ?*c_int, handle_ptr: ?*u32) Result {
    return status(event_client.openEvents(conn, read_fd_ptr, handle_ptr));
}

export fn libforks_events_read(fd: c_int, buf: ?[*]u8, len: usize, timeout_ms: c_int) isize {
    const value = event_client.readEvents(fd, buf, len, timeout_ms) catch {
        last_errno = sys.errno();
        return -1;
    };
    last_errno = 0;
    return value;
}

export fn libforks_send_event_request(conn: ServerConn, request: ?*const abi.EventRequest) Result {
    return status(event_client.sendEventRequest(conn, request));
}

export fn libforks_spawn_async(conn: ServerConn, request: ?*const abi.SpawnRequest) Result {
    return status(event_client.spawnAsync(conn, request));
}

export fn libforks_spawn_outcome_in_answer(conn: ServerConn) bool {
    return event_client.outcomeInAnswer(conn);
}

export fn libforks_conn_fd(conn: ServerConn) c_int {
    return client.connFd(conn);
}

export fn libforks_fork_symbol(conn: ServerConn, pid_ptr: ?*sys.pid_t, socket_fd_ptr: ?*c_int, exit_fd_ptr: ?*c_int, library: ?[*:0]const u8, symbol: ?[*:0]const u8) Result {
    return status(client.forkSymbol(conn, .{ .pid = pid_ptr, .socket_fd = socket_fd_ptr, .exit_fd = exit_fd_ptr }, library, symbol));
}

export fn libforks_wait(conn: ServerConn, pid: sys.pid_t, stat_loc: ?*c_int, options: c_int, rusage: ?*sys.rusage) Result {
    return status(client.waitpid(conn, pid, null, stat_loc, options, rusage));
}

export fn libforks_waitpid(conn: ServerConn, pid: sys.pid_t, waited_pid: ?*sys.pid_t, stat_loc: ?*c_int, options: c_int, rusage: ?*sys.rusage) Result {
    return status(client.waitpid(conn, pid, waited_pid, stat_loc, options, rusage));
}

export fn libforks_wait_all(conn: ServerConn) Result {
    return status(client.waitAll(conn));
}

export fn libforks_wait_async(conn: ServerConn, pid: sys.pid_t, options: c_int, reply_fd_ptr: ?*c_int) Result {
    return status(client.waitAsync(conn, pid, options, reply_fd_ptr));
}

export fn libforks_wait_all_async(conn: ServerConn, reply_fd_ptr: ?*c_int) Result {
    return status(client.waitAllAsync(conn, reply_fd_ptr));
}

export fn libforks_stop_async(conn: ServerConn, wait: bool, server_only: bool, reply_fd_ptr: ?*c_int) Result {
    return status(client.stopAsync(conn, wait, server_only, reply_fd_ptr));
}

export fn libforks_stop_finish(conn: ServerConn) Result {
    return status(client.stopFinish(conn));
}

export fn libforks_reply_read(reply_fd: c_int, reply: ?*abi.Reply) Result {
    var ignored: abi.Reply = undefined;
    return status(client.readReply(reply_fd, reply orelse &ignored));
}

export fn libforks_read_socket_fds(socket_fd: c_int, data: ?[*]u8, length: usize, fds: ?[*]c_int, max_fd_count: usize) c_int {
    return count(readSocketFds(socket_fd, data, length, fds, max_fd_count));
}

fn readSocketFds(socket_fd: c_int, data: ?[*]u8, length: usize, fds: ?[*]c_int, max_fd_count: usize) Error!c_int {
    if (length > 0 and data == null or max_fd_count > 0 and fds == null or length > std.math.maxInt(c_int)) {
        return result_mod.invalid();
    }
    const buffer: []u8 = if (data) |d| d[0..length] else &.{};
    const fd_slots: []c_int = if (fds) |f| f[0..max_fd_count] else &.{};
    // Slots beyond what one message can carry are never filled.
    for (fd_slots[@min(fd_slots.len, limits.max_fds_per_message)..]) |*slot| slot.* = -1;
    const received = fdpass.receive(socket_fd, buffer, fd_slots, 0) orelse return error.READ_ERROR;
    return @intCast(received.len);
}

export fn libforks_write_socket_fds(socket_fd: c_int, data: ?[*]const u8, length: usize, fds: ?[*]const c_int, fd_count: usize) c_int {
    return count(writeSocketFds(socket_fd, data, length, fds, fd_count));
}

fn writeSocketFds(socket_fd: c_int, data: ?[*]const u8, length: usize, fds: ?[*]const c_int, fd_count: usize) Error!c_int {
    if (data == null or length == 0 or fd_count > 0 and fds == null or fd_count > limits.max_fds_per_message or length > std.math.maxInt(c_int)) {
        return result_mod.invalid();
    }
    const fd_list: []const c_int = if (fds) |f| f[0..fd_count] else &.{};
    if (fdpass.send(socket_fd, data.?[0..length], fd_list) != 0) return error.WRITE_ERROR;
    return @intCast(length);
}

export fn libforks_socket_hangup(socket_fd: c_int) c_int {
    return count(socketHangup(socket_fd));
}

fn socketHangup(socket_fd: c_int) Error!c_int {
    if (socket_fd < 0) return result_mod.invalid();
    if (fdpass.trySendHangup(socket_fd) != 0) return error.WRITE_ERROR;
    return 0;
}

export fn libforks_socketpair(fds: ?*[2]c_int) c_int {
    return count(socketPair(fds));
}

fn socketPair(fds: ?*[2]c_int) Error!c_int {
    const out = fds orelse return result_mod.invalid();
    if (sys.socketpairCloexec(sys.message_socket_type, out) != 0) return error.SOCKET_CREATION_ERROR;
    return 0;
}

export fn libforks_pipe(fds: ?*[2]c_int) c_int {
    return count(pipe(fds));
}

fn pipe(fds: ?*[2]c_int) Error!c_int {
    const out = fds orelse return result_mod.invalid();
    if (sys.pipeCloexec(out) != 0) return error.PIPE_CREATION_ERROR;
    return 0;
}

export fn libforks_memfd(name: ?[*:0]const u8) c_int {
    return count(memfd(name));
}

fn memfd(name: ?[*:0]const u8) Error!c_int {
    if (!sys.linux_paths) return result_mod.withErrno(error.INVALID_ARGUMENT, sys.E.NOSYS);
    const fd = memfd_create(name orelse "libforks", 1); // MFD_CLOEXEC
    if (fd < 0) return error.PIPE_CREATION_ERROR;
    return fd;
}

extern "c" fn memfd_create(name: [*:0]const u8, flags: c_uint) c_int;

// Exported as the function itself, so its address is the one the client
// recognizes (client.buildForkRequest) whoever passes it.
comptime {
    @export(&exec.entrypoint, .{ .name = "libforks_exec_entrypoint" });
}

export fn libforks_send_exec_spec(
    socket_fd: c_int,
    path: ?[*:0]const u8,
    argv: ?[*:null]const ?[*:0]const u8,
    envp: ?[*:null]const ?[*:0]const u8,
    cwd: ?[*:0]const u8,
    fds: ?[*]const c_int,
    targets: ?[*]const c_int,
    fd_count: usize,
) Result {
    const fd_list, const target_list = exec.fdLists(fds, targets, fd_count) catch |err| return status(err);
    return status(exec.sendSpec(socket_fd, path, argv, envp, cwd, fd_list, target_list));
}

export fn libforks_read_exec_result(socket_fd: c_int, failed_step_ptr: ?*c_int) Result {
    return status(exec.readResult(socket_fd, failed_step_ptr));
}

export fn libforks_doorbell_open(doorbell_fd_ptr: ?*c_int) Result {
    return status(notify.open(doorbell_fd_ptr));
}

export fn libforks_doorbell_close(doorbell_fd: c_int) Result {
    return status(notify.close(doorbell_fd));
}

export fn libforks_watch(doorbell_fd: c_int, fd: c_int, events: c_int, token: u64) Result {
    return status(notify.watch(doorbell_fd, fd, events, token));
}

export fn libforks_unwatch(doorbell_fd: c_int, fd: c_int) Result {
    return status(notify.unwatch(doorbell_fd, fd));
}

export fn libforks_result_string(result: Result) [*:0]const u8 {
    return result.name();
}

export fn libforks_last_errno() c_int {
    return last_errno;
}

export fn libforks_set_nonblocking(fd: c_int, nonblocking: bool) c_int {
    return count(setNonblocking(fd, nonblocking));
}

fn setNonblocking(fd: c_int, nonblocking: bool) Error!c_int {
    if (sys.setNonblocking(fd, nonblocking) != 0) return error.INVALID_ARGUMENT;
    return 0;
}

export fn libforks_dup_cloexec(fd: c_int) c_int {
    return count(dupCloexec(fd));
}

fn dupCloexec(fd: c_int) Error!c_int {
    if (fd < 0) return result_mod.withErrno(error.INVALID_ARGUMENT, sys.E.BADF);
    const copy = sys.fcntl(fd, sys.F_DUPFD_CLOEXEC, @as(c_int, 0));
    if (copy < 0) return error.INVALID_ARGUMENT;
    return copy;
}

export fn libforks_version() [*:0]const u8 {
    return version;
}

test {
    _ = protocol;
    _ = fdpass;
    _ = start;
    _ = @import("abi_test.zig");
    _ = @import("abi.zig");
    _ = @import("entry_cache.zig");
    _ = handles;
    _ = @import("tree.zig");
    _ = @import("cgroup.zig");
    _ = @import("proc.zig");
    _ = @import("peers.zig");
    _ = @import("write_end.zig");
    _ = @import("exits.zig");
    _ = @import("pending.zig");
    _ = @import("events.zig");
}

/// A failed assertion is a bug in libforks. In a server or a fresh child
/// the default handler (stack traces, debug info parsing) would allocate
/// and take locks; this one writes one line with write(2) and aborts.
pub const panic = std.debug.FullPanic(onPanic);

fn onPanic(message: []const u8, first_trace_address: ?usize) noreturn {
    for ([_][]const u8{ "libforks: internal error: ", message, "\n" }) |part| _ = sys.writeFull(2, part);
    // Debug builds are for developers, who want the trace more than safety.
    if (@import("builtin").mode == .Debug) std.debug.dumpCurrentStackTrace(first_trace_address orelse @returnAddress());
    abort();
}

extern "c" fn abort() noreturn;
