//! Supervising the tree, not the list: what lets a server reach every
//! process its children create, on Linux.
//!
//! - The server is a child subreaper (PR_SET_CHILD_SUBREAPER): a process
//!   of the tree whose parent exits is re-parented to the server, not to
//!   init, so it stays reachable ("adopted") and is reaped by the server.
//! - Each child dies with the server (PR_SET_PDEATHSIG = SIGKILL).
//! - Where a writable cgroup v2 is found, every child joins a cgroup of
//!   the server's own (libforks-<server pid>, beside the server, never
//!   holding it), which no descendant can leave without privileges;
//!   cgroup.kill then takes all of it at once.
//! - The owner's exit is noticed on a pidfd of the owner, opened while the
//!   owner is known to be alive.
//!
//! Everything here runs in the server or in a freshly forked child (or a
//! CLONE_VM child sharing the server's memory): raw system calls only, no
//! allocation, no lock, errno untouched. On macOS every function is a
//! no-op or reports "not available".
//!
//! Here: the owner's exit, the subreaper and its adopted orphans, and
//! reaping the server from the owner. The rest: cgroup.zig (the tree's
//! cgroup), tree_kill.zig (killing a child's tree through pidfds),
//! proc.zig (what is read from /proc), raw.zig (the raw calls).

const std = @import("std");
const sys = @import("sys.zig");
const raw = @import("raw.zig");
const proc = @import("proc.zig");
const cgroup = @import("cgroup.zig");
const tree_kill = @import("tree_kill.zig");
const linux = std.os.linux;
const succeeded = raw.succeeded;
const rawClose = raw.rawClose;
const processState = proc.processState;
const Stat = proc.Stat;
const readStat = proc.readStat;
const visitChildrenFile = proc.visitChildrenFile;

const PR_SET_PDEATHSIG: usize = 1;
const PR_SET_CHILD_SUBREAPER: usize = 36;

pub const max_tree = tree_kill.max_tree;
pub const signalTree = tree_kill.signalTree;
pub const createCgroup = cgroup.createCgroup;
pub const hasCgroup = cgroup.hasCgroup;
pub const joinCgroup = cgroup.joinCgroup;
pub const killCgroup = cgroup.killCgroup;
pub const removeCgroup = cgroup.removeCgroup;
pub const cleanUpAfterServer = cgroup.cleanUpAfterServer;

/// Adopted processes remembered as already sent SIGTERM during a stop.
const max_terminated = 1024;

pub const State = struct {
    /// A pidfd of the owner, or -1 (no pidfd support: the server probes
    /// the owner's pid instead).
    owner_pidfd: sys.fd_t,
    terminated: [max_terminated]sys.pid_t,
    terminated_count: usize,
};

pub var state: State = std.mem.zeroes(State);

/// Called first in a new server: a server started by a child of another
/// server starts from a copy of that server's state.
pub fn reset(owner_pidfd: sys.fd_t) void {
    cgroup.reset();
    state.owner_pidfd = owner_pidfd;
    state.terminated_count = 0;
}

/// Every fd the tree's files keep open in the server (a new child closes
/// them).
pub fn forEachFd(context: anytype, comptime visit: fn (@TypeOf(context), sys.fd_t) void) void {
    cgroup.forEachFd(context, visit);
    if (state.owner_pidfd >= 0) visit(context, state.owner_pidfd);
}

/// The tree's cgroup directory (O_PATH), sent to the owner at start, or -1.
pub fn cgroupDirFd() sys.fd_t {
    return cgroup.state.dir_fd;
}

// ---------------------------------------------------------------- owner

/// pidfd_open(2) of the caller's parent, in the short-lived middle process
/// of libforks_start: the parent is the owner. Checked against the race
/// where the owner dies (and its pid is reused) before the open: if the
/// middle still has the owner as its parent after the open, the owner was
/// alive during it, so the pidfd is the owner's. -1 without pidfds, or
/// when the owner is already gone (the server then sees the owner's
/// connection end, or the probe fails).
pub fn openOwnerPidfd(owner_pid: sys.pid_t) sys.fd_t {
    if (!sys.linux_paths) return -1;
    const rc = linux.syscall2(.pidfd_open, @as(usize, @intCast(owner_pid)), 0);
    if (!succeeded(rc)) return -1;
    const fd: sys.fd_t = @intCast(rc);
    if (sys.getppid() != owner_pid) {
        rawClose(fd);
        return -1;
    }
    return fd;
}

/// A pollable fd that becomes readable when process `pid` exits, or -1
/// (it is gone already, or cannot be watched). On macOS, a kqueue holding
/// EVFILT_PROC NOTE_EXIT for `pid` (a kqueue fd polls readable while an
/// event is pending); kqueues are not inherited across fork, so each
/// process that watches opens its own. On Linux a pidfd, which the
/// darwin-paths build stands in for the kqueue, opened at the same
/// moments. Unlike a pidfd opened by the owner's own child, a watch set up
/// after the middle process exited cannot tell a pid reused in between
/// (microseconds after start; the owner's connection ending is then what
/// stops the server).
pub fn watchExit(pid: sys.pid_t) sys.fd_t {
    if (sys.is_darwin) {
        const kq = sys.kqueue();
        if (kq < 0) return -1;
        _ = sys.setCloexec(kq);
        const change = [1]sys.Kevent{.{ .ident = @intCast(pid), .filter = sys.EVFILT_PROC, .flags = sys.EV_ADD, .fflags = sys.NOTE_EXIT, .data = 0, .udata = 0 }};
        if (sys.kevent(kq, &change, 1, null, 0, null) != 0) {
            rawClose(kq);
            return -1;
        }
        return kq;
    }
    const rc = linux.syscall2(.pidfd_open, @as(usize, @intCast(pid)), 0);
    return if (succeeded(rc)) @intCast(rc) else -1;
}

/// darwin paths, in a new server: the owner's exit is watched by the
/// server itself (watchExit), there being no pidfd for the middle process
/// to open; the 250 ms probe (ownerProbeSaysGone) remains for a watch that
/// could not be set up.
pub fn watchOwner(owner_pid: sys.pid_t) void {
    if (sys.linux_paths or state.owner_pidfd >= 0) return;
    state.owner_pidfd = watchExit(owner_pid);
}

/// The owner has exited, zombie included: a pidfd is readable from the
/// moment its process exits, reaped or not.
pub fn ownerPidfdExited() bool {
    var ready = [1]sys.pollfd{.{ .fd = state.owner_pidfd, .events = sys.POLLIN, .revents = 0 }};
    return sys.poll(&ready, 1, 0) == 1;
}

/// Without a pidfd: the owner's pid is gone, or it is a zombie (Linux:
/// /proc/<pid>/stat says Z). A pid reused by another process looks alive:
/// the owner's connection ending is then what stops the server.
pub fn ownerProbeSaysGone(owner_pid: sys.pid_t) bool {
    if (sys.kill(owner_pid, 0) != 0) return sys.errno() == sys.E.SRCH;
    if (!sys.linux_paths) return false;
    return processState(owner_pid) == 'Z';
}

// ---------------------------------------------------------------- subreaper

pub fn becomeSubreaper() void {
    if (!sys.linux_paths) return;
    _ = linux.syscall5(.prctl, PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

/// In a new child, before anything else of the caller's runs: the kernel
/// sends it SIGKILL when the server exits. False when the server already
/// exited before the request took effect (the child was re-parented, so
/// no death signal will ever come): the child must exit at once.
pub fn dieWithServer(server_pid: sys.pid_t) bool {
    if (!sys.linux_paths) return true;
    _ = linux.syscall5(.prctl, PR_SET_PDEATHSIG, @as(usize, @intCast(sys.SIGKILL)), 0, 0, 0);
    return @as(sys.pid_t, @intCast(linux.syscall0(.getppid))) == server_pid;
}

/// True while the server has any child at all, adopted ones included
/// (waitid with WNOWAIT: nothing is reaped).
pub fn hasChildren() bool {
    if (!sys.linux_paths) return false;
    var info: linux.siginfo_t = undefined;
    while (true) {
        const rc = linux.waitid(.ALL, 0, &info, linux.W.EXITED | linux.W.NOHANG | linux.W.NOWAIT);
        switch (linux.E.init(rc)) {
            .SUCCESS => return true,
            .INTR => continue,
            else => return false, // ECHILD
        }
    }
}

const AdoptedVisit = struct {
    sig: c_int,
    known: *const fn (sys.pid_t) bool,
    /// Remember who got it (SIGTERM during a stop), so nobody gets it twice.
    remember: bool,
};

/// Sends `sig` to every child of the server that is not in its table (an
/// orphan of the tree, re-parented to the server). Exact: those are the
/// server's own unreaped children, whose pids cannot be reused while the
/// server, single-threaded, is here instead of reaping.
pub fn signalAdopted(sig: c_int, known: *const fn (sys.pid_t) bool, remember: bool) void {
    if (!sys.linux_paths) return;
    var visit = AdoptedVisit{ .sig = sig, .known = known, .remember = remember };
    visitChildrenFile("/proc/thread-self/children", &visit, signalOneAdopted);
}

fn signalOneAdopted(visit: *AdoptedVisit, pid: sys.pid_t) void {
    if (visit.known(pid)) return;
    if (visit.remember) {
        for (state.terminated[0..state.terminated_count]) |done| if (done == pid) return;
        if (state.terminated_count == max_terminated) return; // gets SIGKILL at the deadline
        state.terminated[state.terminated_count] = pid;
        state.terminated_count += 1;
    }
    _ = sys.kill(pid, visit.sig);
}

/// A reaped pid may be reused: forget it.
pub fn forgetReaped(pid: sys.pid_t) void {
    for (state.terminated[0..state.terminated_count], 0..) |done, i| {
        if (done != pid) continue;
        state.terminated_count -= 1;
        state.terminated[i] = state.terminated[state.terminated_count];
        return;
    }
}

// ---------------------------------------------------------------- the caller's side

/// In the owner, once its server is stopped or gone: reaps the server if
/// it is this process's child. libforks_start's double fork makes the
/// server a child of init, except when the caller is a subreaper or PID 1
/// (a container's init): then the server is re-parented to the caller,
/// which must reap it. Exact: waitid(P_PIDFD) on the server's pidfd only
/// reaps that process, and fails with ECHILD when it is not a child.
/// Without P_PIDFD (Linux < 5.4) or a pidfd, /proc says whether the
/// server's parent is this process; an unreaped child's pid cannot be
/// reused, so waitpid then takes no other process's status. `block`:
/// wait for it to exit (it exits right after closing its connection).
pub fn reapServer(server_pid: sys.pid_t, pidfd: sys.fd_t, block: bool) void {
    if (!sys.linux_paths or server_pid <= 0) return;
    const nohang: u32 = if (block) 0 else linux.W.NOHANG;
    if (pidfd >= 0) {
        var info: linux.siginfo_t = undefined;
        while (true) {
            const rc = linux.waitid(.PIDFD, pidfd, &info, linux.W.EXITED | nohang);
            switch (linux.E.init(rc)) {
                .INTR => continue,
                .INVAL => break, // no P_PIDFD: ask /proc below
                else => return, // reaped, not yet exited (WNOHANG), or ECHILD
            }
        }
    }
    var stat: Stat = undefined;
    if (!readStat(server_pid, &stat) or stat.ppid != sys.getpid()) return;
    while (sys.waitpid(server_pid, null, if (block) 0 else sys.WNOHANG) < 0 and sys.errno() == sys.E.INTR) {}
}
