//! macOS only: the kqueue declarations of sys.zig (which re-exports them),
//! for the readiness thread and the owner's exit watch.

const builtin = @import("builtin");
const is_darwin = builtin.os.tag.isDarwin();

/// kqueue(2) and kevent(2), struct kevent as XNU lays it out
/// on 64-bit targets.
pub const Kevent = extern struct {
    ident: usize,
    filter: i16,
    flags: u16,
    fflags: u32,
    data: isize,
    udata: usize,
};
pub const EVFILT_READ: i16 = -1;
pub const EVFILT_WRITE: i16 = -2;
pub const EVFILT_PROC: i16 = -5;
pub const EV_ADD: u16 = 0x1;
pub const EV_DELETE: u16 = 0x2;
pub const EV_EOF: u16 = 0x8000;
pub const EV_ERROR: u16 = 0x4000;
pub const EV_ONESHOT: u16 = 0x10;
pub const NOTE_EXIT: u32 = 0x80000000;
pub const kqueue = if (is_darwin) struct {
    extern "c" fn kqueue() c_int;
}.kqueue else undefined;
pub const kevent = if (is_darwin) struct {
    extern "c" fn kevent(kq: c_int, changes: ?[*]const Kevent, nchanges: c_int, events: ?[*]Kevent, nevents: c_int, timeout: ?*const anyopaque) c_int;
}.kevent else undefined;
