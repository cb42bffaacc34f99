//! Killing a child's tree: every process below a child, reached top-down
//! through pidfds opened from /proc children lists and checked, so a
//! reused pid gets no signal.

const std = @import("std");
const sys = @import("sys.zig");
const raw = @import("raw.zig");
const proc = @import("proc.zig");
const linux = std.os.linux;
const rawClose = raw.rawClose;
const pidfdReadable = raw.pidfdReadable;
const visitChildrenFile = proc.visitChildrenFile;
const succeeded = raw.succeeded;
const Stat = proc.Stat;
const readStat = proc.readStat;

/// Most processes one kill of a child's tree reaches.
pub const max_tree = 4096;

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
