//! The C ABI of libforks: every symbol of lib/include/libforks.h, each a
//! thin shim over the file that implements it.

const std = @import("std");
const sys = @import("sys.zig");
const limits = @import("limits.zig");
const protocol = @import("protocol.zig");
const fdpass = @import("fdpass.zig");
const client = @import("client.zig");
const exec = @import("exec.zig");
const notify = @import("notify.zig");
const handles = @import("handles.zig");
const result_mod = @import("result.zig");
const Result = result_mod.Result;
const ServerConn = client.ServerConn;

pub const version = "0.1.0";

export fn libforks_start(conn_ptr: ?*ServerConn) Result {
    return client.start(conn_ptr);
}

export fn libforks_get_server_pid(conn: ServerConn) sys.pid_t {
    return client.serverPid(conn);
}

export fn libforks_kill_all(conn: ServerConn, signal: c_int) Result {
    return client.killAll(conn, signal);
}

export fn libforks_kill_all_async(conn: ServerConn, signal: c_int, reply_fd_ptr: ?*c_int) Result {
    return client.killAllAsync(conn, signal, reply_fd_ptr);
}

export fn libforks_kill(conn: ServerConn, pid: sys.pid_t, signal: c_int) Result {
    return client.kill(conn, pid, signal, 0);
}

export fn libforks_kill_tree(conn: ServerConn, pid: sys.pid_t, signal: c_int) Result {
    return client.kill(conn, pid, signal, client.kill_tree);
}

export fn libforks_kill_async(conn: ServerConn, pid: sys.pid_t, signal: c_int, flags: c_int, reply_fd_ptr: ?*c_int) Result {
    return client.killAsync(conn, pid, signal, flags, reply_fd_ptr);
}

export fn libforks_stop(conn: ServerConn, wait: bool) Result {
    return client.stop(conn, wait, false);
}

export fn libforks_stop_server_only(conn: ServerConn) Result {
    return client.stop(conn, true, true);
}

export fn libforks_free_conn(conn: ServerConn) void {
    client.freeConn(conn);
}

export fn libforks_conn_share(conn: ServerConn, shared_ptr: ?*ServerConn) Result {
    return client.shareConn(conn, shared_ptr);
}

export fn libforks_conn_token(conn: ServerConn, token_ptr: ?*u64) Result {
    return handles.share(conn, token_ptr);
}

export fn libforks_conn_attach(token: u64, conn_ptr: ?*ServerConn) Result {
    return handles.attach(token, conn_ptr);
}

export fn libforks_conn_token_drop(token: u64) Result {
    return handles.drop(token);
}

export fn libforks_thread_adopt_conn(conn: ServerConn) Result {
    return handles.adoptConn(conn);
}

export fn libforks_thread_release_conn(conn: ServerConn) Result {
    return handles.releaseConn(conn);
}

export fn libforks_thread_adopt_fd(fd: c_int) Result {
    return handles.adoptFd(fd);
}

export fn libforks_thread_release_fd(fd: c_int) Result {
    return handles.releaseFd(fd);
}

export fn libforks_start_ex(conn_ptr: ?*ServerConn, options: ?*const client.StartOptions) Result {
    return client.startEx(conn_ptr, options);
}

export fn libforks_fork(conn: ServerConn, pid_ptr: ?*sys.pid_t, socket_fd_ptr: ?*c_int, exit_fd_ptr: ?*c_int, entrypoint: ?client.Entrypoint) Result {
    return client.fork(conn, .{ .pid = pid_ptr, .socket_fd = socket_fd_ptr, .exit_fd = exit_fd_ptr }, entrypoint);
}

export fn libforks_fork_async(conn: ServerConn, request: ?*const client.ForkRequest, reply_fd_ptr: ?*c_int) Result {
    return client.forkAsync(conn, request, reply_fd_ptr);
}

export fn libforks_conn_fd(conn: ServerConn) c_int {
    return client.connFd(conn);
}

export fn libforks_fork_symbol(conn: ServerConn, pid_ptr: ?*sys.pid_t, socket_fd_ptr: ?*c_int, exit_fd_ptr: ?*c_int, library: ?[*:0]const u8, symbol: ?[*:0]const u8) Result {
    return client.forkSymbol(conn, .{ .pid = pid_ptr, .socket_fd = socket_fd_ptr, .exit_fd = exit_fd_ptr }, library, symbol);
}

export fn libforks_wait(conn: ServerConn, pid: sys.pid_t, stat_loc: ?*c_int, options: c_int, rusage: ?*sys.rusage) Result {
    return client.waitpid(conn, pid, null, stat_loc, options, rusage);
}

export fn libforks_waitpid(conn: ServerConn, pid: sys.pid_t, waited_pid: ?*sys.pid_t, stat_loc: ?*c_int, options: c_int, rusage: ?*sys.rusage) Result {
    return client.waitpid(conn, pid, waited_pid, stat_loc, options, rusage);
}

export fn libforks_wait_all(conn: ServerConn) Result {
    return client.waitAll(conn);
}

export fn libforks_wait_async(conn: ServerConn, pid: sys.pid_t, options: c_int, reply_fd_ptr: ?*c_int) Result {
    return client.waitAsync(conn, pid, options, reply_fd_ptr);
}

export fn libforks_wait_all_async(conn: ServerConn, reply_fd_ptr: ?*c_int) Result {
    return client.waitAllAsync(conn, reply_fd_ptr);
}

export fn libforks_stop_async(conn: ServerConn, wait: bool, server_only: bool, reply_fd_ptr: ?*c_int) Result {
    return client.stopAsync(conn, wait, server_only, reply_fd_ptr);
}

export fn libforks_stop_finish(conn: ServerConn) Result {
    return client.stopFinish(conn);
}

export fn libforks_reply_read(reply_fd: c_int, reply: ?*protocol.Reply) Result {
    result_mod.clear();
    var ignored: protocol.Reply = undefined;
    return client.readReply(reply_fd, reply orelse &ignored);
}

export fn libforks_read_socket_fds(socket_fd: c_int, data: ?[*]u8, length: usize, fds: ?[*]c_int, max_fd_count: usize) c_int {
    result_mod.clear();
    if (length > 0 and data == null or max_fd_count > 0 and fds == null or length > std.math.maxInt(c_int)) {
        return invalidArgument();
    }
    const buffer: []u8 = if (data) |d| d[0..length] else &.{};
    const fd_slots: []c_int = if (fds) |f| f[0..max_fd_count] else &.{};
    // Slots beyond what one message can carry are never filled.
    for (fd_slots[@min(fd_slots.len, limits.max_fds_per_message)..]) |*slot| slot.* = -1;
    const received = fdpass.receive(socket_fd, buffer, fd_slots, 0) orelse {
        _ = result_mod.fail(.READ_ERROR);
        return -1;
    };
    return @intCast(received.len);
}

export fn libforks_write_socket_fds(socket_fd: c_int, data: ?[*]const u8, length: usize, fds: ?[*]const c_int, fd_count: usize) c_int {
    result_mod.clear();
    if (data == null or length == 0 or fd_count > 0 and fds == null or fd_count > limits.max_fds_per_message or length > std.math.maxInt(c_int)) {
        return invalidArgument();
    }
    const fd_list: []const c_int = if (fds) |f| f[0..fd_count] else &.{};
    if (fdpass.send(socket_fd, data.?[0..length], fd_list) != 0) {
        _ = result_mod.fail(.WRITE_ERROR);
        return -1;
    }
    return @intCast(length);
}

fn invalidArgument() c_int {
    _ = result_mod.failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    return -1;
}

export fn libforks_socketpair(fds: ?*[2]c_int) c_int {
    result_mod.clear();
    const out = fds orelse return invalidArgument();
    if (sys.socketpairCloexec(sys.message_socket_type, out) != 0) {
        _ = result_mod.fail(.SOCKET_CREATION_ERROR);
        return -1;
    }
    return 0;
}

export fn libforks_pipe(fds: ?*[2]c_int) c_int {
    result_mod.clear();
    const out = fds orelse return invalidArgument();
    if (sys.pipeCloexec(out) != 0) {
        _ = result_mod.fail(.PIPE_CREATION_ERROR);
        return -1;
    }
    return 0;
}

export fn libforks_memfd(name: ?[*:0]const u8) c_int {
    result_mod.clear();
    if (!sys.linux_paths) {
        _ = result_mod.failWith(.INVALID_ARGUMENT, sys.E.NOSYS);
        return -1;
    }
    const fd = memfd_create(name orelse "libforks", 1); // MFD_CLOEXEC
    if (fd < 0) _ = result_mod.fail(.PIPE_CREATION_ERROR);
    return fd;
}

extern "c" fn memfd_create(name: [*:0]const u8, flags: c_uint) c_int;

// Exported as the function itself, so its address is the one the client
// recognizes (client.buildForkRequest) whoever passes it.
comptime {
    @export(&exec.entrypoint, .{ .name = "libforks_exec_entrypoint" });
    @export(&exec.sendSpec, .{ .name = "libforks_send_exec_spec" });
}

export fn libforks_read_exec_result(socket_fd: c_int, failed_step_ptr: ?*c_int) Result {
    return exec.readResult(socket_fd, failed_step_ptr);
}

export fn libforks_doorbell_open(doorbell_fd_ptr: ?*c_int) Result {
    return notify.open(doorbell_fd_ptr);
}

export fn libforks_doorbell_close(doorbell_fd: c_int) Result {
    return notify.close(doorbell_fd);
}

export fn libforks_watch(doorbell_fd: c_int, fd: c_int, events: c_int, token: u64) Result {
    return notify.watch(doorbell_fd, fd, events, token);
}

export fn libforks_unwatch(doorbell_fd: c_int, fd: c_int) Result {
    return notify.unwatch(doorbell_fd, fd);
}

export fn libforks_result_string(result: Result) [*:0]const u8 {
    return result.name();
}

export fn libforks_last_errno() c_int {
    return result_mod.lastErrno();
}

export fn libforks_set_nonblocking(fd: c_int, nonblocking: bool) c_int {
    result_mod.clear();
    if (sys.setNonblocking(fd, nonblocking) != 0) {
        _ = result_mod.fail(.INVALID_ARGUMENT);
        return -1;
    }
    return 0;
}

export fn libforks_dup_cloexec(fd: c_int) c_int {
    result_mod.clear();
    if (fd < 0) {
        _ = result_mod.failWith(.INVALID_ARGUMENT, sys.E.BADF);
        return -1;
    }
    const copy = sys.fcntl(fd, sys.F_DUPFD_CLOEXEC, @as(c_int, 0));
    if (copy < 0) _ = result_mod.fail(.INVALID_ARGUMENT);
    return copy;
}

export fn libforks_version() [*:0]const u8 {
    return version;
}

test {
    _ = protocol;
    _ = fdpass;
    _ = result_mod;
    _ = @import("limits_test.zig");
    _ = @import("entry_cache.zig");
    _ = handles;
    _ = @import("tree.zig");
    _ = @import("peers.zig");
    _ = @import("write_end.zig");
    _ = @import("exits.zig");
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
