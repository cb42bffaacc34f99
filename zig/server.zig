//! The fork server process.
//!
//! It is a copy of a possibly multithreaded caller, so it runs under the
//! rules for a child of fork(2) in a multithreaded process: only
//! async-signal-safe calls (read, write, open, epoll, fork, wait4, kill, close...),
//! no allocation, no lock. Every table is a fixed array in this file's
//! state, sized by limits.zig.
//!
//! One poll loop serves every connection: the owner's, and one per child,
//! made at its fork. No request blocks it: waits are recorded as pending
//! and answered when a child exits. Nothing a peer controls blocks it
//! either: replies and exit events go through write ends of the server's
//! own (write_end.zig), and a connection that ends or breaks is closed
//! and forgotten, never polled again. Who may do what is peers.zig's.
//!
//! Here: start-up, the poll loop and request dispatch. The handlers and
//! the rest of the server: startup_fds.zig (the fds it starts with),
//! conns.zig (closing and pausing connections), fork.zig, kill.zig,
//! reap.zig (exits and waits), shutdown.zig (stop and termination).

const std = @import("std");
const sys = @import("sys.zig");
const limits = @import("limits.zig");
const protocol = @import("protocol.zig");
const fdpass = @import("fdpass.zig");
const child = @import("child.zig");
const entry_cache = @import("entry_cache.zig");
const peers = @import("peers.zig");
const poller = @import("poller.zig");
const write_end = @import("write_end.zig");
const exits = @import("exits.zig");
const tree = @import("tree.zig");
const events = @import("events.zig");
const replies = @import("replies.zig");
const pending = @import("pending.zig");
const signals = @import("signals.zig");
const Result = @import("result.zig").Result;
const Peer = peers.Peer;
const ReplyTo = replies.ReplyTo;
const reply = replies.reply;
const replyError = replies.replyError;

const server_state = @import("server_state.zig");
const fork = @import("fork.zig");
pub const State = server_state.State;
pub const Kind = server_state.Kind;
pub const max_inherited = server_state.max_inherited;
/// The server's tables: server_state.zig, shared with fork.zig.
pub const state = &server_state.state;
const key_owner_pidfd = server_state.key_owner_pidfd;
const key_wake = server_state.key_wake;
const key_owner = server_state.key_owner;
const childKey = server_state.childKey;
const closeAll = fork.closeAll;
const handleFork = fork.handleFork;
const startup_fds = @import("startup_fds.zig");
const conns = @import("conns.zig");
const kill = @import("kill.zig");
const reap = @import("reap.zig");
const shutdown = @import("shutdown.zig");
const nowMs = @import("clock.zig").nowMs;
const closeInheritedCloexecFds = startup_fds.closeInheritedCloexecFds;
const raiseFdLimit = startup_fds.raiseFdLimit;
const dropConn = conns.dropConn;
const connOf = conns.connOf;
const isPaused = conns.isPaused;
const setPaused = conns.setPaused;
const resumePeers = conns.resumePeers;
const handleKillAll = kill.handleKillAll;
const handleKill = kill.handleKill;
const reapChildren = reap.reapChildren;
const handleWait = reap.handleWait;
const handleWaitAll = reap.handleWaitAll;
const beginTermination = shutdown.beginTermination;
const probesOwner = shutdown.probesOwner;
const checkOwnerAlive = shutdown.checkOwnerAlive;
const ownerExited = shutdown.ownerExited;
const scanAdopted = shutdown.scanAdopted;
const killTree = shutdown.killTree;
const finishWhenDrained = shutdown.finishWhenDrained;
const handleStop = shutdown.handleStop;

// ---------------------------------------------------------------- start

/// Entry of the server process, right after fork (or exec, for a clean
/// server). `owner_fd` is the server's end of the owner's connection, on
/// which it announces its pid once ready. All signals are
/// blocked on entry (the caller blocked them around fork), so no handler of
/// the host runs here before signals.init replaces them.
pub fn main(owner_fd: sys.fd_t, owner_pid: sys.pid_t, owner_pidfd: sys.fd_t, kind: Kind) noreturn {
    // A server started from a child of another server starts from a copy
    // of that server's tables: begin empty.
    state.kind = kind;
    tree.reset(owner_pidfd);
    entry_cache.reset();
    state.owner_fd = owner_fd;
    peers.reset(&state.table);
    pending.reset();
    events.reset();
    state.owner_paused = false;
    state.paused_count = 0;
    exits.reset(&state.exits);
    state.phase = .serving;
    state.killed = false;
    state.adopted_scan_due = false;
    state.next_adopted_scan_ms = 0;
    state.exit_when_empty = false;
    state.caller_nofile = .{ .cur = 0, .max = 0 };
    state.raised_nofile = false;
    state.next_owner_probe_ms = 0;
    state.inherited_count = 0;
    state.inherited_overflow = true; // until /proc/self/fd was read
    state.wake_pipe = .{ -1, -1 };
    state.owner_pid = owner_pid;
    state.server_pid = sys.getpid();

    closeInheritedCloexecFds(owner_fd, owner_pidfd);
    raiseFdLimit();
    // Before the first child: orphans of the tree come to the server, and
    // every child can join the tree's cgroup.
    tree.becomeSubreaper();
    tree.createCgroup(state.server_pid);
    tree.watchOwner(owner_pid);

    if (sys.pipeCloexec(&state.wake_pipe) != 0 or
        sys.setNonblocking(state.wake_pipe[0], true) != 0 or
        sys.setNonblocking(state.wake_pipe[1], true) != 0)
    {
        announce(owner_fd, .{ .result = @intFromEnum(Result.PIPE_CREATION_ERROR), .error_number = sys.errno() }, -1);
        sys._exit(1);
    }
    write_end.init(state.wake_pipe[0]);
    if (!signals.init(state.wake_pipe)) {
        announce(owner_fd, .{ .result = @intFromEnum(Result.PIPE_CREATION_ERROR), .error_number = sys.errno() }, -1);
        sys._exit(1);
    }
    if (!poller.init() or !poller.add(signals.fd(), key_wake) or !poller.add(owner_fd, key_owner) or
        (tree.state.owner_pidfd >= 0 and !poller.add(tree.state.owner_pidfd, key_owner_pidfd)))
    {
        announce(owner_fd, .{ .result = @intFromEnum(Result.SOCKET_CREATION_ERROR), .error_number = sys.errno() }, -1);
        sys._exit(1);
    }
    announce(owner_fd, .{ .result = @intFromEnum(Result.OK), .pid = state.server_pid }, tree.cgroupDirFd());
    // The kernel then stamps every message on the owner's connection with
    // its sender's pid, so a process that obtained a copy of that socket
    // still cannot stop the server. Set after the announcement, the
    // server's one send on that socket: Linux gives a socket with
    // SO_PASSCRED that sends an autobound abstract address, and this one
    // must have no address at all. A message sent before this line has no
    // credentials, which is why the client attaches its own to a stop
    // request (the kernel checks them: a process can only claim its pid).
    if (sys.linux_paths) {
        const on: c_int = 1;
        _ = sys.setsockopt(owner_fd, sys.SOL_SOCKET, sys.SO_PASSCRED, &on, @sizeOf(c_int));
    }

    signals.startServing();
    serve();
}

/// `with_fd` (the tree's cgroup directory, or -1) goes to the owner.
fn announce(fd: sys.fd_t, hello: protocol.Reply, with_fd: sys.fd_t) void {
    // A fresh socket with an empty queue, yet the owner holds its other
    // end: never wait on it.
    const fds = [1]sys.fd_t{with_fd};
    _ = fdpass.sendFlags(fd, std.mem.asBytes(&hello), if (with_fd >= 0) &fds else &.{}, sys.MSG_DONTWAIT);
}

// ---------------------------------------------------------------- loop

fn serve() noreturn {
    var polled: [poller.batch]poller.Event = undefined;
    while (true) {
        // What every turn relies on: once it stops serving the server only
        // ends (its phase never goes back, and decides when it exits); the
        // tree is SIGKILLed only while terminating; no child is left while
        // it drains its streams; forks stop at the child limit.
        std.debug.assert(state.exit_when_empty == (state.phase != .serving));
        std.debug.assert(!state.killed or state.phase == .terminating);
        std.debug.assert(!state.draining or state.table.count == 0);
        std.debug.assert(state.table.count <= state.child_limit);
        // Adopted orphans of the tree count too: the server outlives
        // every process it may still have to kill or reap.
        if (state.exit_when_empty and state.table.count == 0 and !tree.hasChildren()) finishWhenDrained();
        if (state.phase == .serving and state.table.spare_conn[0] < 0) {
            if (sys.socketpairCloexec(sys.message_socket_type, &state.table.spare_conn) != 0) state.table.spare_conn = .{ -1, -1 };
        }

        const ready = poller.wait(&polled, pollTimeout());
        if (ready < 0 and sys.errno() != sys.E.INTR) {
            // The wait fails only on EINVAL/ENOMEM/EFAULT; a server that can
            // no longer wait must not spin, so it shuts down as if orphaned.
            beginTermination();
        }
        std.debug.assert(ready <= @as(c_int, @intCast(polled.len)));
        const batch = polled[0..@intCast(@max(ready, 0))];

        // Reap only on SIGCHLD (wait4 scans every child, a cost that
        // grows with their number). Reaped first, so requests in this
        // batch see the exits.
        for (batch) |event| {
            if (event.key != key_wake) continue;
            const received = signals.take();
            if (received.terminate) beginTermination();
            if (received.child) {
                reapChildren();
                // A process that died left its children to the server:
                // they get what the rest of the tree got (scanAdopted).
                if (state.phase == .terminating) state.adopted_scan_due = true;
            }
            // Signals cannot be lost this way, but if they are: stop
            // polling the fd, reap at every turn instead, and shut down.
            if (event.events & (poller.HUP | poller.ERR) != 0) {
                poller.remove(signals.fd());
                signals.lost();
                beginTermination();
            }
        }
        if (signals.fd() < 0) reapChildren();
        for (batch) |event| {
            if (event.key == key_wake) continue;
            if (event.key == key_owner_pidfd) {
                if (tree.state.owner_pidfd >= 0) ownerExited();
                continue;
            }
            const hung_up = event.events & (poller.HUP | poller.ERR) != 0;
            if (event.key == key_owner) {
                if (state.owner_fd >= 0) servePeer(peers.owner, hung_up);
                continue;
            }
            if (event.key & replies.key_stream != 0) {
                const stream: usize = @intCast(event.key & 0xff);
                if (events.fdOf(stream) >= 0) _ = replies.flushStream(stream, hung_up);
                if (state.paused_count > 0) resumePeers();
                continue;
            }
            const slot: Peer = @truncate(event.key);
            if (slot >= state.table.high or !peers.isRunning(&state.table, slot)) continue;
            if (childKey(slot) != event.key or state.table.slots[slot].conn_fd < 0) continue;
            servePeer(slot, hung_up);
        }

        checkOwnerAlive();
        scanAdopted();
        if (state.phase == .terminating and !state.killed and nowMs() >= state.kill_deadline_ms) {
            killTree();
            state.killed = true;
        }
    }
}

/// An idle server sleeps until something happens: the only deadlines are
/// the kill after the grace period, during a stop the next look for
/// adopted orphans, the end of draining the event streams, without an
/// owner pidfd the next probe of the owner's pid, and, should signals
/// ever be lost, the next reap.
fn pollTimeout() c_int {
    const now = nowMs();
    var wait_ms: i64 = -1;
    if (state.phase == .terminating and !state.killed) wait_ms = sooner(wait_ms, state.kill_deadline_ms - now);
    if (state.draining) wait_ms = sooner(wait_ms, state.drain_deadline_ms - now);
    if (state.adopted_scan_due) wait_ms = sooner(wait_ms, state.next_adopted_scan_ms - now);
    if (probesOwner()) wait_ms = sooner(wait_ms, limits.owner_check_ms);
    // Signals lost (see serve): reaping waits for the next turn.
    if (signals.fd() < 0) wait_ms = sooner(wait_ms, limits.owner_check_ms);
    if (wait_ms < 0) return -1;
    return @intCast(@min(wait_ms, limits.owner_check_ms));
}

/// The earlier of two waits in ms, -1 meaning none; a deadline already
/// past is 0.
fn sooner(current: i64, candidate: i64) i64 {
    const due = @max(candidate, 0);
    return if (current < 0) due else @min(current, due);
}

// ---------------------------------------------------------------- requests

fn dropOwner() void {
    std.debug.assert(state.owner_fd >= 0);
    poller.remove(state.owner_fd);
    _ = sys.close(state.owner_fd);
    state.owner_fd = -1;
    beginTermination();
}

/// The connection cannot be served any more: the owner's ends the server
/// (its one peer is gone), a child's is closed.
fn dropPeer(peer: Peer) void {
    setPaused(peer, false);
    if (peer == peers.owner) dropOwner() else dropConn(peer);
}

/// One request, then the peer's connection is paused if the answer left
/// one of its event streams over budget: it is read again once the
/// stream drains (events.zig).
fn servePeer(peer: Peer, hung_up: bool) void {
    if (isPaused(peer)) {
        // Only errors and hang-ups are reported for a paused connection,
        // and they stay reported: reading no further means closing it.
        dropPeer(peer);
        return;
    }
    handleReadable(peer, hung_up);
    if (connOf(peer) >= 0 and events.peerOverBudget(peer)) {
        poller.modify(connOf(peer), if (peer == peers.owner) key_owner else childKey(peer), 0);
        setPaused(peer, true);
    }
}

/// One message from `peer`'s connection. Every outcome consumes what made
/// the fd ready (a message, end-of-file, an error) or closes it, so a
/// level-triggered poller never reports the same state twice: no fd
/// state can make the server spin.
fn handleReadable(peer: Peer, hung_up: bool) void {
    const fd = if (peer == peers.owner) state.owner_fd else state.table.slots[peer].conn_fd;
    std.debug.assert(fd >= 0);
    var fds: [protocol.max_request_fds]sys.fd_t = undefined;
    const buf = std.mem.asBytes(&state.request);
    const maybe = fdpass.receiveMaybeTruncated(fd, buf, &fds, sys.MSG_DONTWAIT) orelse {
        // Nothing to read yet is fine, unless the socket also hung up or
        // failed: then nothing will ever come.
        if (sys.errno() != sys.E.AGAIN or hung_up) dropPeer(peer);
        return;
    };
    const received = maybe.whole;
    const fd_list = fds[0..received.fd_count];
    if (maybe.truncated) {
        // Out of fds (or a sender that attached too many): answer on the
        // reply pipe (or stream) if it arrived, and keep serving this peer.
        const whole = received.len == @sizeOf(protocol.RequestHeader) + state.request.header.payload_len;
        const on_stream = state.request.header.flags & protocol.Flags.to_events != 0 and state.request.header.op != .open_events;
        if (whole and on_stream) {
            closeAll(fd_list);
            if (events.find(state.request.header.events, peer)) |stream| {
                replyError(.{ .stream = @intCast(stream), .tag = state.request.header.tag }, .LIMIT_ERROR, sys.E.MFILE);
            }
        } else if (fd_list.len > 0 and whole) {
            closeAll(fd_list[1..]);
            replyError(ReplyTo.pipe(write_end.adopt(fd_list[0])), .LIMIT_ERROR, sys.E.MFILE);
        } else {
            closeAll(fd_list);
        }
        return;
    }
    if (received.len == 0) {
        // End-of-file (or an empty message, which no client sends): this
        // peer is done.
        closeAll(fd_list);
        dropPeer(peer);
        return;
    }
    const header = protocol.decode(buf[0..received.len], fd_list.len) catch {
        // From the owner, the one peer of its socket is broken; from a
        // child, the message is only discarded (it hurts no one else).
        closeAll(fd_list);
        if (peer == peers.owner) dropOwner();
        return;
    };
    // decode() checked the fds the flags call for.
    std.debug.assert(fd_list.len == protocol.Request.fdCount(&header));
    if (header.op == .open_events) return openEvents(peer, fd_list[0], header.tag);
    var to: ReplyTo = undefined;
    var rest = fd_list;
    if (header.flags & protocol.Flags.to_events != 0) {
        // Only the requester's own stream: a request naming another's
        // cannot be answered, so it is not served.
        const stream = events.find(header.events, peer) orelse return closeAll(fd_list);
        to = .{ .stream = @intCast(stream), .tag = header.tag };
    } else {
        // The reply pipe becomes the server's own (write_end.zig); a
        // request that brings no usable one cannot be answered either.
        to = ReplyTo.pipe(write_end.adopt(fd_list[0]));
        rest = fd_list[1..];
        if (to.fd < 0) return closeAll(rest);
    }
    switch (header.op) {
        .fork => handleFork(peer, &header, to, rest, closeServerFds),
        .kill_all => handleKillAll(peer, &header, to),
        .wait => handleWait(peer, &header, to),
        .wait_all => handleWaitAll(peer, to),
        .kill => handleKill(peer, &header, to),
        .stop => handleStop(&header, to, peer == peers.owner and
            (!sys.linux_paths or received.sender_pid == state.owner_pid)),
        .open_events => unreachable,
        _ => unreachable, // decode() rejects unknown ops
    }
}

/// A new event stream of `peer`: its first record is the answer, with
/// the stream's handle, or the reason it was refused.
fn openEvents(peer: Peer, fd: sys.fd_t, tag: u64) void {
    const stream = events.open(peer, fd) catch |err| {
        if (err == error.Limit) {
            const own = write_end.adopt(fd);
            if (own >= 0) {
                const record = protocol.EventRecord{ .kind = .reply, .tag = tag, .result = @intFromEnum(Result.LIMIT_ERROR) };
                _ = write_end.put(own, std.mem.asBytes(&record));
                _ = sys.close(own);
            }
        }
        return;
    };
    // Watched for errors only (the reader went) until a backlog needs OUT.
    if (!poller.addFor(events.fdOf(stream), replies.key_stream | stream, 0)) {
        const record = protocol.EventRecord{ .kind = .reply, .tag = tag, .result = @intFromEnum(Result.LIMIT_ERROR), .error_number = sys.errno() };
        _ = write_end.put(events.fdOf(stream), std.mem.asBytes(&record));
        events.close(stream);
        return;
    }
    const record = protocol.EventRecord{ .kind = .reply, .tag = tag, .handle = events.handleOf(stream) };
    replies.putRecord(stream, &record, true);
}

fn closeServerFds() void {
    forEachServerFd({}, closeFd);
}

fn closeFd(_: void, fd: sys.fd_t) void {
    _ = sys.close(fd);
}

/// Every fd the server holds besides stdio, the caller's inheritable ones
/// and the new child's connection: a new child closes all of them (see
/// child.zig).
pub fn forEachServerFd(context: anytype, comptime visit: fn (@TypeOf(context), sys.fd_t) void) void {
    if (state.wake_pipe[0] >= 0) visit(context, state.wake_pipe[0]);
    visit(context, state.wake_pipe[1]);
    signals.forEachFd(context, visit);
    if (state.owner_fd >= 0) visit(context, state.owner_fd);
    if (poller.fd() >= 0) visit(context, poller.fd());
    write_end.forEachFd(context, visit);
    tree.forEachFd(context, visit);
    for (state.table.spare_conn) |fd| if (fd >= 0) visit(context, fd);
    for (state.table.slots[0..state.table.high]) |c| {
        if (c.pid == 0) continue;
        if (c.exit_fd >= 0) visit(context, c.exit_fd);
        if (c.conn_fd >= 0) visit(context, c.conn_fd);
        if (c.child_end >= 0) visit(context, c.child_end);
    }
    pending.forEachFd(context, visit);
    events.forEachFd(context, visit);
}
