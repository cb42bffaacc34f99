//! The fork server process.
//!
//! It is a copy of a possibly multithreaded caller, so it runs under the
//! rules for a child of fork(2) in a multithreaded process: only
//! async-signal-safe calls (read, write, poll, fork, wait4, kill, close...),
//! no allocation, no lock. Every table is a fixed array in this file's
//! state, sized by limits.zig.
//!
//! One poll loop serves every connection. No request blocks it: waits are
//! recorded as pending and answered when a child exits.

const std = @import("std");
const sys = @import("sys.zig");
const limits = @import("limits.zig");
const protocol = @import("protocol.zig");
const fdpass = @import("fdpass.zig");
const child = @import("child.zig");
const exec = @import("exec.zig");
const entry_cache = @import("entry_cache.zig");
const tree = @import("tree.zig");
const Result = @import("result.zig").Result;

const Child = struct {
    pid: sys.pid_t,
    /// Write end of the exit pipe, or -1.
    exit_fd: sys.fd_t,
    /// Flags.exit_rusage: the exit fd gets the rusage after the event.
    exit_rusage: bool = false,
};

const PendingKind = enum { wait_pid, wait_any, wait_all, stop };

const Pending = struct {
    kind: PendingKind,
    pid: sys.pid_t,
    reply_fd: sys.fd_t,
};

const ExitRecord = struct {
    pid: sys.pid_t,
    status: c_int,
    rusage: sys.rusage,
};

const Phase = enum {
    serving,
    /// SIGTERM sent to every child; SIGKILL follows at kill_deadline_ms.
    terminating,
    /// Stopped by libforks_stop_server_only: no connection is served, and
    /// the server only reaps the children it leaves running until the
    /// last one exits (they die with it, tree.zig, so it must outlive them).
    detached,
};

/// Everything the server owns. Lives in the library's zeroed data, so it
/// costs nothing in processes that never become a server.
/// All zeroes is its initial value (a zeroed global costs no file space and
/// no copy), which main() completes.
pub const State = struct {
    kind: Kind,
    owner_pid: sys.pid_t,
    server_pid: sys.pid_t,
    /// RLIMIT_NOFILE as the caller had it; children get it back.
    caller_nofile: sys.rlimit,
    wake_pipe: [2]sys.fd_t,

    /// The connection of the process that started the server: its end
    /// means the owner is gone, and only it may stop the server. -1 once
    /// it ended.
    owner_fd: sys.fd_t,
    /// One socket for every child's requests: the server reads
    /// children_fd, and each new child keeps children_peer_fd as its
    /// connection. A request brings its own reply pipe (protocol.zig), so
    /// a connection only ever carries requests and one socket serves all
    /// children. A socket pair per child would cost two sockets per fork
    /// and one more wake-up of the server per exit (its end closing).
    children_fd: sys.fd_t,
    children_peer_fd: sys.fd_t,
    children: [limits.max_children]Child,
    child_count: usize,
    pending: [limits.max_pending]Pending,
    pending_count: usize,
    exits: [limits.max_exit_records]ExitRecord,
    exit_head: usize,
    exit_span: usize,
    exit_count: usize,

    phase: Phase,
    kill_deadline_ms: i64,
    killed: bool,
    /// Exit once no child is left (stop without wait, or owner gone).
    exit_when_empty: bool,

    /// Inheritable fds of the caller the server kept (fds >= 3), so a new
    /// child can close everything else in a few close_range calls.
    inherited: [max_inherited]sys.fd_t,
    inherited_count: usize,
    /// More than max_inherited: children close the server's fds one by one.
    inherited_overflow: bool,
    /// max_children, or fewer when the fd limit cannot hold that many
    /// (one fd per child): past it, fork answers LIMIT_ERROR instead of
    /// failing in odd places.
    child_limit: usize,

    request: protocol.Request,
};

pub var state: State = std.mem.zeroes(State);

pub const Kind = enum {
    /// A fork of the caller (libforks_start): its image and memory.
    snapshot,
    /// The libforks-server program, exec'd by libforks_start_ex with
    /// libforks_MODE_CLEAN: a fresh single-threaded process.
    clean,
};

pub const max_inherited = 64;

// ---------------------------------------------------------------- start

/// Entry of the server process, right after fork (or exec, for a clean
/// server). `owner_fd` is the server's end of the owner's connection, on
/// which it announces its pid once ready. All signals are
/// blocked on entry (the caller blocked them around fork), so no handler of
/// the host runs here before the dispositions below replace them.
pub fn main(owner_fd: sys.fd_t, owner_pid: sys.pid_t, owner_pidfd: sys.fd_t, kind: Kind) noreturn {
    // A server started from a child of another server starts from a copy
    // of that server's tables: begin empty.
    state.kind = kind;
    tree.reset(owner_pidfd);
    entry_cache.reset();
    state.owner_fd = owner_fd;
    state.children_fd = -1;
    state.children_peer_fd = -1;
    state.child_count = 0;
    state.pending_count = 0;
    state.exit_count = 0;
    state.exit_head = 0;
    state.exit_span = 0;
    state.phase = .serving;
    state.killed = false;
    state.exit_when_empty = false;
    state.caller_nofile = .{ .cur = 0, .max = 0 };
    state.inherited_count = 0;
    state.inherited_overflow = true; // until /proc/self/fd was read
    state.wake_pipe = .{ -1, -1 };
    state.owner_pid = owner_pid;
    state.server_pid = sys.getpid();

    resetSignals();
    closeInheritedCloexecFds(owner_fd, owner_pidfd);
    raiseFdLimit();
    // Before the first child: orphans of the tree come to the server, and
    // every child can join the tree's cgroup.
    tree.becomeSubreaper();
    tree.createCgroup(state.server_pid);

    if (sys.pipeCloexec(&state.wake_pipe) != 0 or
        sys.setNonblocking(state.wake_pipe[0], true) != 0 or
        sys.setNonblocking(state.wake_pipe[1], true) != 0)
    {
        announce(owner_fd, .{ .result = @intFromEnum(Result.PIPE_CREATION_ERROR), .error_number = sys.errno() }, -1);
        sys._exit(1);
    }
    var children_pair: [2]sys.fd_t = undefined;
    if (sys.socketpairCloexec(sys.message_socket_type, &children_pair) != 0) {
        announce(owner_fd, .{ .result = @intFromEnum(Result.SOCKET_CREATION_ERROR), .error_number = sys.errno() }, -1);
        sys._exit(1);
    }
    state.children_fd = children_pair[0];
    state.children_peer_fd = children_pair[1];
    // The kernel then stamps every message on the owner's connection with
    // its sender's pid, so a process that obtained a copy of that socket
    // still cannot stop the server.
    if (sys.is_linux) {
        const on: c_int = 1;
        _ = sys.setsockopt(owner_fd, sys.SOL_SOCKET, sys.SO_PASSCRED, &on, @sizeOf(c_int));
    }
    announce(owner_fd, .{ .result = @intFromEnum(Result.OK), .pid = state.server_pid }, tree.state.dir_fd);

    sys.unblockAllSignals();
    serve();
}

/// `with_fd` (the tree's cgroup directory, or -1) goes to the owner.
fn announce(fd: sys.fd_t, hello: protocol.Reply, with_fd: sys.fd_t) void {
    const fds = [1]sys.fd_t{with_fd};
    _ = fdpass.send(fd, std.mem.asBytes(&hello), if (with_fd >= 0) &fds else &.{});
}

fn onSignal(sig: c_int) callconv(.c) void {
    const saved = sys.errno();
    const byte: [1]u8 = .{if (sig == sys.SIGTERM) 't' else 'c'};
    _ = sys.write(state.wake_pipe[1], &byte, 1);
    sys.setErrno(saved);
}

/// The host's handlers point into the host's code and state: none may run
/// here. SIGPIPE is ignored so a vanished reader costs an EPIPE, not the
/// server. Terminal signals are ignored: on Ctrl-C the owner dies, and the
/// server must live long enough to stop the children in order.
/// The only signals whose disposition the server leaves non-default: a
/// new child resets just these.
pub const changed_signals = [_]c_int{ sys.SIGPIPE, sys.SIGINT, sys.SIGQUIT, sys.SIGHUP, sys.SIGCHLD, sys.SIGTERM };

fn resetSignals() void {
    var sig: c_int = 1;
    while (sig < sys.NSIG) : (sig += 1) {
        if (sig == sys.SIGKILL or sig == sys.SIGSTOP) continue;
        _ = sys.setDisposition(sig, sys.SIG_DFL, 0);
    }
    for (changed_signals[0..4]) |ignored| {
        _ = sys.setDisposition(ignored, sys.SIG_IGN, 0);
    }
    _ = sys.setDisposition(sys.SIGCHLD, @intFromPtr(&onSignal), sys.SA_RESTART | sys.SA_NOCLDSTOP);
    _ = sys.setDisposition(sys.SIGTERM, @intFromPtr(&onSignal), sys.SA_RESTART);
}

/// Close-on-exec fds are the host's private ones (Bun's epoll, eventfds,
/// pipes; other servers' sockets): a child of the server must not hold
/// them. Inheritable fds are kept on purpose: the caller left them open for
/// children (a listening socket shared by preforked workers, say).
fn closeInheritedCloexecFds(keep: sys.fd_t, keep_too: sys.fd_t) void {
    if (closeCloexecFromProcSelf(keep, keep_too)) return;
    var limit: sys.rlimit = undefined;
    const highest: u64 = if (sys.getrlimit(sys.RLIMIT_NOFILE, &limit) == 0) @min(limit.cur, 65536) else 1024;
    var fd: sys.fd_t = 3;
    while (fd < highest) : (fd += 1) {
        if (fd != keep and fd != keep_too and sys.isCloexec(fd)) _ = sys.close(fd);
    }
}

const InheritedScan = struct {
    keep: sys.fd_t,
    keep_too: sys.fd_t,
    overflow: bool = false,
};

fn closeCloexecFromProcSelf(keep: sys.fd_t, keep_too: sys.fd_t) bool {
    var scan = InheritedScan{ .keep = keep, .keep_too = keep_too };
    if (!sys.visitOpenFds(&scan, closeOrRecord)) return false;
    state.inherited_overflow = scan.overflow;
    return true;
}

fn closeOrRecord(scan: *InheritedScan, fd: sys.fd_t) void {
    if (fd == scan.keep or fd == scan.keep_too) return;
    if (sys.isCloexec(fd)) {
        _ = sys.close(fd);
    } else if (state.inherited_count < max_inherited) {
        state.inherited[state.inherited_count] = fd;
        state.inherited_count += 1;
    } else {
        scan.overflow = true;
    }
}

/// The server holds one fd per running child (its exit pipe) plus one per
/// pending request; the common soft limit of 1024 would cap children far
/// below max_children. Children get the caller's limit back.
fn raiseFdLimit() void {
    const reserve: u64 = limits.max_pending + 64;
    const needed: u64 = limits.max_children + reserve;
    state.child_limit = limits.max_children;
    if (sys.getrlimit(sys.RLIMIT_NOFILE, &state.caller_nofile) != 0) return;
    var usable = state.caller_nofile.cur;
    if (usable < needed) {
        const raised = sys.rlimit{ .cur = @min(needed, state.caller_nofile.max), .max = state.caller_nofile.max };
        if (sys.setrlimit(sys.RLIMIT_NOFILE, &raised) == 0) usable = raised.cur;
    }
    // Each child costs an exit pipe end and, briefly, the fds of its
    // request. Under a low limit, keep half for the rest.
    const kept = @min(reserve, usable / 2);
    const fit = usable - kept;
    state.child_limit = @intCast(@max(1, @min(fit, limits.max_children)));
}

// ---------------------------------------------------------------- loop

fn serve() noreturn {
    while (true) {
        // Adopted orphans of the tree count too: the server outlives
        // every process it may still have to kill or reap.
        if (state.exit_when_empty and state.child_count == 0 and !tree.hasChildren()) finish();

        // poll(2) skips a negative fd: a socket that was closed.
        var poll_fds = [4]sys.pollfd{
            .{ .fd = state.wake_pipe[0], .events = sys.POLLIN, .revents = 0 },
            .{ .fd = state.owner_fd, .events = sys.POLLIN, .revents = 0 },
            .{ .fd = state.children_fd, .events = sys.POLLIN, .revents = 0 },
            .{ .fd = tree.state.owner_pidfd, .events = sys.POLLIN, .revents = 0 },
        };
        const ready = sys.poll(&poll_fds, poll_fds.len, pollTimeout());
        if (ready < 0 and sys.errno() != sys.E.INTR) {
            // poll(2) fails only on EINVAL/ENOMEM/EFAULT; a server that can
            // no longer wait must not spin, so it shuts down as if orphaned.
            beginTermination();
        }

        // SIGCHLD writes to the wake pipe: reap only then (wait4 scans
        // every child, a cost that grows with their number).
        if (ready > 0 and poll_fds[0].revents != 0) {
            drainWakePipe();
            reapChildren();
            // A process that died left its children to the server: they
            // get what the rest of the tree got.
            if (state.phase == .terminating) {
                if (state.killed) tree.signalAdopted(sys.SIGKILL, &isInTable, false) else tree.signalAdopted(sys.SIGTERM, &isInTable, true);
            }
        }
        if (ready > 0 and poll_fds[3].revents != 0) ownerExited();

        if (ready > 0) {
            const owner_events = poll_fds[1].revents;
            if (owner_events & sys.POLLIN != 0) {
                handleReadable(.owner);
            } else if (owner_events & (sys.POLLHUP | sys.POLLERR | sys.POLLNVAL) != 0) {
                dropOwner();
            }
            const children_events = poll_fds[2].revents;
            if (children_events & sys.POLLIN != 0) {
                handleReadable(.children);
            } else if (children_events & (sys.POLLHUP | sys.POLLERR | sys.POLLNVAL) != 0) {
                // The server holds both ends, so this socket cannot end; if
                // it breaks anyway, no child can be served: close it (so
                // poll does not report it again) and shut down.
                _ = sys.close(state.children_fd);
                state.children_fd = -1;
                beginTermination();
            }
        }

        checkOwnerAlive();
        if (state.phase == .terminating and !state.killed and nowMs() >= state.kill_deadline_ms) {
            killTree();
            state.killed = true;
        }
    }
}

fn pollTimeout() c_int {
    if (state.phase == .terminating and !state.killed) {
        const left = state.kill_deadline_ms - nowMs();
        return @intCast(std.math.clamp(left, 0, limits.owner_check_ms));
    }
    return limits.owner_check_ms;
}

fn drainWakePipe() void {
    var buf: [64]u8 = undefined;
    while (true) {
        const n = sys.read(state.wake_pipe[0], &buf, buf.len);
        if (n <= 0) break;
        for (buf[0..@intCast(n)]) |byte| {
            if (byte == 't') beginTermination();
        }
    }
}

/// The owner's connection normally reports its death (end-of-file), but a
/// copy of that socket kept by another process (a plain fork() of the
/// owner) would hide it, so the owner's exit itself is watched: its pidfd
/// in the poll set (a zombie owner counts as gone), or, without pidfds, a
/// probe of its pid.
fn checkOwnerAlive() void {
    if (state.phase != .serving or tree.state.owner_pidfd >= 0) return;
    if (tree.ownerProbeSaysGone(state.owner_pid)) beginTermination();
}

/// The owner's pidfd stays readable: closed at once, so poll never
/// reports it again.
fn ownerExited() void {
    _ = sys.close(tree.state.owner_pidfd);
    tree.state.owner_pidfd = -1;
    if (state.phase == .serving) beginTermination();
}

fn beginTermination() void {
    state.exit_when_empty = true;
    if (state.phase == .terminating) return;
    state.phase = .terminating;
    state.kill_deadline_ms = nowMs() + limits.kill_grace_ms;
    _ = signalAllChildren(sys.SIGTERM);
    tree.signalAdopted(sys.SIGTERM, &isInTable, true);
}

/// SIGKILL to the whole tree: every child, every adopted orphan, and the
/// tree's cgroup when there is one (which also takes descendants still
/// below a living child). Orphans made by these deaths come to the server
/// and get the same on its next reap.
fn killTree() void {
    _ = signalAllChildren(sys.SIGKILL);
    _ = tree.killCgroup();
    tree.signalAdopted(sys.SIGKILL, &isInTable, false);
}

fn isInTable(pid: sys.pid_t) bool {
    return findChild(pid) != null;
}

/// Replies to whatever still waits, then exits. Exit fds still open are
/// closed by the exit itself (their readers see end-of-file).
fn finish() noreturn {
    answerAllPending(.OK);
    tree.removeCgroup();
    sys._exit(0);
}

// ---------------------------------------------------------------- requests

const Source = enum { owner, children };

fn dropOwner() void {
    std.debug.assert(state.owner_fd >= 0);
    _ = sys.close(state.owner_fd);
    state.owner_fd = -1;
    beginTermination();
}

/// A request that cannot be served: the owner's connection is closed (its
/// one peer is broken), a message on the children's socket is only
/// discarded (it is one of many peers' messages, and already consumed).
fn reject(source: Source) void {
    if (source == .owner) dropOwner();
}

fn handleReadable(source: Source) void {
    const fd = switch (source) {
        .owner => state.owner_fd,
        .children => state.children_fd,
    };
    std.debug.assert(fd >= 0);
    var fds: [protocol.max_request_fds]sys.fd_t = undefined;
    const buf = std.mem.asBytes(&state.request);
    const maybe = fdpass.receiveMaybeTruncated(fd, buf, &fds, sys.MSG_DONTWAIT) orelse {
        if (sys.errno() != sys.E.AGAIN) reject(source);
        return;
    };
    const received = maybe.whole;
    const fd_list = fds[0..received.fd_count];
    if (maybe.truncated) {
        // Out of fds (or a sender that attached too many): answer on the
        // reply pipe if it arrived, and keep serving this peer.
        if (fd_list.len > 0 and received.len == @sizeOf(protocol.RequestHeader) + state.request.header.payload_len) {
            replyError(fd_list[0], .LIMIT_ERROR, sys.E.MFILE);
            closeAll(fd_list[1..]);
        } else {
            closeAll(fd_list);
        }
        return;
    }
    if (received.len == 0) {
        // End-of-file from the owner; from a child, an empty message.
        closeAll(fd_list);
        reject(source);
        return;
    }
    const header = protocol.decode(buf[0..received.len], fd_list.len) catch {
        closeAll(fd_list);
        reject(source);
        return;
    };
    const reply_fd = fd_list[0];
    switch (header.op) {
        .fork => handleFork(&header, fd_list),
        .kill_all => handleKillAll(&header, reply_fd),
        .wait => handleWait(&header, reply_fd),
        .wait_all => handleWaitAll(reply_fd),
        .stop => handleStop(&header, reply_fd, source == .owner and
            (!sys.is_linux or received.sender_pid == state.owner_pid)),
        .kill => handleKill(&header, reply_fd),
        _ => unreachable, // decode() rejects unknown ops
    }
}

fn closeAll(fds: []const sys.fd_t) void {
    for (fds) |fd| _ = sys.close(fd);
}

fn reply(fd: sys.fd_t, answer: protocol.Reply) void {
    // A fresh pipe holds far more than one reply, so this never blocks; a
    // reader that went away yields EPIPE, which is not the server's problem.
    _ = sys.writeFull(fd, std.mem.asBytes(&answer));
    _ = sys.close(fd);
}

fn replyError(fd: sys.fd_t, result: Result, error_number: c_int) void {
    reply(fd, .{ .result = @intFromEnum(result), .error_number = error_number });
}

// ---------------------------------------------------------------- fork

fn handleFork(header: *const protocol.RequestHeader, fds: []const sys.fd_t) void {
    const reply_fd = fds[0];
    var next: usize = 1;
    var exit_fd: sys.fd_t = -1;
    var channel_fd: sys.fd_t = -1;
    if (header.flags & protocol.Flags.exit_fd != 0) {
        exit_fd = fds[next];
        next += 1;
    }
    if (header.flags & protocol.Flags.channel != 0) {
        channel_fd = fds[next];
        next += 1;
    }
    std.debug.assert(next == fds.len);

    if (state.phase != .serving or state.child_count == state.child_limit) {
        const result: Result = if (state.phase != .serving) .SERVER_GONE else .LIMIT_ERROR;
        closeAll(fds[1..]);
        return replyError(reply_fd, result, 0);
    }
    // The exit pipe must never block the server, even if nobody reads it.
    _ = sys.setNonblocking(exit_fd, true);

    // Signals stay blocked across fork so the child cannot run the server's
    // handlers (which write to the server's wake pipe) before it resets them.
    // The C library's fork() again, not a raw system call: the server is
    // single-threaded, so the locks fork() takes are free and it cannot
    // block; in exchange the child gets what only fork() maintains (the
    // thread descriptor's tid used by raise() and pthread_kill(), reset
    // malloc and stdio state, atfork child handlers of libraries that
    // registered them), so entrypoints may use ordinary libc.
    var start = child.Start{
        .conn_fd = state.children_peer_fd,
        .channel_fd = channel_fd,
        .request_fds = .{ reply_fd, exit_fd },
        .entry = header.entry,
        .builtin_exec = header.flags & protocol.Flags.builtin_exec != 0,
        .symbol = if (header.flags & protocol.Flags.symbol != 0)
            protocol.splitSymbolPayload(std.mem.asBytes(&state.request)[@sizeOf(protocol.RequestHeader)..][0..header.payload_len]) catch unreachable
        else
            null,
    };
    if (state.kind == .clean) {
        if (start.symbol) |symbol| {
            if (entry_cache.resolve(symbol)) |address| {
                start.entry = address;
                start.symbol = null;
            }
        }
    }
    var old_mask: sys.sigset_t = undefined;
    sys.blockAllSignals(&old_mask);
    const in_place = sys.is_linux and header.flags & protocol.Flags.spec_queued != 0;
    const pid = if (in_place) spawnInPlace(&start) else sys.fork();
    if (pid == 0) child.run(start);
    const fork_errno = sys.errno();
    exec.in_place = false; // written by an in-place child in our memory
    sys.setSignalMask(&old_mask);

    if (channel_fd >= 0) _ = sys.close(channel_fd);
    if (pid < 0) {
        if (exit_fd >= 0) _ = sys.close(exit_fd);
        return replyError(reply_fd, .FORK_ERROR, fork_errno);
    }
    state.children[state.child_count] = .{
        .pid = pid,
        .exit_fd = exit_fd,
        .exit_rusage = header.flags & protocol.Flags.exit_rusage != 0,
    };
    state.child_count += 1;
    reply(reply_fd, .{ .result = @intFromEnum(Result.OK), .pid = pid });
}

// An exec child that shares the server's memory (CLONE_VM) and runs while
// the server waits (CLONE_VFORK), as posix_spawn does: no copy of the
// server's page tables, which for a snapshot of a big process is most of
// the cost of running a program. Used only when the whole exec spec is
// already queued (Flags.spec_queued), so the child never waits on the
// client while the server is suspended. The child writes only its own
// stack, in_place_start and exec's in_place storage.
var in_place_stack: [128 * 1024]u8 align(16) = undefined;
var in_place_start: child.Start = undefined;

extern "c" fn clone(func: *const fn (?*anyopaque) callconv(.c) c_int, stack: ?*anyopaque, flags: c_int, arg: ?*anyopaque, ...) c_int;
const CLONE_VM: c_int = 0x100;
const CLONE_VFORK: c_int = 0x4000;

fn inPlaceMain(_: ?*anyopaque) callconv(.c) c_int {
    exec.in_place = true;
    child.run(in_place_start);
}

fn spawnInPlace(start: *const child.Start) sys.pid_t {
    in_place_start = start.*;
    const top = @intFromPtr(&in_place_stack) + in_place_stack.len;
    return clone(&inPlaceMain, @ptrFromInt(top), CLONE_VM | CLONE_VFORK | sys.SIGCHLD, null);
}

/// Every fd the server holds besides stdio, the caller's inheritable ones
/// and the children's connection: a new child closes all of them (see
/// child.zig).
pub fn forEachServerFd(context: anytype, comptime visit: fn (@TypeOf(context), sys.fd_t) void) void {
    visit(context, state.wake_pipe[0]);
    visit(context, state.wake_pipe[1]);
    if (state.owner_fd >= 0) visit(context, state.owner_fd);
    if (state.children_fd >= 0) visit(context, state.children_fd);
    tree.forEachFd(context, visit);
    for (state.children[0..state.child_count]) |c| if (c.exit_fd >= 0) visit(context, c.exit_fd);
    for (state.pending[0..state.pending_count]) |p| visit(context, p.reply_fd);
}

// ---------------------------------------------------------------- signals

/// Every child, and the orphans of the tree adopted by the server; with
/// SIGKILL, the tree's cgroup too (descendants below living children).
fn handleKillAll(header: *const protocol.RequestHeader, reply_fd: sys.fd_t) void {
    const first_error = signalAllChildren(header.number);
    if (header.number != 0) tree.signalAdopted(header.number, &isInTable, false);
    if (header.number == sys.SIGKILL) _ = tree.killCgroup();
    if (first_error != 0) return replyError(reply_fd, .KILL_ERROR, first_error);
    reply(reply_fd, .{ .result = @intFromEnum(Result.OK) });
}

/// A pid still in the table is a running child or, at worst, a zombie the
/// server has not reaped: its pid cannot have been reused. Anything else
/// (a child already reaped, a stranger) gets ESRCH and no signal.
fn handleKill(header: *const protocol.RequestHeader, reply_fd: sys.fd_t) void {
    const pid: sys.pid_t = header.number;
    const sig: c_int = @intCast(header.signal);
    if (findChild(pid) == null) return replyError(reply_fd, .KILL_ERROR, sys.E.SRCH);
    const failed: c_int = if (header.flags & protocol.Flags.tree != 0)
        tree.signalTree(pid, sig, state.server_pid)
    else if (sys.kill(pid, sig) != 0) sys.errno() else 0;
    if (failed != 0) return replyError(reply_fd, .KILL_ERROR, failed);
    reply(reply_fd, .{ .result = @intFromEnum(Result.OK) });
}

/// Returns the errno of the first failed kill(2), ignoring ESRCH: a child
/// that exited but is not yet reaped is not an error.
fn signalAllChildren(sig: c_int) c_int {
    var first_error: c_int = 0;
    for (state.children[0..state.child_count]) |c| {
        if (sys.kill(c.pid, sig) != 0) {
            const err = sys.errno();
            if (err != sys.E.SRCH and first_error == 0) first_error = err;
        }
    }
    return first_error;
}

// ---------------------------------------------------------------- exits

fn reapChildren() void {
    while (true) {
        var status: c_int = 0;
        var usage: sys.rusage = std.mem.zeroes(sys.rusage);
        const pid = sys.wait4(-1, &status, sys.WNOHANG, &usage);
        if (pid > 0) {
            onChildExit(pid, status, &usage);
            continue;
        }
        if (pid < 0 and sys.errno() == sys.E.INTR) continue;
        return; // 0: none exited; ECHILD: no children
    }
}

fn onChildExit(pid: sys.pid_t, status: c_int, usage: *const sys.rusage) void {
    // Not in the table: an adopted orphan of the tree, reaped so it leaves
    // no zombie, and reported to nobody (nobody asked for it).
    const index = findChild(pid) orelse return tree.forgetReaped(pid);
    const exit_fd = state.children[index].exit_fd;
    if (exit_fd >= 0) {
        // One write of at most 152 bytes (under PIPE_BUF) into an empty
        // pipe: it is never partial, and never blocks the server.
        const message = protocol.ExitMessage{ .event = .{ .pid = pid, .wait_status = status }, .rusage = usage.* };
        const size: usize = if (state.children[index].exit_rusage) @sizeOf(protocol.ExitMessage) else @sizeOf(protocol.ExitEvent);
        _ = sys.write(exit_fd, std.mem.asBytes(&message), size);
        _ = sys.close(exit_fd);
    }
    state.child_count -= 1;
    state.children[index] = state.children[state.child_count];

    const record = ExitRecord{ .pid = pid, .status = status, .rusage = usage.* };
    if (takePending(.wait_pid, pid) orelse takePending(.wait_any, 0)) |waiter| {
        replyExit(waiter.reply_fd, record);
    } else {
        rememberExit(record);
    }
    // A status is reported once: other waits for this pid now wait for a
    // process that is no longer a child, like waitpid(2) would.
    while (takePending(.wait_pid, pid)) |waiter| replyError(waiter.reply_fd, .WAIT_ERROR, sys.E.CHILD);
    if (state.child_count == 0) {
        if (state.exit_count == 0) {
            while (takePending(.wait_any, 0)) |waiter| replyError(waiter.reply_fd, .WAIT_ERROR, sys.E.CHILD);
        }
        while (takePending(.wait_all, 0)) |waiter| reply(waiter.reply_fd, .{ .result = @intFromEnum(Result.OK) });
    }
}

fn findChild(pid: sys.pid_t) ?usize {
    for (state.children[0..state.child_count], 0..) |c, i| {
        if (c.pid == pid) return i;
    }
    return null;
}

fn replyExit(fd: sys.fd_t, record: ExitRecord) void {
    reply(fd, .{ .result = @intFromEnum(Result.OK), .pid = record.pid, .wait_status = record.status, .rusage = record.rusage });
}

// Remembered exits form a ring, oldest at exit_head. Taking one from the
// middle leaves a hole (pid 0) instead of moving the records behind it:
// the array is large, and every page the server writes after a fork is a
// page it must copy. exit_span counts slots from the head, holes included;
// exit_count counts records.

/// When full, the oldest is forgotten (documented limit).
fn rememberExit(record: ExitRecord) void {
    std.debug.assert(record.pid > 0);
    if (state.exit_span == limits.max_exit_records) {
        if (state.exits[state.exit_head].pid != 0) state.exit_count -= 1;
        popExitHead();
    }
    state.exits[(state.exit_head + state.exit_span) % limits.max_exit_records] = record;
    state.exit_span += 1;
    state.exit_count += 1;
}

fn popExitHead() void {
    std.debug.assert(state.exit_span > 0);
    state.exit_head = (state.exit_head + 1) % limits.max_exit_records;
    state.exit_span -= 1;
}

fn takeExit(pid: sys.pid_t) ?ExitRecord {
    var i: usize = 0;
    while (i < state.exit_span) : (i += 1) {
        const slot = &state.exits[(state.exit_head + i) % limits.max_exit_records];
        if (slot.pid == 0 or (pid != -1 and slot.pid != pid)) continue;
        const found: ExitRecord = slot.*;
        slot.pid = 0;
        state.exit_count -= 1;
        while (state.exit_span > 0 and state.exits[state.exit_head].pid == 0) popExitHead();
        return found;
    }
    return null;
}

// ---------------------------------------------------------------- waits

fn handleWait(header: *const protocol.RequestHeader, reply_fd: sys.fd_t) void {
    const pid: sys.pid_t = header.number;
    if (takeExit(pid)) |record| return replyExit(reply_fd, record);
    const running = if (pid == -1) state.child_count > 0 else findChild(pid) != null;
    if (!running) return replyError(reply_fd, .WAIT_ERROR, sys.E.CHILD);
    if (header.flags & protocol.Flags.no_hang != 0) return replyError(reply_fd, .WOULD_BLOCK, 0);
    addPending(if (pid == -1) .wait_any else .wait_pid, pid, reply_fd);
}

fn handleWaitAll(reply_fd: sys.fd_t) void {
    if (state.child_count == 0) return reply(reply_fd, .{ .result = @intFromEnum(Result.OK) });
    addPending(.wait_all, 0, reply_fd);
}

fn handleStop(header: *const protocol.RequestHeader, reply_fd: sys.fd_t, from_owner: bool) void {
    if (!from_owner) return replyError(reply_fd, .NOT_OWNER, sys.E.PERM);
    if (header.flags & protocol.Flags.server_only != 0) return detach(reply_fd);
    beginTermination();
    if (header.flags & protocol.Flags.wait != 0) {
        addPending(.stop, 0, reply_fd);
    } else {
        reply(reply_fd, .{ .result = @intFromEnum(Result.OK) });
    }
}

/// libforks_stop_server_only: the children keep running, but they die
/// with the server (tree.dieWithServer), so it stays as their reaper, and
/// serves nobody: the connections close (requests from children get
/// SERVER_GONE), exit fds close without an event, and the owner's death
/// no longer matters. It exits after the last process of the tree.
fn detach(reply_fd: sys.fd_t) void {
    answerAllPending(.SERVER_GONE);
    for (state.children[0..state.child_count]) |*c| {
        if (c.exit_fd >= 0) _ = sys.close(c.exit_fd);
        c.exit_fd = -1;
    }
    for ([_]*sys.fd_t{ &state.children_fd, &state.children_peer_fd, &tree.state.owner_pidfd }) |fd| {
        if (fd.* >= 0) _ = sys.close(fd.*);
        fd.* = -1;
    }
    reply(reply_fd, .{ .result = @intFromEnum(Result.OK) });
    // Last: the owner waits for this end-of-file.
    _ = sys.close(state.owner_fd);
    state.owner_fd = -1;
    state.phase = .detached;
    state.exit_when_empty = true;
}

fn addPending(kind: PendingKind, pid: sys.pid_t, reply_fd: sys.fd_t) void {
    if (state.pending_count == limits.max_pending) return replyError(reply_fd, .LIMIT_ERROR, 0);
    state.pending[state.pending_count] = .{ .kind = kind, .pid = pid, .reply_fd = reply_fd };
    state.pending_count += 1;
}

/// Removes and returns the oldest pending request of `kind` (for wait_pid,
/// the oldest waiting for `pid`), keeping arrival order for the rest.
fn takePending(kind: PendingKind, pid: sys.pid_t) ?Pending {
    for (state.pending[0..state.pending_count], 0..) |*p, i| {
        if (p.kind != kind) continue;
        if (kind == .wait_pid and p.pid != pid) continue;
        const found: Pending = p.*; // before the shift below moves it
        std.mem.copyForwards(Pending, state.pending[i .. state.pending_count - 1], state.pending[i + 1 .. state.pending_count]);
        state.pending_count -= 1;
        return found;
    }
    return null;
}

/// Answers everything still pending as the server goes away. With
/// `result` OK (no child left), a wait for one child can only be one whose
/// child will never be reported: ECHILD, like waitpid(2) on a process that
/// is no longer a child.
fn answerAllPending(result: Result) void {
    for (state.pending[0..state.pending_count]) |p| {
        switch (p.kind) {
            .wait_pid, .wait_any => if (result == .OK)
                replyError(p.reply_fd, .WAIT_ERROR, sys.E.CHILD)
            else
                replyError(p.reply_fd, result, 0),
            .wait_all, .stop => replyError(p.reply_fd, result, 0),
        }
    }
    state.pending_count = 0;
}

// ---------------------------------------------------------------- time

const timespec = extern struct { sec: i64, nsec: i64 };
extern "c" fn clock_gettime(clock: c_int, ts: *timespec) c_int;
const CLOCK_MONOTONIC: c_int = if (sys.is_linux) 1 else 6;

fn nowMs() i64 {
    var ts: timespec = undefined;
    _ = clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.sec * 1000 + @divTrunc(ts.nsec, 1_000_000);
}
