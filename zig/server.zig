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

const ExitRecord = exits.Record;

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
    announce(owner_fd, .{ .result = @intFromEnum(Result.OK), .pid = state.server_pid }, tree.state.dir_fd);
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

/// The server holds three fds per running child (its exit pipe and both
/// ends of its connection) plus one per pending request; the common soft limit of 1024
/// would cap children far below max_children. Children get the caller's
/// limit back.
fn raiseFdLimit() void {
    const reserve: u64 = limits.max_pending + 64;
    const needed: u64 = fds_per_child * limits.max_children + reserve;
    state.child_limit = limits.max_children;
    if (sys.getrlimit(sys.RLIMIT_NOFILE, &state.caller_nofile) != 0) return;
    var usable = state.caller_nofile.cur;
    if (usable < needed) {
        const raised = sys.rlimit{ .cur = @min(needed, state.caller_nofile.max), .max = state.caller_nofile.max };
        if (sys.setrlimit(sys.RLIMIT_NOFILE, &raised) == 0) {
            usable = raised.cur;
            state.raised_nofile = raised.cur != state.caller_nofile.cur;
        }
    }
    // Each child costs an exit pipe end, its connection and, briefly, the
    // fds of its request. Under a low limit, keep half for the rest.
    const kept = @min(reserve, usable / 2);
    const fit = (usable - kept) / fds_per_child;
    state.child_limit = @intCast(@max(1, @min(fit, limits.max_children)));
}

const fds_per_child = 3;

// ---------------------------------------------------------------- loop

fn serve() noreturn {
    var polled: [poller.batch]poller.Event = undefined;
    while (true) {
        // Adopted orphans of the tree count too: the server outlives
        // every process it may still have to kill or reap.
        if (state.exit_when_empty and state.table.count == 0 and !tree.hasChildren()) finish();
        if (state.phase == .serving and state.table.spare_conn[0] < 0) {
            if (sys.socketpairCloexec(sys.message_socket_type, &state.table.spare_conn) != 0) state.table.spare_conn = .{ -1, -1 };
        }

        const ready = poller.wait(&polled, pollTimeout());
        if (ready < 0 and sys.errno() != sys.E.INTR) {
            // The wait fails only on EINVAL/ENOMEM/EFAULT; a server that can
            // no longer wait must not spin, so it shuts down as if orphaned.
            beginTermination();
        }
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
/// adopted orphans, without an owner pidfd the next probe of the owner's
/// pid, and, should signals ever be lost, the next reap.
fn pollTimeout() c_int {
    const now = nowMs();
    var wait_ms: i64 = -1;
    if (state.phase == .terminating and !state.killed) wait_ms = sooner(wait_ms, state.kill_deadline_ms - now);
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

fn scanAdopted() void {
    if (!state.adopted_scan_due) return;
    const now = nowMs();
    if (now < state.next_adopted_scan_ms) return;
    state.adopted_scan_due = false;
    state.next_adopted_scan_ms = now + adopted_scan_ms;
    signalAdoptedAsTree();
}

/// How late an orphan adopted during a stop may get the tree's signal.
const adopted_scan_ms = 10;

fn probesOwner() bool {
    return state.phase == .serving and tree.state.owner_pidfd < 0;
}

/// The owner's connection normally reports its death (end-of-file), but a
/// copy of that socket kept by another process (a plain fork() of the
/// owner) would hide it, so the owner's exit itself is watched: its pidfd
/// in the poll set (a zombie owner counts as gone), or, without pidfds, a
/// probe of its pid.
fn checkOwnerAlive() void {
    if (!probesOwner()) return;
    // The clock is read without a system call (vDSO); the probe is one
    // kill(2) at most every owner_check_ms, not one per request.
    const now = nowMs();
    if (now < state.next_owner_probe_ms) return;
    state.next_owner_probe_ms = now + limits.owner_check_ms;
    if (tree.ownerProbeSaysGone(state.owner_pid)) beginTermination();
}

/// The owner's pidfd stays readable: closed at once, so nothing polls it
/// again.
fn ownerExited() void {
    closeOwnerPidfd();
    if (state.phase == .serving) beginTermination();
}

fn closeOwnerPidfd() void {
    if (tree.state.owner_pidfd < 0) return;
    poller.remove(tree.state.owner_pidfd);
    _ = sys.close(tree.state.owner_pidfd);
    tree.state.owner_pidfd = -1;
}

fn beginTermination() void {
    state.exit_when_empty = true;
    if (state.phase == .terminating) return;
    state.phase = .terminating;
    state.kill_deadline_ms = nowMs() + limits.kill_grace_ms;
    signalSubtree(peers.owner, sys.SIGTERM);
    tree.signalAdopted(sys.SIGTERM, &isInTable, true);
}

/// SIGKILL to the whole tree: every child, every adopted orphan, and the
/// tree's cgroup when there is one (which also takes descendants still
/// below a living child). Orphans made by these deaths come to the server
/// and get the same on its next reap.
fn killTree() void {
    signalSubtree(peers.owner, sys.SIGKILL);
    _ = tree.killCgroup();
    tree.signalAdopted(sys.SIGKILL, &isInTable, false);
}

/// After a reap while terminating: orphans that just came to the server
/// get what the rest of the tree got.
fn signalAdoptedAsTree() void {
    if (state.killed) tree.signalAdopted(sys.SIGKILL, &isInTable, false) else tree.signalAdopted(sys.SIGTERM, &isInTable, true);
}

fn isInTable(pid: sys.pid_t) bool {
    return peers.find(&state.table, pid) != null;
}

/// Replies to whatever still waits, then exits. Exit fds still open are
/// closed by the exit itself (their readers see end-of-file).
fn finish() noreturn {
    pending.answerAll(.OK);
    // Best effort: the process ends here, and its streams with it.
    for (0..events.max_streams) |stream| {
        if (events.fdOf(stream) >= 0) _ = events.flush(stream);
    }
    tree.removeCgroup();
    sys._exit(0);
}

// ---------------------------------------------------------------- requests

fn dropOwner() void {
    std.debug.assert(state.owner_fd >= 0);
    poller.remove(state.owner_fd);
    _ = sys.close(state.owner_fd);
    state.owner_fd = -1;
    beginTermination();
}

/// A child's connection ended (end-of-file, shutdown, an error): close
/// the server's end, so nothing polls it again. The child itself runs on
/// and is still reaped and reported; only its requests are over.
fn dropConn(slot: Peer) void {
    const c = peers.get(&state.table, slot);
    std.debug.assert(c.conn_fd >= 0);
    poller.remove(c.conn_fd);
    _ = sys.close(c.conn_fd);
    c.conn_fd = -1;
    if (c.child_end >= 0) _ = sys.close(c.child_end);
    c.child_end = -1;
}

/// The connection cannot be served any more: the owner's ends the server
/// (its one peer is gone), a child's is closed.
fn dropPeer(peer: Peer) void {
    setPaused(peer, false);
    if (peer == peers.owner) dropOwner() else dropConn(peer);
}

fn connOf(peer: Peer) sys.fd_t {
    return if (peer == peers.owner) state.owner_fd else state.table.slots[peer].conn_fd;
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

fn isPaused(peer: Peer) bool {
    return if (peer == peers.owner) state.owner_paused else state.table.slots[peer].paused;
}

fn setPaused(peer: Peer, paused: bool) void {
    const flag = if (peer == peers.owner) &state.owner_paused else &state.table.slots[peer].paused;
    if (flag.* == paused) return;
    flag.* = paused;
    if (paused) state.paused_count += 1 else state.paused_count -= 1;
}

fn resumePeers() void {
    if (state.owner_paused and !events.peerOverBudget(peers.owner)) resume_(peers.owner);
    for (0..state.table.high) |i| {
        const slot: Peer = @intCast(i);
        if (peers.isRunning(&state.table, slot) and state.table.slots[slot].paused and !events.peerOverBudget(slot)) resume_(slot);
    }
}

fn resume_(peer: Peer) void {
    setPaused(peer, false);
    if (connOf(peer) >= 0) poller.modify(connOf(peer), if (peer == peers.owner) key_owner else childKey(peer), poller.IN);
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

fn closeStreamOf(_: void, stream: usize) void {
    replies.closeStream(stream);
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

// ---------------------------------------------------------------- signals

/// Every child in the peer's subtree. From the owner also the orphans of
/// the tree adopted by the server and, with SIGKILL, the tree's cgroup
/// (descendants below living children): the whole tree is the owner's.
fn handleKillAll(peer: Peer, header: *const protocol.RequestHeader, to: ReplyTo) void {
    const first_error = signalSubtreeErrno(peer, header.number);
    if (peer == peers.owner) {
        if (header.number != 0) tree.signalAdopted(header.number, &isInTable, false);
        if (header.number == sys.SIGKILL) _ = tree.killCgroup();
    }
    if (first_error != 0) return replyError(to, .KILL_ERROR, first_error);
    reply(to, .{ .result = @intFromEnum(Result.OK) });
}

/// A pid still in the table is a running child or, at worst, a zombie the
/// server has not reaped: its pid cannot have been reused. Anything else
/// (a child already reaped, a stranger, a process outside the requester's
/// subtree) gets ESRCH and no signal, as kill(2) for a process that is not
/// there.
fn handleKill(peer: Peer, header: *const protocol.RequestHeader, to: ReplyTo) void {
    const pid: sys.pid_t = header.number;
    const sig: c_int = @intCast(header.signal);
    const slot = peers.find(&state.table, pid) orelse return replyError(to, .KILL_ERROR, sys.E.SRCH);
    if (!peers.controls(&state.table, peer, slot)) return replyError(to, .KILL_ERROR, sys.E.SRCH);
    const failed: c_int = if (header.flags & protocol.Flags.tree != 0)
        tree.signalTree(pid, sig, state.server_pid)
    else if (sys.kill(pid, sig) != 0) sys.errno() else 0;
    if (failed != 0) return replyError(to, .KILL_ERROR, failed);
    reply(to, .{ .result = @intFromEnum(Result.OK) });
}

fn signalSubtree(peer: Peer, sig: c_int) void {
    _ = signalSubtreeErrno(peer, sig);
}

/// Signals every running child in peer's subtree. Returns the errno of
/// the first failed kill(2), ignoring ESRCH: a child that exited but is not
/// yet reaped is not an error. The pids are of children not yet reaped, so
/// none can have been recycled.
fn signalSubtreeErrno(peer: Peer, sig: c_int) c_int {
    var first_error: c_int = 0;
    for (0..state.table.high) |i| {
        const slot: Peer = @intCast(i);
        if (!peers.isRunning(&state.table, slot) or !peers.controls(&state.table, peer, slot)) continue;
        if (sys.kill(state.table.slots[slot].pid, sig) != 0) {
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
    const slot = peers.find(&state.table, pid) orelse return tree.forgetReaped(pid);
    const c = peers.get(&state.table, slot);
    if (c.exit_fd >= 0) {
        // One record of at most PIPE_BUF bytes (the event, and the rusage
        // when the fork asked for it), so one non-blocking write is all or
        // nothing. Dropped if it does not fit (a reader that filled its own
        // exit pipe): the reader then finds end-of-file without an event.
        const message = protocol.ExitMessage{ .event = .{ .pid = pid, .wait_status = status }, .rusage = usage.* };
        const size: usize = if (c.exit_rusage) @sizeOf(protocol.ExitMessage) else @sizeOf(protocol.ExitEvent);
        _ = write_end.put(c.exit_fd, std.mem.asBytes(&message)[0..size]);
        _ = sys.close(c.exit_fd);
        c.exit_fd = -1;
    }
    if (c.exit_stream != 0) {
        // Owed since the fork (events.zig): never dropped while the
        // stream's reader is there.
        if (events.findHandle(c.exit_stream)) |stream| {
            const record = protocol.EventRecord{ .kind = .exit, .tag = c.exit_tag, .pid = pid, .wait_status = status, .rusage = usage.* };
            replies.putRecord(stream, &record, false);
        }
        c.exit_stream = 0;
    }
    // Its connection, its event streams, and what it still waited for, go
    // with it.
    if (c.conn_fd >= 0) dropConn(slot);
    if (c.paused) setPaused(slot, false);
    events.forEachOf(slot, {}, closeStreamOf);
    while (pending.takeOf(&state.table, slot)) |own| replyError(own.to, .SERVER_GONE, 0);
    exits.moveRecords(&state.exits, &state.table, slot, c.parent);
    const parent = peers.remove(&state.table, slot);

    const record = ExitRecord{ .pid = pid, .status = status, .rusage = usage.*, .parent = parent, .seq = 0 };
    if (pending.takeFor(&state.table, .wait_pid, pid, parent) orelse pending.takeFor(&state.table, .wait_any, pid, parent)) |waiter| {
        replyExit(waiter.to, record);
    } else {
        exits.remember(&state.exits, &state.table, record);
    }
    // A status is reported once: other waits for this pid now wait for a
    // process that is no longer a child, like waitpid(2) would.
    while (pending.takeFor(&state.table, .wait_pid, pid, parent)) |waiter| replyError(waiter.to, .WAIT_ERROR, sys.E.CHILD);
    settleEmptySubtrees();
}

/// Waits of peers whose subtree has just emptied: wait_all is done, and a
/// wait for any child with nothing remembered either can never be
/// answered (ECHILD, as waitpid(2) without children).
fn settleEmptySubtrees() void {
    var i: usize = 0;
    while (i < pending.table.count) {
        const p = pending.table.items[i];
        const settled = switch (p.kind) {
            .wait_all, .wait_any => !peers.subtreeRunning(&state.table, p.peer) and
                (p.kind == .wait_all or !exits.hasFor(&state.exits, &state.table, p.peer)),
            .wait_pid, .stop => false,
        };
        if (!settled) {
            i += 1;
            continue;
        }
        pending.removeAt(&state.table, i);
        if (p.kind == .wait_all) {
            reply(p.to, .{ .result = @intFromEnum(Result.OK) });
        } else {
            replyError(p.to, .WAIT_ERROR, sys.E.CHILD);
        }
    }
}

fn replyExit(to: ReplyTo, record: ExitRecord) void {
    reply(to, .{ .result = @intFromEnum(Result.OK), .pid = record.pid, .wait_status = record.status, .rusage = record.rusage });
}

// ---------------------------------------------------------------- waits

fn handleWait(peer: Peer, header: *const protocol.RequestHeader, to: ReplyTo) void {
    const pid: sys.pid_t = header.number;
    if (exits.take(&state.exits, &state.table, peer, pid)) |record| return replyExit(to, record);
    // Like waitpid(2): a process outside the caller's subtree is not its
    // child, whoever forked it.
    const running = if (pid == -1)
        peers.subtreeRunning(&state.table, peer)
    else if (peers.find(&state.table, pid)) |slot|
        peers.controls(&state.table, peer, slot)
    else
        false;
    if (!running) return replyError(to, .WAIT_ERROR, sys.E.CHILD);
    if (header.flags & protocol.Flags.no_hang != 0) return replyError(to, .WOULD_BLOCK, 0);
    pending.add(&state.table, peer, if (pid == -1) .wait_any else .wait_pid, pid, to);
}

fn handleWaitAll(peer: Peer, to: ReplyTo) void {
    if (!peers.subtreeRunning(&state.table, peer)) return reply(to, .{ .result = @intFromEnum(Result.OK) });
    pending.add(&state.table, peer, .wait_all, 0, to);
}

fn handleStop(header: *const protocol.RequestHeader, to: ReplyTo, from_owner: bool) void {
    if (!from_owner) return replyError(to, .NOT_OWNER, sys.E.PERM);
    if (header.flags & protocol.Flags.server_only != 0) return detach(to);
    beginTermination();
    if (header.flags & protocol.Flags.wait != 0) {
        pending.add(&state.table, peers.owner, .stop, 0, to);
    } else {
        reply(to, .{ .result = @intFromEnum(Result.OK) });
    }
}

/// libforks_stop_server_only: the children keep running, but they die
/// with the server (tree.dieWithServer), so it stays as their reaper, and
/// serves nobody: the connections close (requests from children get
/// SERVER_GONE), exit fds close without an event, and the owner's death
/// no longer matters. It exits after the last process of the tree.
fn detach(to: ReplyTo) void {
    pending.answerAll(.SERVER_GONE);
    for (0..state.table.high) |i| {
        const slot: Peer = @intCast(i);
        if (!peers.isRunning(&state.table, slot)) continue;
        const c = peers.get(&state.table, slot);
        if (c.exit_fd >= 0) _ = sys.close(c.exit_fd);
        c.exit_fd = -1;
        if (c.conn_fd >= 0) dropConn(slot);
    }
    for (&state.table.spare_conn) |*fd| {
        if (fd.* >= 0) _ = sys.close(fd.*);
        fd.* = -1;
    }
    closeOwnerPidfd();
    reply(to, .{ .result = @intFromEnum(Result.OK) });
    // Their readers see end-of-file: nothing more will be said there.
    for (0..events.max_streams) |stream| replies.closeStream(stream);
    // Last: the owner waits for this end-of-file.
    poller.remove(state.owner_fd);
    _ = sys.close(state.owner_fd);
    state.owner_fd = -1;
    state.phase = .detached;
    state.exit_when_empty = true;
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
