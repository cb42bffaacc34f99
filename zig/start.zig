//! Starting a server: the double fork, the exec of libforks-server for a
//! clean server, the start-up announcement and the server's pidfd. The
//! connection it returns is a client.ConnState like any other.

const std = @import("std");
const sys = @import("sys.zig");
const abi = @import("abi.zig");
const protocol = @import("protocol.zig");
const fdpass = @import("fdpass.zig");
const client = @import("client.zig");
const server = @import("server.zig");
const tree = @import("tree.zig");
const result_mod = @import("result.zig");
const stdio_locks = @import("stdio_locks.zig");
const child_fork = @import("child_fork.zig");
const Result = result_mod.Result;
const Error = result_mod.Error;
const withErrno = result_mod.withErrno;
const invalid = result_mod.invalid;
const ServerConn = abi.ServerConn;
const ConnState = client.ConnState;

const CleanServer = struct {
    path: ?[*:0]const u8,
    fd: sys.fd_t,
};

pub fn start(conn_ptr: ?*ServerConn) Error!void {
    return startWith(conn_ptr, null);
}

pub fn startEx(conn_ptr: ?*ServerConn, options: ?*const abi.StartOptions) Error!void {
    const given = options orelse return startWith(conn_ptr, null);
    if (given.size < @sizeOf(abi.StartOptions)) return invalid();
    switch (given.mode) {
        abi.mode_snapshot => return startWith(conn_ptr, null),
        abi.mode_clean => {
            if (given.server_fd < 0 and given.server_path == null) return invalid();
            if (given.server_fd >= 0 and !sys.linux_paths) return invalid();
            return startWith(conn_ptr, .{ .path = given.server_path, .fd = given.server_fd });
        },
        else => return invalid(),
    }
}

fn startWith(conn_ptr: ?*ServerConn, clean: ?CleanServer) Error!void {
    const out = conn_ptr orelse return invalid();
    const memory = sys.malloc(@sizeOf(ConnState)) orelse return error.MALLOC_ERROR;
    errdefer freeKeepErrno(memory);
    const state: *ConnState = @ptrCast(@alignCast(memory));

    var pair: [2]sys.fd_t = undefined;
    if (sys.socketpairCloexec(sys.message_socket_type, &pair) != 0) return error.SOCKET_CREATION_ERROR;
    errdefer sys.closeKeepErrno(pair[0]);
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
    // Here, where dlsym is allowed: a snapshot server inherits it.
    child_fork.lookUp();
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
    if (middle < 0) return withErrno(error.FORK_ERROR, fork_errno);
    while (sys.waitpid(middle, null, 0) < 0 and sys.errno() == sys.E.INTR) {}

    var hello: protocol.Reply = undefined;
    var cgroup_fd: sys.fd_t = -1;
    errdefer sys.closeKeepErrno(cgroup_fd);
    try readAnnouncement(pair[0], &hello, &cgroup_fd);
    if (hello.result != @intFromEnum(Result.OK)) return result_mod.fromReply(hello.result, hello.error_number);
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
}

fn freeKeepErrno(memory: *anyopaque) void {
    const saved = sys.errno();
    sys.free(memory);
    sys.setErrno(saved);
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
        if (sys.linux_paths and program.fd >= 0) {
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

/// Reads the start-up announcement, one Reply message on the connection
/// socket itself (no reply pipe exists yet). It may carry one fd: the
/// tree's cgroup directory (tree.zig), stored in *cgroup_fd (else -1).
fn readAnnouncement(fd: sys.fd_t, out: *protocol.Reply, cgroup_fd: *sys.fd_t) Error!void {
    var fds = [1]sys.fd_t{-1};
    cgroup_fd.* = -1;
    const received = fdpass.receive(fd, std.mem.asBytes(out), &fds, 0) orelse return error.READ_ERROR;
    if (received.fd_count == 1) cgroup_fd.* = fds[0];
    if (received.len == 0) return withErrno(error.SERVER_GONE, sys.E.PIPE);
    if (received.len != @sizeOf(protocol.Reply)) return withErrno(error.PROTOCOL_ERROR, 0);
}

/// pidfd_open(2): close-on-exec; -1 where the kernel lacks it.
fn openPidfd(pid: sys.pid_t) sys.fd_t {
    if (!sys.linux_paths) return tree.watchExit(pid); // a kqueue on macOS
    const linux = std.os.linux;
    const rc = linux.syscall2(.pidfd_open, @as(usize, @intCast(pid)), 0);
    if (linux.E.init(rc) != .SUCCESS) return -1;
    return @intCast(rc);
}
