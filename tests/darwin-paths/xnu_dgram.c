// An LD_PRELOAD library that gives Linux's AF_UNIX datagram socket pairs
// the limits of XNU (macOS) AF_UNIX datagram sockets, so that the
// darwin-paths build (build.zig, -Ddarwin-paths=true) meets here what it
// would meet on a Mac:
//
// - a datagram longer than the sender's send buffer fails with EMSGSIZE
//   (XNU's sosend: net.local.dgram.maxdgram, 2,048 bytes, unless
//   SO_SNDBUF raised it on that socket);
// - a datagram that does not fit in the receiver's receive buffer fails
//   with ENOBUFS at once, blocking socket or not (XNU's sbappendaddr:
//   net.local.dgram.recvspace, 4,096 bytes, unless SO_RCVBUF raised it on
//   the receiving socket). What a queued datagram costs is counted as XNU
//   counts it: its bytes, the sender's address (an unnamed socket's
//   16-byte sockaddr) and its control data (fds become 8-byte pointers);
//   XNU's separate limit on mbuf storage, which can refuse many small
//   datagrams somewhat sooner, is not modelled;
// - SO_SNDBUF and SO_RCVBUF read back as set (Linux doubles them); values
//   over XNU's sb_max (kern.ipc.maxsockbuf 8 MiB scaled by 2048/2304) fail
//   with ENOBUFS;
// - no AF_UNIX SOCK_SEQPACKET (EPROTONOSUPPORT), no SOCK_CLOEXEC or
//   SOCK_NONBLOCK in a datagram pair's type (EPROTOTYPE);
// - SO_NOSIGPIPE is accepted on every socket; on an AF_UNIX socket other
//   than a datagram pair's (a stream socket) sends then add MSG_NOSIGNAL,
//   so that without it a send to a closed peer raises SIGPIPE, as on XNU
//   (a Linux datagram socket never raises SIGPIPE anyway);
// - when a datagram socket's peer is gone (its last fd closed, in any
//   process), the survivor has ECONNRESET pending, as XNU's unp_drop sets
//   so_error: the next receive that finds its queue empty, or the next
//   send, fails with it once and clears it (soreceive, sosend); after
//   that a receive waits (or EAGAIN) as before, and a send, the socket
//   being disconnected, fails with EDESTADDRREQ. Like XNU, this wakes no
//   call that was already waiting. Whether the peer is gone is asked of
//   the kernel (sock_diag: is its inode still a live AF_UNIX socket) when
//   a receive finds nothing queued, or a send is refused. Not emulated:
//   poll(2) and epoll seeing the pending error as readable.
//
// The queue a datagram joins belongs to the receiving socket and is shared
// by every process holding either end (fds travel, processes fork), so the
// accounting lives in a file mapped MAP_SHARED by every process of the run
// (XNU_DGRAM_TABLE names it; created if missing), one slot per socket,
// keyed by the socket's inode number. A send reserves its cost in the
// receiver's slot before the real send (atomically, so concurrent senders
// cannot overfill it); a receive releases it. Whenever a reservation does
// not fit, the sender's SIOCOUTQ (bytes it still has queued in the kernel)
// is read: 0 means the receiver's queue is really empty (drained by a
// process without this library, or purged because the receiver closed),
// and the count is reset, so the accounting can be lenient but never
// refuses a send that XNU would accept for long.
//
// Tracked: socket pairs made by socketpair(2) in a process with this
// library loaded, and sendmsg/send/sendto/recvmsg/recv/recvfrom/read/write
// on them. Not tracked: readv/writev, datagram sockets made with
// socket(2), processes started without LD_PRELOAD (their sends are not
// limited).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <linux/unix_diag.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define XNU_MAXDGRAM 2048
#define XNU_RECVSPACE 4096
#define XNU_SB_MAX_USABLE (8u * 1024 * 1024 / (256 + 2048) * 2048)
#define XNU_SO_NOSIGPIPE 0x1022
#define XNU_ADDRESS_COST 16
#define XNU_CMSGHDR 12

#define SLOTS (1u << 20)
#define TABLE_MAGIC 0x58444731u /* "XDG1" */

struct slot {
  _Atomic uint64_t ino; // 0: free
  _Atomic uint64_t peer;
  _Atomic int64_t queued; // bytes waiting in this socket's receive queue
  _Atomic uint32_t sndbuf;
  _Atomic uint32_t rcvbuf;
  _Atomic uint32_t nosigpipe;
  _Atomic uint32_t reset_reported; // the peer's ECONNRESET was seen once
  _Atomic uint32_t flag_only;      // not a datagram pair's: only SO_NOSIGPIPE is kept
  uint32_t unused;
};

// Counters, read by tests/darwin-paths/run.sh at the end of a run.
struct header {
  _Atomic uint32_t magic;
  uint32_t slots;
  _Atomic uint64_t pairs;
  _Atomic uint64_t sends;
  _Atomic uint64_t emsgsize;
  _Atomic uint64_t enobufs;
  _Atomic uint64_t resets;
  _Atomic uint64_t overwritten; // slots of earlier sockets (closed or live) taken by newer ones
  _Atomic uint64_t untracked_peer;
  uint8_t pad[4096 - 64];
};

struct table {
  struct header header;
  struct slot slots[SLOTS];
};

static struct table *table;

static int (*real_socketpair)(int, int, int, int[2]);
static int (*real_socket)(int, int, int);
static ssize_t (*real_sendmsg)(int, const struct msghdr *, int);
static ssize_t (*real_recvmsg)(int, struct msghdr *, int);
static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_setsockopt)(int, int, int, const void *, socklen_t);
static int (*real_getsockopt)(int, int, int, void *, socklen_t *);

static void die(const char *what) {
  char line[256];
  int n = snprintf(line, sizeof line, "xnu_dgram: %s: %s\n", what, strerror(errno));
  if (n > 0) (void)!write(2, line, (size_t)n);
  _exit(99);
}

__attribute__((constructor)) static void init(void) {
  real_socketpair = dlsym(RTLD_NEXT, "socketpair");
  real_socket = dlsym(RTLD_NEXT, "socket");
  real_sendmsg = dlsym(RTLD_NEXT, "sendmsg");
  real_recvmsg = dlsym(RTLD_NEXT, "recvmsg");
  real_read = dlsym(RTLD_NEXT, "read");
  real_write = dlsym(RTLD_NEXT, "write");
  real_setsockopt = dlsym(RTLD_NEXT, "setsockopt");
  real_getsockopt = dlsym(RTLD_NEXT, "getsockopt");
  if (!real_socketpair || !real_socket || !real_sendmsg || !real_recvmsg || !real_setsockopt || !real_getsockopt || !real_read || !real_write) die("dlsym");

  const char *path = getenv("XNU_DGRAM_TABLE");
  char made[64];
  int fd;
  if (path && *path) {
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  } else {
    strcpy(made, "/tmp/xnu-dgram-XXXXXX");
    fd = mkostemp(made, O_CLOEXEC);
    if (fd >= 0 && setenv("XNU_DGRAM_TABLE", made, 1) != 0) die("setenv");
  }
  if (fd < 0) die("open XNU_DGRAM_TABLE");
  struct stat st;
  if (fstat(fd, &st) != 0) die("fstat XNU_DGRAM_TABLE");
  // Grown only, never shrunk: the file is sparse, pages appear as slots
  // are used.
  if ((size_t)st.st_size < sizeof(struct table) && ftruncate(fd, sizeof(struct table)) != 0) die("ftruncate XNU_DGRAM_TABLE");
  void *map = mmap(NULL, sizeof(struct table), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) die("mmap XNU_DGRAM_TABLE");
  close(fd);
  table = map;
  uint32_t expected = 0;
  atomic_compare_exchange_strong(&table->header.magic, &expected, TABLE_MAGIC);
  table->header.slots = SLOTS;
}

static uint64_t inode_of(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return 0;
  return (uint64_t)st.st_ino;
}

static struct slot *slot_for(uint64_t ino) {
  return ino == 0 ? NULL : &table->slots[ino & (SLOTS - 1)];
}

static struct slot *lookup(uint64_t ino) {
  struct slot *slot = slot_for(ino);
  return slot && atomic_load(&slot->ino) == ino && !atomic_load(&slot->flag_only) ? slot : NULL;
}

// Another socket's SO_NOSIGPIPE (flag_only slots).
static int nosigpipe_set(int fd) {
  uint64_t ino = inode_of(fd);
  struct slot *slot = slot_for(ino);
  return slot && atomic_load(&slot->ino) == ino && atomic_load(&slot->flag_only) && atomic_load(&slot->nosigpipe);
}

static struct slot *tracked(int fd) {
  return lookup(inode_of(fd));
}

static void track(uint64_t ino, uint64_t peer, uint32_t flag_only) {
  struct slot *slot = slot_for(ino);
  uint64_t old = atomic_exchange(&slot->ino, 0);
  if (old != 0 && old != ino) atomic_fetch_add(&table->header.overwritten, 1);
  atomic_store(&slot->peer, peer);
  atomic_store(&slot->queued, 0);
  atomic_store(&slot->sndbuf, XNU_MAXDGRAM);
  atomic_store(&slot->rcvbuf, XNU_RECVSPACE);
  atomic_store(&slot->nosigpipe, 0);
  atomic_store(&slot->reset_reported, 0);
  atomic_store(&slot->flag_only, flag_only);
  atomic_store(&slot->ino, ino);
}

static int fail(int error) {
  errno = error;
  return -1;
}

int socket(int domain, int type, int protocol) {
  if (domain == AF_UNIX && (type & 0xf) == SOCK_SEQPACKET) return fail(EPROTONOSUPPORT);
  return real_socket(domain, type, protocol);
}

int socketpair(int domain, int type, int protocol, int fds[2]) {
  if (domain != AF_UNIX) return real_socketpair(domain, type, protocol, fds);
  int kind = type & 0xf;
  if (kind == SOCK_SEQPACKET) return fail(EPROTONOSUPPORT);
  if (kind != SOCK_DGRAM) return real_socketpair(domain, type, protocol, fds);
  if (type != SOCK_DGRAM) return fail(EPROTOTYPE);
  if (real_socketpair(domain, type, protocol, fds) != 0) return -1;
  uint64_t a = inode_of(fds[0]), b = inode_of(fds[1]);
  // Linux charges a queued datagram to its sender's send buffer, XNU to
  // the receiver's receive buffer: Linux's limit is raised out of the way
  // (to XNU's sb_max) so that XNU's, counted here, comes first.
  // Linux's other limit, net.unix.max_dgram_qlen datagrams per receiver
  // (512 by default), can still come first for a receiver whose SO_RCVBUF
  // was raised to hold more than that many small datagrams; such a send
  // fails with ENOBUFS too.
  int most = (int)XNU_SB_MAX_USABLE;
  for (int i = 0; i < 2; i++) {
    if (real_setsockopt(fds[i], SOL_SOCKET, SO_SNDBUFFORCE, &most, sizeof most) != 0) {
      (void)real_setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &most, sizeof most);
    }
  }
  track(a, b, 0);
  track(b, a, 0);
  atomic_fetch_add(&table->header.pairs, 1);
  return 0;
}

// XNU's control data for SCM_RIGHTS: its 12-byte cmsghdr, then a
// pointer per fd, aligned to 4.
static int64_t control_cost(size_t fd_count) {
  if (fd_count == 0) return 0;
  return (int64_t)((XNU_CMSGHDR + fd_count * sizeof(void *) + 3) & ~(size_t)3);
}

static size_t fds_in(const struct msghdr *msg) {
  size_t count = 0;
  if (!msg->msg_control || msg->msg_controllen < sizeof(struct cmsghdr)) return 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c; c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len >= CMSG_LEN(0)) {
      count += (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    }
  }
  return count;
}

static size_t iov_total(const struct msghdr *msg) {
  size_t total = 0;
  for (size_t i = 0; i < msg->msg_iovlen; i++) total += msg->msg_iov[i].iov_len;
  return total;
}

// Whether the AF_UNIX socket with this inode is gone: sock_diag's exact
// lookup answers ENOENT once its last fd closed. 0 when unsure.
static int socket_gone(uint64_t ino) {
  int nl = real_socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return 0;
  struct {
    struct nlmsghdr header;
    struct unix_diag_req request;
  } ask = {
      .header = {.nlmsg_len = sizeof ask, .nlmsg_type = SOCK_DIAG_BY_FAMILY, .nlmsg_flags = NLM_F_REQUEST},
      .request = {.sdiag_family = AF_UNIX, .udiag_ino = (uint32_t)ino, .udiag_cookie = {~0u, ~0u}},
  };
  struct iovec out = {&ask, sizeof ask};
  struct msghdr message = {.msg_iov = &out, .msg_iovlen = 1};
  int gone = 0;
  if (real_sendmsg(nl, &message, 0) == (ssize_t)sizeof ask) {
    char answer[4096] __attribute__((aligned(8)));
    struct iovec in = {answer, sizeof answer};
    struct msghdr reply = {.msg_iov = &in, .msg_iovlen = 1};
    ssize_t n = real_recvmsg(nl, &reply, 0);
    const struct nlmsghdr *header = (const struct nlmsghdr *)answer;
    if (n >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) && header->nlmsg_type == NLMSG_ERROR) {
      gone = ((const struct nlmsgerr *)NLMSG_DATA(header))->error == -ENOENT;
    }
  }
  close(nl);
  return gone;
}

// XNU's so_error after its datagram peer went: reported once.
static int take_reset(struct slot *self) {
  if (atomic_load(&self->reset_reported) || !socket_gone(atomic_load(&self->peer))) return 0;
  uint32_t expected = 0;
  return atomic_compare_exchange_strong(&self->reset_reported, &expected, 1);
}

static int reserve(struct slot *receiver, int64_t cost) {
  int64_t limit = atomic_load(&receiver->rcvbuf);
  int64_t queued = atomic_load(&receiver->queued);
  for (;;) {
    if (queued + cost > limit) return 0;
    if (atomic_compare_exchange_weak(&receiver->queued, &queued, queued + cost)) return 1;
  }
}

static void release(struct slot *receiver, int64_t cost) {
  int64_t queued = atomic_load(&receiver->queued);
  for (;;) {
    int64_t left = queued > cost ? queued - cost : 0;
    if (atomic_compare_exchange_weak(&receiver->queued, &queued, left)) return;
  }
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
  struct slot *self = tracked(fd);
  if (!self) return real_sendmsg(fd, msg, flags | (nosigpipe_set(fd) ? MSG_NOSIGNAL : 0));
  atomic_fetch_add(&table->header.sends, 1);
  size_t len = iov_total(msg);
  if (len > atomic_load(&self->sndbuf)) {
    atomic_fetch_add(&table->header.emsgsize, 1);
    return fail(EMSGSIZE);
  }
  struct slot *receiver = lookup(atomic_load(&self->peer));
  if (!receiver) {
    atomic_fetch_add(&table->header.untracked_peer, 1);
    return real_sendmsg(fd, msg, flags);
  }
  int64_t cost = (int64_t)len + XNU_ADDRESS_COST + control_cost(fds_in(msg));
  if (!reserve(receiver, cost)) {
    int outq = -1;
    if (ioctl(fd, SIOCOUTQ, &outq) == 0 && outq == 0 && atomic_load(&receiver->queued) > 0) {
      atomic_store(&receiver->queued, 0);
      atomic_fetch_add(&table->header.resets, 1);
    }
    if (!reserve(receiver, cost)) {
      atomic_fetch_add(&table->header.enobufs, 1);
      return fail(ENOBUFS);
    }
  }
  // Never blocks: where XNU would have room, Linux normally has too; if its
  // own limits are reached first, that is a full receiver as well.
  int extra = MSG_DONTWAIT | (atomic_load(&self->nosigpipe) ? MSG_NOSIGNAL : 0);
  ssize_t n = real_sendmsg(fd, msg, flags | extra);
  if (n < 0) {
    int error = errno;
    release(receiver, cost);
    if (error == EAGAIN) {
      atomic_fetch_add(&table->header.enobufs, 1);
      error = ENOBUFS;
    }
    // Linux refuses a send to a peer that is gone with ECONNREFUSED, then
    // ENOTCONN. XNU reports its pending ECONNRESET first; after that its
    // disconnected datagram socket, given no address, says EDESTADDRREQ.
    if ((error == ECONNREFUSED || error == ENOTCONN) && !msg->msg_name) error = take_reset(self) ? ECONNRESET : EDESTADDRREQ;
    return fail(error);
  }
  return n;
}

ssize_t send(int fd, const void *buf, size_t len, int flags) {
  struct iovec iov = {(void *)buf, len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  return sendmsg(fd, &msg, flags);
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to, socklen_t to_len) {
  struct iovec iov = {(void *)buf, len};
  struct msghdr msg = {.msg_name = (void *)to, .msg_namelen = to_len, .msg_iov = &iov, .msg_iovlen = 1};
  return sendmsg(fd, &msg, flags);
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
  struct slot *self = (flags & MSG_PEEK) ? NULL : tracked(fd);
  if (!self) return real_recvmsg(fd, msg, flags);
  // MSG_TRUNC: the datagram's whole length, which is what it cost. A
  // queued datagram comes before the peer's ECONNRESET, as in XNU's
  // soreceive.
  ssize_t n = real_recvmsg(fd, msg, flags | MSG_TRUNC | MSG_DONTWAIT);
  if (n < 0 && errno == EAGAIN) {
    if (take_reset(self)) return fail(ECONNRESET);
    int status = fcntl(fd, F_GETFL);
    if ((flags & MSG_DONTWAIT) || status < 0 || (status & O_NONBLOCK)) return fail(EAGAIN);
    n = real_recvmsg(fd, msg, flags | MSG_TRUNC);
  }
  if (n < 0) return n;
  release(self, (int64_t)n + XNU_ADDRESS_COST + control_cost(fds_in(msg)));
  if (!(flags & MSG_TRUNC)) {
    size_t room = iov_total(msg);
    if ((size_t)n > room) n = (ssize_t)room;
  }
  return n;
}

ssize_t recv(int fd, void *buf, size_t len, int flags) {
  struct iovec iov = {buf, len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  return recvmsg(fd, &msg, flags);
}

ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from, socklen_t *from_len) {
  struct iovec iov = {buf, len};
  struct msghdr msg = {.msg_name = from, .msg_namelen = from_len ? *from_len : 0, .msg_iov = &iov, .msg_iovlen = 1};
  ssize_t n = recvmsg(fd, &msg, flags);
  if (n >= 0 && from_len) *from_len = msg.msg_namelen;
  return n;
}

ssize_t read(int fd, void *buf, size_t len) {
  if (!tracked(fd)) return real_read(fd, buf, len);
  return recv(fd, buf, len, 0);
}

ssize_t write(int fd, const void *buf, size_t len) {
  if (!tracked(fd)) return real_write(fd, buf, len);
  return send(fd, buf, len, 0);
}

int setsockopt(int fd, int level, int name, const void *value, socklen_t len) {
  if (level == SOL_SOCKET && name == XNU_SO_NOSIGPIPE) {
    if (len < sizeof(int) || !value) return fail(EINVAL);
    struct slot *self = tracked(fd);
    if (!self) {
      struct sockaddr_storage address;
      socklen_t address_len = sizeof address;
      if (getsockname(fd, (struct sockaddr *)&address, &address_len) != 0) return -1;
      if (address.ss_family != AF_UNIX) return 0;
      uint64_t ino = inode_of(fd);
      self = slot_for(ino);
      if (atomic_load(&self->ino) != ino) track(ino, 0, 1);
    }
    atomic_store(&self->nosigpipe, *(const int *)value != 0);
    return 0;
  }
  struct slot *self = level == SOL_SOCKET && (name == SO_SNDBUF || name == SO_RCVBUF) ? tracked(fd) : NULL;
  if (!self) return real_setsockopt(fd, level, name, value, len);
  if (len < sizeof(int) || !value) return fail(EINVAL);
  int wanted = *(const int *)value;
  if (wanted < 1) return fail(EINVAL);
  if ((unsigned)wanted > XNU_SB_MAX_USABLE) return fail(ENOBUFS);
  // Only counted here: Linux's buffers were sized at the pair's creation.
  atomic_store(name == SO_SNDBUF ? &self->sndbuf : &self->rcvbuf, (uint32_t)wanted);
  return 0;
}

int getsockopt(int fd, int level, int name, void *value, socklen_t *len) {
  struct slot *self = level == SOL_SOCKET && (name == SO_SNDBUF || name == SO_RCVBUF || name == XNU_SO_NOSIGPIPE) ? tracked(fd) : NULL;
  if (!self) return real_getsockopt(fd, level, name, value, len);
  if (!len || *len < sizeof(int) || !value) return fail(EINVAL);
  uint32_t got = name == SO_SNDBUF ? atomic_load(&self->sndbuf) : name == SO_RCVBUF ? atomic_load(&self->rcvbuf) : atomic_load(&self->nosigpipe);
  *(int *)value = (int)got;
  *len = sizeof(int);
  return 0;
}
