//! The fds a new server starts with: the host's close-on-exec ones are
//! closed, the inheritable ones recorded (a new child keeps them), and the
//! fd limit raised so the tables can fill (children get the caller's back).

const sys = @import("sys.zig");
const server_state = @import("server_state.zig");
const limits = @import("limits.zig");
const state = &server_state.state;
const max_inherited = server_state.max_inherited;

/// Close-on-exec fds are the host's private ones (Bun's epoll, eventfds,
/// pipes; other servers' sockets): a child of the server must not hold
/// them. Inheritable fds are kept on purpose: the caller left them open for
/// children (a listening socket shared by preforked workers, say).
pub fn closeInheritedCloexecFds(keep: sys.fd_t, keep_too: sys.fd_t) void {
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
pub fn raiseFdLimit() void {
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
