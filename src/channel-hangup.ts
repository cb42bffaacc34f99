// Closing a channel's socket so that its peer hears of it. On macOS a
// channel is a datagram socket pair, and XNU wakes no receive waiting on
// the survivor when an end closes (it only sets ECONNRESET for the next
// call): a peer waiting for the end of the messages would wait forever.
// There, an empty message (libforks_socket_hangup) is the end-of-file the
// peer reads; on Linux (SOCK_SEQPACKET, whose peer sees end-of-file when
// the last copy closes) nothing is sent.

import { lib } from "./native.ts";
import { closeAdopted } from "./owned.ts";

/** Closes a channel's socket, telling the peer first. One try, never a
 * wait: the message is refused (ENOBUFS) only while the peer's queue is
 * full, and then the peer is not waiting; once it has read that queue, its
 * next receive finds XNU's ECONNRESET, which the close sets, and that is
 * end-of-file too (channel.ts). */
export function hangUpAndClose(fd: number): void {
  lib.libforks_socket_hangup(fd);
  closeAdopted(fd);
}

/** A channel's socket, while it is open. */
export interface OpenSocket {
  fd: number | null;
}

/** Every channel socket not yet closed, so that the process's exit, which
 * closes them, can tell each peer first (one try each: an exit waits for
 * nothing). */
const openSockets = new Set<OpenSocket>();
let exitHookInstalled = false;

function hangUpAll(): void {
  for (const socket of openSockets) if (socket.fd !== null) lib.libforks_socket_hangup(socket.fd);
}

/** Tells `socket`'s peer at this process's exit, unless forgotten first. */
export function hangUpAtExit(socket: OpenSocket): void {
  openSockets.add(socket);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", hangUpAll);
  }
}

/** The socket is closed (or about to be, by hangUpAndClose). */
export function forgetAtExit(socket: OpenSocket): void {
  openSockets.delete(socket);
}
