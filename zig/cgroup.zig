//! The tree's cgroup (Linux cgroup v2, where one is writable): made
//! beside the server at start, joined by every new child, killed at once
//! with cgroup.kill, removed when the tree is gone, and, from the owner,
//! cleaned up after a server that was SIGKILLed.

const std = @import("std");
const sys = @import("sys.zig");
const raw = @import("raw.zig");
const proc = @import("proc.zig");
const linux = std.os.linux;
const succeeded = raw.succeeded;
const openAt = raw.openAt;
const rawClose = raw.rawClose;
const readSmallFile = proc.readSmallFile;
const visitLines = proc.visitLines;
const pidfdReadable = raw.pidfdReadable;

const AT_REMOVEDIR: u32 = 0x200;
const O_WRONLY: u32 = 1;
const O_PATH: u32 = 0o10000000;
const W_OK: u32 = 2;

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
};

pub var state: State = std.mem.zeroes(State);

/// In a new server (tree.reset): no cgroup yet.
pub fn reset() void {
    state.parent_dir = -1;
    state.procs_fd = -1;
    state.kill_fd = -1;
    state.dir_fd = -1;
    state.name_len = 0;
}

pub fn forEachFd(context: anytype, comptime visit: fn (@TypeOf(context), sys.fd_t) void) void {
    for ([_]sys.fd_t{ state.parent_dir, state.procs_fd, state.kill_fd, state.dir_fd }) |fd| {
        if (fd >= 0) visit(context, fd);
    }
}

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
    removeStale(dir, server_pid);
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

/// Directory entries read when looking for stale cgroups: a bound on a
/// new server's start in a crowded cgroup directory.
const stale_scan_reads = 8;

/// rmdir of every libforks-<pid> beside ours whose server is gone. A server
/// SIGKILLed after its owner detached (stop_server_only), or together with
/// its owner, leaves its cgroup behind: its children die with it
/// (PR_SET_PDEATHSIG) and nobody is left to remove it. The kernel refuses
/// to remove a cgroup that holds a process or a child cgroup, so only empty
/// ones go; a live server's, whose pid answers kill(pid, 0), is not tried.
fn removeStale(dir: sys.fd_t, server_pid: sys.pid_t) void {
    // `dir` is O_PATH, which cannot be listed.
    const listing = openAt(dir, ".", @as(u32, @intCast(sys.O_DIRECTORY)));
    if (listing < 0) return;
    defer rawClose(listing);
    forEachSubdirectory(listing, stale_scan_reads, server_pid, removeIfStale);
}

fn removeIfStale(server_pid: sys.pid_t, dir: sys.fd_t, name: [*:0]const u8) bool {
    const pid = stalePid(std.mem.sliceTo(name, 0)) orelse return false;
    if (pid == server_pid or linux.E.init(linux.kill(pid, 0)) != .SRCH) return false;
    return succeeded(linux.unlinkat(dir, name, AT_REMOVEDIR));
}

/// The pid in a cgroup name libforks-<pid>, or null for any other name.
fn stalePid(name: []const u8) ?sys.pid_t {
    const prefix = "libforks-";
    if (!std.mem.startsWith(u8, name, prefix)) return null;
    const digits = name[prefix.len..];
    if (digits.len == 0) return null;
    for (digits) |c| if (!std.ascii.isDigit(c)) return null;
    const pid = std.fmt.parseInt(sys.pid_t, digits, 10) catch return null;
    return if (pid > 0) pid else null;
}

test stalePid {
    try std.testing.expectEqual(@as(?sys.pid_t, 1718), stalePid("libforks-1718"));
    try std.testing.expectEqual(@as(?sys.pid_t, null), stalePid("libforks-"));
    try std.testing.expectEqual(@as(?sys.pid_t, null), stalePid("libforks-0"));
    try std.testing.expectEqual(@as(?sys.pid_t, null), stalePid("libforks-12a"));
    try std.testing.expectEqual(@as(?sys.pid_t, null), stalePid("libforks--5"));
    try std.testing.expectEqual(@as(?sys.pid_t, null), stalePid("libforks-+5"));
    try std.testing.expectEqual(@as(?sys.pid_t, null), stalePid("libforks-99999999999"));
    try std.testing.expectEqual(@as(?sys.pid_t, null), stalePid("user.slice"));
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
    forEachSubdirectory(dir, std.math.maxInt(usize), depth, removeTree);
}

fn removeTree(depth: usize, dir: sys.fd_t, name: [*:0]const u8) bool {
    const inner = openAt(dir, name, @as(u32, @intCast(sys.O_DIRECTORY)));
    if (inner >= 0) {
        removeSubdirectories(inner, depth - 1);
        rawClose(inner);
    }
    return succeeded(linux.unlinkat(dir, name, AT_REMOVEDIR));
}

/// Calls `remove(context, dir, name)` for each subdirectory of `dir` but
/// "." and "..", at most `max_reads` reads of 2 KiB: `remove` says whether
/// it removed it, and removing entries while reading shifts the
/// directory's offsets, so the listing then starts over.
fn forEachSubdirectory(dir: sys.fd_t, max_reads: usize, context: anytype, comptime remove: fn (@TypeOf(context), sys.fd_t, [*:0]const u8) bool) void {
    var buf: [2048]u8 align(8) = undefined;
    var reads: usize = 0;
    while (reads < max_reads) : (reads += 1) {
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
            if (remove(context, dir, name)) removed = true;
        }
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
