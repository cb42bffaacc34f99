// A send waiting in a channel's queue: the bytes left to send, and the
// copies of the caller's fds it keeps until its first part goes out.

import { lib } from "./native.ts";
import { LibforksError } from "./errors.ts";
import { adoptFd, closeAdopted } from "./owned.ts";

export interface OutgoingSend {
  bytes: Uint8Array;
  /** Bytes of `bytes` already sent. */
  offset: number;
  /** The first part (with the fds) went out. */
  started: boolean;
  /** Our close-on-exec copies of the caller's fds, made at send(): the
   * caller may close or reuse theirs before the message goes out. */
  fds: number[];
  /** `fds` are our copies (to close), not the caller's. */
  pinned: boolean;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** Duplicates the caller's fds (close-on-exec), so what is sent later is
 * what they named now. */
export function pin(fds: number[]): number[] {
  const copies: number[] = [];
  for (const fd of fds) {
    const copy = lib.libforks_dup_cloexec(fd);
    if (copy < 0) {
      const errno = lib.libforks_last_errno();
      for (const made of copies) closeAdopted(made);
      throw new LibforksError("WRITE_ERROR", `cannot keep fd ${fd} until the message is sent`, { errno, syscall: "fcntl" });
    }
    copies.push(adoptFd(copy));
  }
  return copies;
}

/** Closes a send's copies of the caller's fds, once sent or failed. Only
 * sends that waited hold copies: a send made at once used the caller's. */
export function unpin(send: OutgoingSend): void {
  if (send.pinned) for (const fd of send.fds) closeAdopted(fd);
  send.fds = [];
  send.pinned = false;
}
