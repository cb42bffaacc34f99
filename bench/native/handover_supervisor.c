/* Case 2 design probe, the supervisor's half: a process that is handed
 * programs another process started (their pidfds, one per message on fd
 * 3) and reports each one's end as a 16-byte record (tag, pid) on fd 4,
 * as a server would on an event stream. It never reaps: the programs are
 * not its children, so their parent reaps them after the record.
 *
 * It measures the design where a program is started without a server
 * hop (posix_spawn in the caller) and only its supervision goes to the
 * server; see bench/lib/handover.ts. Not a libforks feature.
 *
 *   handover_supervisor   (fd 3: a SOCK_SEQPACKET socket, fd 4: a pipe) */
#include "common.h"
#include <sys/epoll.h>

#define MAX_WATCHED 1024

struct record {
  uint64_t tag;
  int32_t pid;
  int32_t reserved;
};

struct watched {
  int pidfd;
  struct record record;
};

static struct watched table[MAX_WATCHED];

static int receive_pidfd(int socket_fd, uint64_t *tag, int32_t *pid) {
  struct {
    uint64_t tag;
    int32_t pid;
    int32_t reserved;
  } message;
  union {
    struct cmsghdr header;
    char bytes[CMSG_SPACE(sizeof(int))];
  } control;
  struct iovec iov = {&message, sizeof message};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes, .msg_controllen = sizeof control.bytes};
  ssize_t n = recvmsg(socket_fd, &msg, MSG_CMSG_CLOEXEC);
  if (n <= 0) return -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (n != sizeof message || c == NULL || c->cmsg_type != SCM_RIGHTS) die("a handover message without its pidfd");
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  *tag = message.tag;
  *pid = message.pid;
  return fd;
}

int main(void) {
  int socket_fd = 3, events_fd = 4;
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) die("epoll_create1");
  struct epoll_event add = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, socket_fd, &add) != 0) die("epoll_ctl");
  for (;;) {
    struct epoll_event ready[16];
    int n = epoll_wait(epoll_fd, ready, 16, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      if (ready[i].data.u64 == UINT64_MAX) {
        uint64_t tag;
        int32_t pid;
        int pidfd = receive_pidfd(socket_fd, &tag, &pid);
        if (pidfd < 0) return 0; /* the caller went away */
        int slot = 0;
        while (slot < MAX_WATCHED && table[slot].pidfd > 0) slot++;
        if (slot == MAX_WATCHED) die("more than MAX_WATCHED programs at once");
        table[slot] = (struct watched){pidfd, {tag, pid, 0}};
        struct epoll_event watch = {.events = EPOLLIN, .data.u64 = (uint64_t)slot};
        if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, pidfd, &watch) != 0) die("epoll_ctl pidfd");
        continue;
      }
      struct watched *w = &table[ready[i].data.u64];
      /* A pidfd polls readable once its process ended. */
      if (write(events_fd, &w->record, sizeof w->record) != sizeof w->record) die("write record");
      epoll_ctl(epoll_fd, EPOLL_CTL_DEL, w->pidfd, NULL);
      close(w->pidfd);
      w->pidfd = 0;
    }
  }
}
