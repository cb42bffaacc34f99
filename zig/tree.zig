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

const std = @import("std");
const sys = @import("sys.zig");
const linux = std.os.linux;

const PR_SET_PDEATHSIG: usize = 1;
const PR_SET_CHILD_SUBREAPER: usize = 36;
const AT_REMOVEDIR: u32 = 0x200;
const O_WRONLY: u32 = 1;
const O_PATH: u32 = 0o10000000;
const W_OK: u32 = 2;

/// Most processes one kill of a child's tree reaches.
pub const max_tree = 4096;
/// Adopted processes remembered as already sent SIGTERM during a stop.
const max_terminated = 1024;

pub const State = struct {
    /// The cgroup directory the server started in (O_PATH), -1 if no
    /// writable cgroup v2 was found.
    parent_dir: sys.fd_t,
    /// cgroup.procs of the tree's cgroup: a new child writes "0" to it.
    procs_fd: sys.fd_t,
    /// cgroup.kill of the tree's cgroup (Linux 5.14), or -1.
    kill_fd: sys.fd_t,
    /// The tree's cgroup directory itself (O_PATH), sent to the owner at
    /// start (cleanUpAfterServer), or -1.
    dir_fd: sys.fd_t,
    name: [32]u8,
    name_len: usize,
    /// A pidfd of the owner, or -1 (no pidfd support: the server probes
    /// the owner's pid instead).
    owner_pidfd: sys.fd_t,
    terminated: [max_terminated]sys.pid_t,
    terminated_count: usize,
};

pub var state: State = std.mem.zeroes(State);

fn succeeded(rc: usize) bool {
    return linux.E.init(rc) == .SUCCESS;
}

fn rawClose(fd: sys.fd_t) void {
    if (fd >= 0) _ = linux.syscall1(.close, @as(usize, @intCast(fd)));
}

/// Called first in a new server: a server started by a child of another
/// server starts from a copy of that server's state.
pub fn reset(owner_pidfd: sys.fd_t) void {
    state.parent_dir = -1;
    state.procs_fd = -1;
    state.kill_fd = -1;
    state.dir_fd = -1;
    state.name_len = 0;
    state.owner_pidfd = owner_pidfd;
    state.terminated_count = 0;
}

/// Every fd this file keeps open in the server (a new child closes them).
pub fn forEachFd(context: anytype, comptime visit: fn (@TypeOf(context), sys.fd_t) void) void {
    for ([_]sys.fd_t{ state.parent_dir, state.procs_fd, state.kill_fd, state.dir_fd, state.owner_pidfd }) |fd| {
        if (fd >= 0) visit(context, fd);
    }
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

// ---------------------------------------------------------------- /proc

/// Field 3 of /proc/<pid>/stat (R, S, Z...), 0 if unreadable.
fn processState(pid: sys.pid_t) u8 {
    var stat: Stat = undefined;
    return if (readStat(pid, &stat)) stat.state else 0;
}

const Stat = struct { state: u8, ppid: sys.pid_t };

fn readStat(pid: sys.pid_t, out: *Stat) bool {
    var path_buf: [64]u8 = undefined;
    const path = std.fmt.bufPrintZ(&path_buf, "/proc/{d}/stat", .{pid}) catch return false;
    var buf: [512]u8 = undefined;
    const n = readSmallFile(path, &buf) orelse return false;
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so
    // parse from the last ')'.
    const text = buf[0..n];
    const close_paren = std.mem.lastIndexOfScalar(u8, text, ')') orelse return false;
    var fields = std.mem.tokenizeScalar(u8, text[close_paren + 1 ..], ' ');
    const state_field = fields.next() orelse return false;
    const ppid_field = fields.next() orelse return false;
    out.state = state_field[0];
    out.ppid = std.fmt.parseInt(sys.pid_t, ppid_field, 10) catch return false;
    return true;
}

fn readSmallFile(path: [*:0]const u8, buf: []u8) ?usize {
    const fd = sys.open(path, sys.O_RDONLY | sys.O_CLOEXEC);
    if (fd < 0) return null;
    defer _ = sys.close(fd);
    const n = sys.readFull(fd, buf);
    if (n < 0) return null;
    return @intCast(n);
}

/// Calls visit(context, pid) for every pid listed in a /proc ".../children"
/// file (space-separated), reading it in pieces.
fn visitChildrenFile(path: [*:0]const u8, context: anytype, comptime visit: fn (@TypeOf(context), sys.pid_t) void) void {
    const fd = sys.open(path, sys.O_RDONLY | sys.O_CLOEXEC);
    if (fd < 0) return;
    defer _ = sys.close(fd);
    var buf: [4096]u8 = undefined;
    var kept: usize = 0; // digits of a number cut by the previous read
    while (true) {
        const n = sys.read(fd, buf[kept..].ptr, buf.len - kept);
        if (n < 0 and sys.errno() == sys.E.INTR) continue;
        if (n <= 0) break;
        const end = kept + @as(usize, @intCast(n));
        var start: usize = 0;
        var i: usize = 0;
        while (i < end) : (i += 1) {
            if (buf[i] != ' ' and buf[i] != '\n') continue;
            if (i > start) {
                if (std.fmt.parseInt(sys.pid_t, buf[start..i], 10)) |pid| visit(context, pid) else |_| {}
            }
            start = i + 1;
        }
        kept = end - start;
        std.mem.copyForwards(u8, buf[0..kept], buf[start..end]);
        if (kept == buf.len) kept = 0; // not a pid list
    }
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

// ---------------------------------------------------------------- a child's tree

const Node = struct { pid: sys.pid_t, pidfd: sys.fd_t };

var tree_nodes: [max_tree]Node = undefined;

const Collect = struct {
    parent: sys.pid_t,
    server_pid: sys.pid_t,
    count: *usize,
};

/// Sends `sig` to `root` (a child in the server's table, so its pid is
/// exact) and to every process below it, top-down. Each descendant is
/// signalled through a pidfd opened from its parent's children list and
/// checked: its parent is still the one it was listed under (or the
/// server, when that parent exited meanwhile), and that parent was alive
/// after its list was read. A pid reused in between therefore gets no
/// signal. A process forked while the walk runs, or below an exited one
/// that was re-parented to the server, is not reached (stop, kill_all
/// and the owner's death reach those). Returns the errno of kill(root).
pub fn signalTree(root: sys.pid_t, sig: c_int, server_pid: sys.pid_t) c_int {
    var count: usize = 1;
    tree_nodes[0] = .{ .pid = root, .pidfd = -1 };
    var i: usize = 0;
    var root_errno: c_int = 0;
    while (i < count) : (i += 1) {
        const node = tree_nodes[i];
        const before = count;
        // Children first: a node that dies of the signal has its children
        // re-parented to the server at once, out of its list.
        if (sys.linux_paths) collectChildren(node.pid, server_pid, &count);
        if (node.pidfd >= 0 and pidfdReadable(node.pidfd)) {
            // Exited during the read: its pid may name another process
            // by now, so the list may not be its children.
            for (tree_nodes[before..count]) |n| rawClose(n.pidfd);
            count = before;
        }
        if (node.pidfd < 0) {
            if (sys.kill(node.pid, sig) != 0) root_errno = sys.errno();
        } else {
            _ = linux.syscall4(.pidfd_send_signal, @as(usize, @intCast(node.pidfd)), @as(usize, @intCast(sig)), 0, 0);
        }
    }
    for (tree_nodes[1..count]) |n| rawClose(n.pidfd);
    return root_errno;
}

fn pidfdReadable(fd: sys.fd_t) bool {
    var ready = [1]sys.pollfd{.{ .fd = fd, .events = sys.POLLIN, .revents = 0 }};
    return sys.poll(&ready, 1, 0) == 1;
}

/// Children of every thread of `pid`: /proc/<pid>/task/<tid>/children.
fn collectChildren(pid: sys.pid_t, server_pid: sys.pid_t, count: *usize) void {
    var dir_path_buf: [64]u8 = undefined;
    const dir_path = std.fmt.bufPrintZ(&dir_path_buf, "/proc/{d}/task", .{pid}) catch return;
    const dir = sys.open(dir_path, sys.O_RDONLY | sys.O_DIRECTORY | sys.O_CLOEXEC);
    if (dir < 0) return;
    defer _ = sys.close(dir);
    var collect = Collect{ .parent = pid, .server_pid = server_pid, .count = count };
    var buf: [2048]u8 align(8) = undefined;
    while (true) {
        const rc = linux.getdents64(dir, &buf, buf.len);
        if (!succeeded(rc) or rc == 0) return;
        var offset: usize = 0;
        while (offset < rc) {
            const entry: *align(1) const linux.dirent64 = @ptrCast(&buf[offset]);
            offset += entry.reclen;
            const name = std.mem.sliceTo(@as([*:0]const u8, @ptrCast(&entry.name)), 0);
            const tid = std.fmt.parseInt(sys.pid_t, name, 10) catch continue;
            var path_buf: [80]u8 = undefined;
            const path = std.fmt.bufPrintZ(&path_buf, "/proc/{d}/task/{d}/children", .{ pid, tid }) catch continue;
            visitChildrenFile(path, &collect, addChild);
        }
    }
}

fn addChild(collect: *Collect, pid: sys.pid_t) void {
    if (collect.count.* == max_tree) return;
    const rc = linux.syscall2(.pidfd_open, @as(usize, @intCast(pid)), 0);
    if (!succeeded(rc)) return;
    const fd: sys.fd_t = @intCast(rc);
    var stat: Stat = undefined;
    if (!readStat(pid, &stat) or (stat.ppid != collect.parent and stat.ppid != collect.server_pid)) {
        rawClose(fd);
        return;
    }
    tree_nodes[collect.count.*] = .{ .pid = pid, .pidfd = fd };
    collect.count.* += 1;
}

// ---------------------------------------------------------------- cgroup

/// Makes the tree's cgroup, libforks-<server_pid>, in the cgroup v2
/// directory the server runs in. Nothing happens (and the server relies
/// on the subreaper alone) when there is no cgroup v2 mount, the
/// directory is not writable, or anything else fails.
pub fn createCgroup(server_pid: sys.pid_t) void {
    if (!sys.linux_paths) return;
    var path_buf: [4096]u8 = undefined;
    const dir_path = ownCgroupDirectory(&path_buf) orelse return;
    const dir = sys.open(dir_path, @as(c_int, @intCast(O_PATH)) | sys.O_DIRECTORY | sys.O_CLOEXEC);
    if (dir < 0) return;
    // Moving a process between two cgroups needs write access to
    // cgroup.procs of both (their common ancestor is this directory).
    if (!succeeded(linux.syscall3(.faccessat, @as(usize, @intCast(dir)), @intFromPtr("cgroup.procs"), W_OK))) {
        _ = sys.close(dir);
        return;
    }
    const name = std.fmt.bufPrintZ(&state.name, "libforks-{d}", .{server_pid}) catch unreachable;
    state.name_len = name.len;
    var made = linux.mkdirat(dir, name.ptr, 0o755);
    if (linux.E.init(made) == .EXIST) {
        // Left by a server that was SIGKILLed and had this pid: empty, or
        // rmdir fails and so does this server's cgroup.
        _ = linux.unlinkat(dir, name.ptr, AT_REMOVEDIR);
        made = linux.mkdirat(dir, name.ptr, 0o755);
    }
    if (!succeeded(made)) {
        _ = sys.close(dir);
        return;
    }
    var file_buf: [64]u8 = undefined;
    const procs_path = std.fmt.bufPrintZ(&file_buf, "{s}/cgroup.procs", .{name}) catch unreachable;
    const procs = openAt(dir, procs_path, O_WRONLY);
    if (procs < 0) {
        _ = linux.unlinkat(dir, name.ptr, AT_REMOVEDIR);
        _ = sys.close(dir);
        return;
    }
    const kill_path = std.fmt.bufPrintZ(&file_buf, "{s}/cgroup.kill", .{name}) catch unreachable;
    state.kill_fd = openAt(dir, kill_path, O_WRONLY);
    state.dir_fd = openAt(dir, name.ptr, O_PATH | @as(u32, @intCast(sys.O_DIRECTORY)));
    state.procs_fd = procs;
    state.parent_dir = dir;
}

fn openAt(dir: sys.fd_t, path: [*:0]const u8, flags: u32) sys.fd_t {
    const rc = linux.syscall4(.openat, @as(usize, @intCast(dir)), @intFromPtr(path), flags | @as(u32, @intCast(sys.O_CLOEXEC)), 0);
    if (!succeeded(rc)) return -1;
    return @intCast(rc);
}

pub fn hasCgroup() bool {
    return state.procs_fd >= 0;
}

/// In a new child: join the tree's cgroup before running anything of the
/// caller's, so nothing it starts can be outside. A failure (a cgroup
/// removed under the server) leaves the child where the server is: the
/// subreaper still covers it.
pub fn joinCgroup() void {
    if (state.procs_fd < 0) return;
    _ = linux.write(state.procs_fd, "0", 1);
}

/// SIGKILL to every process in the tree's cgroup at once. False without
/// cgroup.kill.
pub fn killCgroup() bool {
    if (state.kill_fd < 0) return false;
    return succeeded(linux.write(state.kill_fd, "1", 1));
}

/// Removes the tree's cgroup (the server is never in it). Called once no
/// process of the tree is left; cgroups a nested server made inside it
/// go first.
pub fn removeCgroup() void {
    if (state.parent_dir < 0) return;
    rawClose(state.procs_fd);
    rawClose(state.kill_fd);
    rawClose(state.dir_fd);
    state.procs_fd = -1;
    state.kill_fd = -1;
    state.dir_fd = -1;
    const name: [*:0]const u8 = @ptrCast(state.name[0..state.name_len :0]);
    if (!succeeded(linux.unlinkat(state.parent_dir, name, AT_REMOVEDIR))) {
        const inner = openAt(state.parent_dir, name, @as(u32, @intCast(sys.O_DIRECTORY)));
        if (inner >= 0) {
            removeSubdirectories(inner, 8);
            rawClose(inner);
        }
        _ = linux.unlinkat(state.parent_dir, name, AT_REMOVEDIR);
    }
    rawClose(state.parent_dir);
    state.parent_dir = -1;
}

/// rmdir of every empty cgroup below `dir` (depth-first, at most `depth`
/// levels): a cgroup directory's only entries that are directories are
/// its child cgroups.
fn removeSubdirectories(dir: sys.fd_t, depth: usize) void {
    if (depth == 0) return;
    var buf: [2048]u8 align(8) = undefined;
    while (true) {
        const rc = linux.getdents64(dir, &buf, buf.len);
        if (!succeeded(rc) or rc == 0) return;
        var removed = false;
        var offset: usize = 0;
        while (offset < rc) {
            const entry: *align(1) const linux.dirent64 = @ptrCast(&buf[offset]);
            offset += entry.reclen;
            if (entry.type != linux.DT.DIR) continue;
            const name: [*:0]const u8 = @ptrCast(&entry.name);
            const name_slice = std.mem.sliceTo(name, 0);
            if (std.mem.eql(u8, name_slice, ".") or std.mem.eql(u8, name_slice, "..")) continue;
            const inner = openAt(dir, name, @as(u32, @intCast(sys.O_DIRECTORY)));
            if (inner >= 0) {
                removeSubdirectories(inner, depth - 1);
                rawClose(inner);
            }
            if (succeeded(linux.unlinkat(dir, name, AT_REMOVEDIR))) removed = true;
        }
        // Removing entries while reading shifts the directory's offsets.
        if (removed) _ = linux.lseek(dir, 0, linux.SEEK.SET);
    }
}

/// The directory of this process's cgroup v2: the "0::" line of
/// /proc/self/cgroup, under the cgroup2 mount of /proc/self/mountinfo.
fn ownCgroupDirectory(out: *[4096]u8) ?[:0]const u8 {
    var cgroup_buf: [4096]u8 = undefined;
    const n = readSmallFile("/proc/self/cgroup", &cgroup_buf) orelse return null;
    var lines = std.mem.tokenizeScalar(u8, cgroup_buf[0..n], '\n');
    const own = while (lines.next()) |line| {
        if (std.mem.startsWith(u8, line, "0::")) break line[3..];
    } else return null;
    if (own.len == 0 or own[0] != '/' or std.mem.indexOfScalar(u8, own, ' ') != null) return null;

    var mount = MountSearch{ .own = own, .out = out };
    visitLines("/proc/self/mountinfo", &mount, findCgroup2Mount);
    return mount.found;
}

const MountSearch = struct {
    own: []const u8,
    out: *[4096]u8,
    found: ?[:0]const u8 = null,
};

/// "36 35 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw": fields 4
/// and 5 are the mount's root and its mount point; after " - ", the type.
fn findCgroup2Mount(search: *MountSearch, line: []const u8) void {
    if (search.found != null) return;
    const separator = std.mem.indexOf(u8, line, " - ") orelse return;
    if (!std.mem.startsWith(u8, line[separator + 3 ..], "cgroup2 ")) return;
    var fields = std.mem.tokenizeScalar(u8, line[0..separator], ' ');
    _ = fields.next();
    _ = fields.next();
    _ = fields.next();
    const root = fields.next() orelse return;
    const mount_point = fields.next() orelse return;
    // Octal escapes (\040 for a space) are not decoded: such paths are skipped.
    if (std.mem.indexOfScalar(u8, mount_point, '\\') != null or std.mem.indexOfScalar(u8, root, '\\') != null) return;
    var relative: []const u8 = undefined;
    if (std.mem.eql(u8, root, "/")) {
        relative = search.own;
    } else if (std.mem.startsWith(u8, search.own, root) and (search.own.len == root.len or search.own[root.len] == '/')) {
        relative = search.own[root.len..];
    } else return;
    search.found = std.fmt.bufPrintZ(search.out, "{s}{s}", .{ mount_point, relative }) catch return;
}

/// visit(context, line) for every line of a file, read in pieces; lines
/// longer than the buffer are skipped.
fn visitLines(path: [*:0]const u8, context: anytype, comptime visit: fn (@TypeOf(context), []const u8) void) void {
    const fd = sys.open(path, sys.O_RDONLY | sys.O_CLOEXEC);
    if (fd < 0) return;
    defer _ = sys.close(fd);
    var buf: [8192]u8 = undefined;
    var kept: usize = 0;
    var skipping = false;
    while (true) {
        const n = sys.read(fd, buf[kept..].ptr, buf.len - kept);
        if (n < 0 and sys.errno() == sys.E.INTR) continue;
        if (n <= 0) break;
        const end = kept + @as(usize, @intCast(n));
        var start: usize = 0;
        while (std.mem.indexOfScalarPos(u8, buf[0..end], start, '\n')) |newline| {
            if (!skipping) visit(context, buf[start..newline]);
            skipping = false;
            start = newline + 1;
        }
        kept = end - start;
        std.mem.copyForwards(u8, buf[0..kept], buf[start..end]);
        if (kept == buf.len) {
            kept = 0;
            skipping = true;
        }
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

/// In the owner, once its server is known to be gone (its pidfd is
/// readable): a server that exited normally has removed the tree's
/// cgroup; one that was SIGKILLed left it, holding whatever its children
/// started. This kills what is left (cgroup.kill through the directory fd
/// the server sent at start: exactly that cgroup, never a namesake) and
/// removes the directory, waiting at most 200 ms for it to empty. Plain
/// code in the caller, not the server.
pub fn cleanUpAfterServer(server_pidfd: sys.fd_t, cgroup_fd: sys.fd_t) void {
    if (!sys.linux_paths or cgroup_fd < 0 or server_pidfd < 0 or !pidfdReadable(server_pidfd)) return;
    const kill_fd = openAt(cgroup_fd, "cgroup.kill", O_WRONLY);
    if (kill_fd < 0) return; // removed by the server (or no cgroup.kill)
    _ = linux.write(kill_fd, "1", 1);
    rawClose(kill_fd);
    // rmdir by path, checked to be the same directory as the fd.
    var link_buf: [64]u8 = undefined;
    const link = std.fmt.bufPrintZ(&link_buf, "/proc/self/fd/{d}", .{cgroup_fd}) catch return;
    var path_buf: [4096]u8 = undefined;
    const rc = linux.readlink(link.ptr, &path_buf, path_buf.len - 1);
    if (!succeeded(rc)) return;
    path_buf[rc] = 0;
    const path: [*:0]const u8 = @ptrCast(path_buf[0..rc :0]);
    var ours: linux.Stat = undefined;
    var named: linux.Stat = undefined;
    if (!succeeded(linux.fstat(cgroup_fd, &ours))) return;
    var waited: usize = 0;
    while (waited < 200) : (waited += 5) {
        if (!succeeded(linux.fstatat(linux.AT.FDCWD, path, &named, 0)) or named.ino != ours.ino or named.dev != ours.dev) return;
        if (succeeded(linux.unlinkat(linux.AT.FDCWD, path, AT_REMOVEDIR))) return;
        const pause = linux.timespec{ .sec = 0, .nsec = 5 * std.time.ns_per_ms };
        _ = linux.nanosleep(&pause, null);
    }
}
