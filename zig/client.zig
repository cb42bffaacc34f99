//! The calls a client makes: starting a server and sending it requests.
//!
//! Every request gets its own reply pipe (see protocol.zig), so a
//! connection is shared by any number of threads without a lock: the only
//! shared state is the socket, and each request is one sendmsg.

const std = @import("std");
const sys = @import("sys.zig");
const limits = @import("limits.zig");
const protocol = @import("protocol.zig");
const fdpass = @import("fdpass.zig");
const server = @import("server.zig");
const exec = @import("exec.zig");
const tree = @import("tree.zig");
const result_mod = @import("result.zig");
const stdio_locks = @import("stdio_locks.zig");
const Result = result_mod.Result;
const fail = result_mod.fail;
const failWith = result_mod.failWith;

pub const ServerConn = extern struct { private: ?*anyopaque };
pub const Entrypoint = *const fn (ServerConn, c_int) callconv(.c) void;

const conn_magic: u32 = 0x4e43_464c; // "LFCN"

const ConnState = struct {
    magic: u32 = conn_magic,
    fd: sys.fd_t,
    server_pid: sys.pid_t,
    /// Pid of the process that started the server; 0 in children.
    owner_pid: sys.pid_t,
    /// Children's connections live in static memory: nothing to free.
    heap: bool,
    /// Set by stop_async: stop_finish then waits for the server's end.
    stopping_with_wait: bool = false,
    /// stop_server_only: the server process stays, as the reaper of the
    /// children it leaves running; only its connection ends.
    detaching: bool = false,
    /// stop_async was called: stop_finish reaps the server, free_conn not.
    stop_requested: bool = false,
    /// A clean server runs the libforks-server executable, not a copy of
    /// the caller: addresses in the caller mean nothing there.
    clean: bool = false,
    /// Owner only, Linux 5.3+: readable once the server has exited, so stop
    /// can return after the process itself is gone, not only its sockets.
    pidfd: sys.fd_t = -1,
    /// Owner only: the tree's cgroup directory (O_PATH), -1 if none. Lets
    /// the owner clean up after a server that was SIGKILLed (tree.zig).
    cgroup_fd: sys.fd_t = -1,
    /// Handles on this connection (libforks_conn_share adds one); memory
    /// and socket go with the last libforks_free_conn.
    refs: std.atomic.Value(u32) = std.atomic.Value(u32).init(1),
};

/// libforks_StartOptions.
pub const StartOptions = extern struct {
    size: usize,
    mode: c_int,
    server_path: ?[*:0]const u8,
    server_fd: c_int,
};

pub const mode_snapshot: c_int = 0;
pub const mode_clean: c_int = 1;

const CleanServer = struct {
    path: ?[*:0]const u8,
    fd: sys.fd_t,
};

/// A child's connection: its own socket to the server, made by the server
/// at its fork (server.zig). Each child is a separate process, so one
/// static slot per process is enough and no allocation happens after fork.
var child_conn: ConnState = .{ .fd = -1, .server_pid = 0, .owner_pid = 0, .heap = false };

pub fn initChildConn(fd: sys.fd_t, server_pid: sys.pid_t) ServerConn {
    child_conn = .{ .fd = fd, .server_pid = server_pid, .owner_pid = 0, .heap = false };
    return .{ .private = &child_conn };
}

fn stateOf(conn: ServerConn) ?*ConnState {
    const pointer = conn.private orelse return null;
    if (!std.mem.isAligned(@intFromPtr(pointer), @alignOf(ConnState))) return null;
    const state: *ConnState = @ptrCast(@alignCast(pointer));
    if (state.magic != conn_magic or state.fd < 0) return null;
    return state;
}

// ---------------------------------------------------------------- start

pub fn start(conn_ptr: ?*ServerConn) Result {
    return startWith(conn_ptr, null);
}

pub fn startEx(conn_ptr: ?*ServerConn, options: ?*const StartOptions) Result {
    result_mod.clear();
    const given = options orelse return startWith(conn_ptr, null);
    if (given.size < @sizeOf(StartOptions)) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    switch (given.mode) {
        mode_snapshot => return startWith(conn_ptr, null),
        mode_clean => {
            if (given.server_fd < 0 and given.server_path == null) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
            if (given.server_fd >= 0 and !sys.is_linux) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
            return startWith(conn_ptr, .{ .path = given.server_path, .fd = given.server_fd });
        },
        else => return failWith(.INVALID_ARGUMENT, sys.E.INVAL),
    }
}

fn startWith(conn_ptr: ?*ServerConn, clean: ?CleanServer) Result {
    result_mod.clear();
    const out = conn_ptr orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    const memory = sys.malloc(@sizeOf(ConnState)) orelse return fail(.MALLOC_ERROR);
    const state: *ConnState = @ptrCast(@alignCast(memory));

    var pair: [2]sys.fd_t = undefined;
    if (sys.socketpairCloexec(sys.message_socket_type, &pair) != 0) {
        const r = fail(.SOCKET_CREATION_ERROR);
        sys.free(memory);
        return r;
    }
    const owner_pid = sys.getpid();

    // Why the C library's fork() for the first fork: the caller may be
    // multithreaded (a Bun process always is). glibc, musl and macOS's
    // fork() take the C library's internal locks (malloc arenas, stdio,
    // the dynamic loader) before forking and reset them in the child, so
    // the server and every child inherit them unlocked. A raw clone/fork
    // system call would copy them in whatever state other threads left
    // them, and a child calling malloc could deadlock forever. Stream
    // locks are the exception musl and macOS leave: stdio_locks.zig.
    // Signals are blocked across the fork so that no host handler runs in
    // the new process before the server replaces them.
    var old_mask: sys.sigset_t = undefined;
    sys.blockAllSignals(&old_mask);
    stdio_locks.lockBeforeFork();
    const middle = sys.fork();
    if (middle == 0) {
        stdio_locks.unlockAfterFork();
        // A short-lived middle process: the server is its child, and it
        // exits at once, so the server is re-parented to init and the
        // caller never has a zombie to reap (Bun does not reap unknown
        // children).
        _ = sys.close(pair[0]);
        // Opened here, where the owner is this process's parent: see
        // tree.openOwnerPidfd.
        const owner_pidfd = tree.openOwnerPidfd(owner_pid);
        const server_pid = sys.fork();
        if (server_pid == 0) {
            if (clean) |program| execServer(program, pair[1], owner_pid, owner_pidfd);
            server.main(pair[1], owner_pid, owner_pidfd, .snapshot);
        }
        if (server_pid < 0) {
            const hello = protocol.Reply{ .result = @intFromEnum(Result.FORK_ERROR), .error_number = sys.errno() };
            _ = fdpass.send(pair[1], std.mem.asBytes(&hello), &.{});
        }
        sys._exit(0);
    }
    const fork_errno = sys.errno();
    stdio_locks.unlockAfterFork();
    sys.setSignalMask(&old_mask);
    _ = sys.close(pair[1]);
    if (middle < 0) {
        _ = sys.close(pair[0]);
        sys.free(memory);
        return failWith(.FORK_ERROR, fork_errno);
    }
    while (sys.waitpid(middle, null, 0) < 0 and sys.errno() == sys.E.INTR) {}

    var hello: protocol.Reply = undefined;
    var cgroup_fd: sys.fd_t = -1;
    const got = readReplyFrom(pair[0], &hello, &cgroup_fd);
    if (got != .OK or hello.result != @intFromEnum(Result.OK)) {
        sys.closeKeepErrno(cgroup_fd);
        _ = sys.close(pair[0]);
        sys.free(memory);
        if (got != .OK) return got;
        return failWith(@enumFromInt(hello.result), hello.error_number);
    }
    std.debug.assert(hello.pid > 0);
    state.* = .{
        .fd = pair[0],
        .server_pid = hello.pid,
        .owner_pid = owner_pid,
        .heap = true,
        .clean = clean != null,
        .pidfd = openPidfd(hello.pid),
        .cgroup_fd = cgroup_fd,
    };
    out.* = .{ .private = state };
    return .OK;
}

const fexecve = if (sys.is_linux) struct {
    extern "c" fn fexecve(fd: sys.fd_t, argv: [*:null]const ?[*:0]const u8, envp: [*:null]const ?[*:0]const u8) c_int;
}.fexecve else undefined;
extern "c" var environ: [*:null]const ?[*:0]const u8;
extern "c" fn _NSGetEnviron() *[*:null]const ?[*:0]const u8;

/// In the process that becomes a clean server: exec libforks-server,
/// telling it the number of the fd that holds the owner's connection (the
/// socket keeps the number the library gave it, so no inheritable fd of
/// the caller is displaced). Only exec-safe calls: this runs in a child of
/// a possibly multithreaded caller. On failure the reason goes back on the
/// connection as the start-up announcement.
fn execServer(program: CleanServer, socket_fd: sys.fd_t, owner_pid: sys.pid_t, owner_pidfd: sys.fd_t) noreturn {
    // Clearing close-on-exec is what lets the socket (and the owner's
    // pidfd) survive execve.
    if (owner_pidfd >= 0) _ = sys.fcntl(owner_pidfd, sys.F_SETFD, @as(c_int, 0));
    if (sys.fcntl(socket_fd, sys.F_SETFD, @as(c_int, 0)) == 0) {
        var pid_text: [16]u8 = undefined;
        var fd_text: [16]u8 = undefined;
        var pidfd_text: [16]u8 = undefined;
        const owner_arg = std.fmt.bufPrintZ(&pid_text, "{d}", .{owner_pid}) catch unreachable;
        const fd_arg = std.fmt.bufPrintZ(&fd_text, "{d}", .{socket_fd}) catch unreachable;
        const pidfd_arg = std.fmt.bufPrintZ(&pidfd_text, "{d}", .{owner_pidfd}) catch unreachable;
        const argv = [_:null]?[*:0]const u8{ "libforks-server", owner_arg.ptr, fd_arg.ptr, pidfd_arg.ptr };
        const envp = if (sys.is_darwin) _NSGetEnviron().* else environ;
        if (sys.is_linux and program.fd >= 0) {
            _ = fexecve(program.fd, &argv, envp);
            // fexecve is execveat(fd, "", AT_EMPTY_PATH): the kernel names
            // the program "/dev/fd/N", unreachable after exec since the fd
            // is close-on-exec, and binfmt_misc refuses such a program with
            // ENOENT (its interpreter must open it). That is every foreign
            // binary run through binfmt_misc (qemu-user: an arm64 container
            // on an x86-64 host). By path, the kernel opens the file itself
            // and hands it to an interpreter registered with the O flag.
            if (sys.errno() == sys.E.NOENT) {
                var path_text: [32]u8 = undefined;
                const path = std.fmt.bufPrintZ(&path_text, "/proc/self/fd/{d}", .{program.fd}) catch unreachable;
                _ = sys.execve(path.ptr, &argv, envp);
            }
        } else {
            _ = sys.execve(program.path.?, &argv, envp);
        }
    }
    const hello = protocol.Reply{ .result = @intFromEnum(Result.EXEC_ERROR), .error_number = sys.errno() };
    _ = fdpass.send(socket_fd, std.mem.asBytes(&hello), &.{});
    sys._exit(127);
}

/// Reads one Reply message from the connection socket (the start-up
/// announcement uses the socket itself, before any reply pipe exists).
/// The announcement may carry one fd: the tree's cgroup directory
/// (tree.zig), stored in *cgroup_fd (else -1).
fn readReplyFrom(fd: sys.fd_t, out: *protocol.Reply, cgroup_fd: *sys.fd_t) Result {
    var fds = [1]sys.fd_t{-1};
    cgroup_fd.* = -1;
    const received = fdpass.receive(fd, std.mem.asBytes(out), &fds, 0) orelse return fail(.READ_ERROR);
    if (received.fd_count == 1) cgroup_fd.* = fds[0];
    if (received.len == 0) return failWith(.SERVER_GONE, sys.E.PIPE);
    if (received.len != @sizeOf(protocol.Reply)) return failWith(.PROTOCOL_ERROR, 0);
    return .OK;
}

pub fn serverPid(conn: ServerConn) sys.pid_t {
    const state = stateOf(conn) orelse return -1;
    return state.server_pid;
}

/// pidfd_open(2): close-on-exec; -1 where the kernel lacks it.
fn openPidfd(pid: sys.pid_t) sys.fd_t {
    if (!sys.is_linux) return -1;
    const linux = std.os.linux;
    const rc = linux.syscall2(.pidfd_open, @as(usize, @intCast(pid)), 0);
    if (linux.E.init(rc) != .SUCCESS) return -1;
    return @intCast(rc);
}

pub fn freeConn(conn: ServerConn) void {
    const state = stateOf(conn) orelse return;
    if (state.refs.fetchSub(1, .acq_rel) != 1) return;
    _ = sys.close(state.fd);
    // The server now shuts down as if the owner had died. When it is this
    // process's child (this process is a subreaper or PID 1), nobody else
    // will reap it: wait for it here.
    if (state.owner_pid == sys.getpid() and !state.stop_requested) {
        tree.reapServer(state.server_pid, state.pidfd, true);
        tree.cleanUpAfterServer(state.pidfd, state.cgroup_fd);
    }
    if (state.pidfd >= 0) _ = sys.close(state.pidfd);
    if (state.cgroup_fd >= 0) _ = sys.close(state.cgroup_fd);
    state.fd = -1;
    state.magic = 0;
    if (state.heap) sys.free(state);
}

/// One more handle on the connection, for another thread's event loop (a
/// Bun Worker): the same connection, freed by its own libforks_free_conn.
pub fn shareConn(conn: ServerConn, out: ?*ServerConn) Result {
    result_mod.clear();
    const shared = out orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    const state = stateOf(conn) orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    _ = state.refs.fetchAdd(1, .acq_rel);
    shared.* = conn;
    return .OK;
}

// ---------------------------------------------------------------- requests

/// Sends `request` with a fresh reply pipe and `extra_fds`, and returns the
/// pipe's read end in reply_fd. extra_fds are the caller's to close.
fn send(state: *ConnState, request: *const protocol.Request, extra_fds: []const sys.fd_t, reply_fd: *sys.fd_t) Result {
    return sendRequest(state, request, extra_fds, reply_fd, false);
}

fn sendRequest(state: *ConnState, request: *const protocol.Request, extra_fds: []const sys.fd_t, reply_fd: *sys.fd_t, nonblocking: bool) Result {
    var pipe_fds: [2]sys.fd_t = undefined;
    if (sys.pipeCloexec(&pipe_fds) != 0) return fail(.PIPE_CREATION_ERROR);
    var fds: [protocol.max_request_fds]sys.fd_t = undefined;
    fds[0] = pipe_fds[1];
    @memcpy(fds[1..][0..extra_fds.len], extra_fds);
    const flags: c_int = if (nonblocking) sys.MSG_DONTWAIT else 0;
    const message = request.bytes();
    const attached = fds[0 .. 1 + extra_fds.len];
    // A stop names its sender (server.zig checks it is the owner).
    const sent = if (request.header.op == .stop)
        fdpass.sendWithCredentials(state.fd, message, attached, flags)
    else
        fdpass.sendFlags(state.fd, message, attached, flags);
    const send_errno = sys.errno();
    _ = sys.close(pipe_fds[1]);
    if (sent != 0) {
        _ = sys.close(pipe_fds[0]);
        if (send_errno == sys.E.AGAIN) return failWith(.WOULD_BLOCK, send_errno);
        if (send_errno == sys.E.PIPE or send_errno == sys.E.CONNRESET) return failWith(.SERVER_GONE, send_errno);
        return failWith(.WRITE_ERROR, send_errno);
    }
    reply_fd.* = pipe_fds[0];
    return .OK;
}

/// Reads the server's answer from a reply pipe and closes it.
pub fn readReply(reply_fd: sys.fd_t, out: *protocol.Reply) Result {
    if (reply_fd < 0) return failWith(.INVALID_ARGUMENT, sys.E.BADF);
    const n = sys.readFull(reply_fd, std.mem.asBytes(out));
    const read_errno = sys.errno();
    _ = sys.close(reply_fd);
    if (n < 0) return failWith(.READ_ERROR, read_errno);
    // The server closes the pipe only after a whole reply, or by dying.
    if (n == 0) return failWith(.SERVER_GONE, sys.E.PIPE);
    if (n != @sizeOf(protocol.Reply)) return failWith(.PROTOCOL_ERROR, 0);
    const result: Result = @enumFromInt(out.result);
    if (result != .OK) return failWith(result, out.error_number);
    return .OK;
}

fn transact(state: *ConnState, request: *const protocol.Request, extra_fds: []const sys.fd_t, out: *protocol.Reply) Result {
    var reply_fd: sys.fd_t = -1;
    const sent = send(state, request, extra_fds, &reply_fd);
    if (sent != .OK) return sent;
    return readReply(reply_fd, out);
}

// ---------------------------------------------------------------- fork

pub const ForkOut = struct {
    pid: ?*sys.pid_t,
    socket_fd: ?*c_int,
    exit_fd: ?*c_int,
};

pub fn fork(conn: ServerConn, out: ForkOut, entry: ?Entrypoint) Result {
    result_mod.clear();
    const state = stateOf(conn) orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    var request: protocol.Request = undefined;
    const built = buildForkRequest(state, entry, null, null, &request);
    if (built != .OK) return built;
    return forkWith(state, &request, out);
}

pub fn forkSymbol(conn: ServerConn, out: ForkOut, library: ?[*:0]const u8, symbol: ?[*:0]const u8) Result {
    result_mod.clear();
    const state = stateOf(conn) orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    if (symbol == null) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    var request: protocol.Request = undefined;
    const built = buildForkRequest(state, null, library, symbol, &request);
    if (built != .OK) return built;
    return forkWith(state, &request, out);
}

const ENAMETOOLONG: c_int = if (sys.is_linux) 36 else 63;

/// libforks_ForkRequest.
pub const ForkRequest = extern struct {
    size: usize,
    entrypoint: ?Entrypoint,
    library: ?[*:0]const u8,
    symbol: ?[*:0]const u8,
    socket_fd: c_int,
    exit_fd: c_int,
    nonblocking: bool,
    /// libforks_exec_entrypoint only: the whole spec is already queued on
    /// socket_fd (at most 64 KiB), so the server may run the program
    /// without copying itself.
    spec_queued: bool = false,
    /// The exit fd carries the child's struct rusage right after its
    /// libforks_ExitEvent (one write of both).
    exit_rusage: bool = false,
};

/// Sends a fork request without waiting for the server: the child's
/// socket end and the exit pipe's write end are the caller's (it made them
/// and keeps its copies), and the pid arrives on the reply fd.
pub fn forkAsync(conn: ServerConn, given: ?*const ForkRequest, reply_fd: ?*c_int) Result {
    result_mod.clear();
    const state = stateOf(conn) orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    const fork_request = given orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    const out = reply_fd orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    if (fork_request.size < @sizeOf(ForkRequest)) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    if (fork_request.entrypoint == null and fork_request.symbol == null) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    var request: protocol.Request = undefined;
    const built = buildForkRequest(state, fork_request.entrypoint, fork_request.library, fork_request.symbol, &request);
    if (built != .OK) return built;
    var extra: [2]sys.fd_t = undefined;
    var extra_count: usize = 0;
    if (fork_request.exit_fd >= 0) {
        request.header.flags |= protocol.Flags.exit_fd;
        extra[extra_count] = fork_request.exit_fd;
        extra_count += 1;
    }
    if (fork_request.socket_fd >= 0) {
        request.header.flags |= protocol.Flags.channel;
        extra[extra_count] = fork_request.socket_fd;
        extra_count += 1;
    }
    if (fork_request.spec_queued) {
        if (request.header.flags & protocol.Flags.builtin_exec == 0 or fork_request.socket_fd < 0) {
            return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
        }
        request.header.flags |= protocol.Flags.spec_queued;
    }
    if (fork_request.exit_rusage) {
        if (fork_request.exit_fd < 0) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
        request.header.flags |= protocol.Flags.exit_rusage;
    }
    return sendRequest(state, &request, extra[0..extra_count], out, fork_request.nonblocking);
}

/// The fork request for an entrypoint (by address, or the built-in exec
/// one by flag) or for a symbol to load in the child.
fn buildForkRequest(state: *ConnState, entry: ?Entrypoint, library: ?[*:0]const u8, symbol: ?[*:0]const u8, request: *protocol.Request) Result {
    request.* = .{ .header = .{ .op = .fork } };
    if (symbol == null) {
        const entrypoint = entry orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
        // libforks_exec_entrypoint goes by flag: the server runs its own
        // copy, which also exists in a clean server.
        if (@intFromPtr(entrypoint) == @intFromPtr(&exec.entrypoint)) {
            request.header.flags = protocol.Flags.builtin_exec;
            return .OK;
        }
        // A clean server is another program: a pointer into this one would
        // jump anywhere.
        if (state.clean) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
        request.header.entry = @intFromPtr(entrypoint);
        return .OK;
    }
    if (entry != null) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    const symbol_name = sys.cString(symbol.?);
    const library_path: []const u8 = if (library) |l| sys.cString(l) else "";
    // A clean server's own image exports nothing to run.
    if (state.clean and library == null) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    if (symbol_name.len == 0) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    if (symbol_name.len >= limits.max_symbol or library_path.len >= limits.max_path) {
        return failWith(.LIMIT_ERROR, ENAMETOOLONG);
    }
    // Checked here, where failing is cheap and reportable: the child would
    // only be able to exit with 127.
    if (sys.lookUpSymbol(library, symbol.?, sys.RTLD_NOW | sys.RTLD_LOCAL) == null) return failWith(.LOAD_ERROR, sys.E.NOENT);

    request.header.flags = protocol.Flags.symbol;
    @memcpy(request.payload[0..library_path.len], library_path);
    request.payload[library_path.len] = 0;
    @memcpy(request.payload[library_path.len + 1 ..][0..symbol_name.len], symbol_name);
    request.payload[library_path.len + 1 + symbol_name.len] = 0;
    request.header.payload_len = @intCast(library_path.len + symbol_name.len + 2);
    return .OK;
}

pub fn connFd(conn: ServerConn) c_int {
    const state = stateOf(conn) orelse return -1;
    return state.fd;
}

fn forkWith(state: *ConnState, request: *protocol.Request, out: ForkOut) Result {
    var exit_pipe: [2]sys.fd_t = .{ -1, -1 };
    var channel: [2]sys.fd_t = .{ -1, -1 };
    var extra: [2]sys.fd_t = undefined;
    var extra_count: usize = 0;
    defer for (extra[0..extra_count]) |fd| sys.closeKeepErrno(fd);

    if (out.exit_fd != null) {
        if (sys.pipeCloexec(&exit_pipe) != 0) return fail(.PIPE_CREATION_ERROR);
        request.header.flags |= protocol.Flags.exit_fd;
        extra[extra_count] = exit_pipe[1];
        extra_count += 1;
    }
    if (out.socket_fd != null) {
        if (sys.socketpairCloexec(sys.message_socket_type, &channel) != 0) {
            const r = fail(.SOCKET_CREATION_ERROR);
            sys.closeKeepErrno(exit_pipe[0]);
            return r;
        }
        request.header.flags |= protocol.Flags.channel;
        extra[extra_count] = channel[1];
        extra_count += 1;
    }
    var answer: protocol.Reply = undefined;
    const result = transact(state, request, extra[0..extra_count], &answer);
    if (result != .OK) {
        sys.closeKeepErrno(exit_pipe[0]);
        sys.closeKeepErrno(channel[0]);
        return result;
    }
    std.debug.assert(answer.pid > 0);
    if (out.pid) |p| p.* = answer.pid;
    if (out.exit_fd) |p| p.* = exit_pipe[0];
    if (out.socket_fd) |p| p.* = channel[0];
    return .OK;
}

// ---------------------------------------------------------------- signals, waits

pub fn killAll(conn: ServerConn, signal: c_int) Result {
    var reply_fd: c_int = -1;
    const sent = killAllAsync(conn, signal, &reply_fd);
    if (sent != .OK) return sent;
    var answer: protocol.Reply = undefined;
    return readReply(reply_fd, &answer);
}

pub fn killAllAsync(conn: ServerConn, signal: c_int, reply_fd: ?*c_int) Result {
    result_mod.clear();
    const out = reply_fd orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    const state = stateOf(conn) orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    if (signal < 0 or signal >= sys.NSIG) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    const request = protocol.Request{ .header = .{ .op = .kill_all, .number = signal } };
    return send(state, &request, &.{}, out);
}

/// libforks_kill_async flags.
pub const kill_tree: c_int = 1;

pub fn kill(conn: ServerConn, pid: sys.pid_t, signal: c_int, flags: c_int) Result {
    var reply_fd: c_int = -1;
    const sent = killAsync(conn, pid, signal, flags, &reply_fd);
    if (sent != .OK) return sent;
    var answer: protocol.Reply = undefined;
    return readReply(reply_fd, &answer);
}

/// Signals one child through the server, which knows whether it reaped
/// it: a kill(2) from here could reach a process that reused the pid.
pub fn killAsync(conn: ServerConn, pid: sys.pid_t, signal: c_int, flags: c_int, reply_fd: ?*c_int) Result {
    result_mod.clear();
    const out = reply_fd orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    const state = stateOf(conn) orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    if (pid <= 0) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    if (signal < 0 or signal >= sys.NSIG) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    if (flags & ~kill_tree != 0) return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    var request = protocol.Request{ .header = .{ .op = .kill, .number = pid, .signal = @intCast(signal) } };
    if (flags & kill_tree != 0) request.header.flags = protocol.Flags.tree;
    return send(state, &request, &.{}, out);
}

fn waitRequest(conn: ServerConn, pid: sys.pid_t, options: c_int, request: *protocol.Request) ?*ConnState {
    const state = stateOf(conn) orelse return null;
    if (pid != -1 and pid <= 0) return null;
    if (options & ~sys.WNOHANG != 0) return null;
    request.* = .{ .header = .{ .op = .wait, .number = pid } };
    if (options & sys.WNOHANG != 0) request.header.flags = protocol.Flags.no_hang;
    return state;
}

pub fn waitpid(conn: ServerConn, pid: sys.pid_t, waited_pid: ?*sys.pid_t, stat_loc: ?*c_int, options: c_int, usage: ?*sys.rusage) Result {
    result_mod.clear();
    var request: protocol.Request = undefined;
    const state = waitRequest(conn, pid, options, &request) orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    var answer: protocol.Reply = undefined;
    const result = transact(state, &request, &.{}, &answer);
    if (result != .OK) return result;
    if (waited_pid) |p| p.* = answer.pid;
    if (stat_loc) |p| p.* = answer.wait_status;
    if (usage) |p| p.* = answer.rusage;
    return .OK;
}

pub fn waitAll(conn: ServerConn) Result {
    result_mod.clear();
    const state = stateOf(conn) orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    const request = protocol.Request{ .header = .{ .op = .wait_all } };
    var answer: protocol.Reply = undefined;
    return transact(state, &request, &.{}, &answer);
}

pub fn waitAsync(conn: ServerConn, pid: sys.pid_t, options: c_int, reply_fd: ?*c_int) Result {
    result_mod.clear();
    const out = reply_fd orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    var request: protocol.Request = undefined;
    const state = waitRequest(conn, pid, options, &request) orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    return send(state, &request, &.{}, out);
}

pub fn waitAllAsync(conn: ServerConn, reply_fd: ?*c_int) Result {
    result_mod.clear();
    const out = reply_fd orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    const state = stateOf(conn) orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    const request = protocol.Request{ .header = .{ .op = .wait_all } };
    return send(state, &request, &.{}, out);
}

// ---------------------------------------------------------------- stop

fn ownerState(conn: ServerConn, result: *Result) ?*ConnState {
    const state = stateOf(conn) orelse {
        result.* = failWith(.INVALID_ARGUMENT, sys.E.INVAL);
        return null;
    };
    // A plain fork() of the owner holds a copy of its connection; only the
    // owner itself may stop the server.
    if (state.owner_pid == 0 or state.owner_pid != sys.getpid()) {
        result.* = failWith(.NOT_OWNER, sys.E.PERM);
        return null;
    }
    return state;
}

pub fn stopAsync(conn: ServerConn, wait: bool, server_only: bool, reply_fd: ?*c_int) Result {
    result_mod.clear();
    const out = reply_fd orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    var refused: Result = .OK;
    const state = ownerState(conn, &refused) orelse return refused;
    var request = protocol.Request{ .header = .{ .op = .stop } };
    if (wait) request.header.flags |= protocol.Flags.wait;
    if (server_only) request.header.flags |= protocol.Flags.server_only;
    state.stopping_with_wait = wait or server_only;
    state.detaching = server_only;
    state.stop_requested = true;
    return send(state, &request, &.{}, out);
}

/// After the stop reply: waits until the server process is gone (its end
/// of the connection closes when it exits, and nothing else holds it), then
/// frees the connection.
pub fn stopFinish(conn: ServerConn) Result {
    const state = stateOf(conn) orelse return failWith(.INVALID_ARGUMENT, sys.E.INVAL);
    if (state.stopping_with_wait) waitForServerEnd(state.fd, if (state.detaching) -1 else state.pidfd);
    // When the server is this process's own child (the double fork
    // re-parents it to the caller when the caller is a subreaper or PID 1),
    // it is reaped here; a stop without wait reaps it only if it is
    // already gone.
    if (!state.detaching) tree.reapServer(state.server_pid, state.pidfd, state.stopping_with_wait);
    if (!state.detaching) tree.cleanUpAfterServer(state.pidfd, state.cgroup_fd);
    // Shared handles still hold the socket: shut it down so their calls
    // fail at once with SERVER_GONE instead of waiting on a dead server.
    if (state.refs.load(.acquire) > 1) _ = sys.shutdown(state.fd, sys.SHUT_RDWR);
    freeConn(conn);
    return .OK;
}

fn waitForServerEnd(fd: sys.fd_t, pidfd: sys.fd_t) void {
    var sink: [64]u8 = undefined;
    var no_fds: [0]sys.fd_t = .{};
    while (fdpass.receive(fd, &sink, &no_fds, 0)) |received| {
        if (received.len == 0) break;
    }
    // End-of-file comes as the exiting server closes its fds, a moment
    // before the process is gone; the pidfd says when it is. The server
    // exits right after its last reply, so the bound is only a safety net.
    if (pidfd >= 0) {
        var ready = [1]sys.pollfd{.{ .fd = pidfd, .events = sys.POLLIN, .revents = 0 }};
        while (sys.poll(&ready, 1, 5000) < 0 and sys.errno() == sys.E.INTR) {}
    }
}

pub fn stop(conn: ServerConn, wait: bool, server_only: bool) Result {
    var reply_fd: c_int = -1;
    const sent = stopAsync(conn, wait, server_only, &reply_fd);
    if (sent == .NOT_OWNER or sent == .INVALID_ARGUMENT) return sent;
    var result = sent;
    if (sent == .OK) {
        var answer: protocol.Reply = undefined;
        result = readReply(reply_fd, &answer);
    }
    const saved = result_mod.lastErrno();
    _ = stopFinish(conn);
    if (result != .OK) return failWith(result, saved);
    return .OK;
}
