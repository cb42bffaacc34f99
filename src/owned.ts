// What a Worker's event loop owns natively, so that it goes with the
// Worker's thread. A terminated Worker runs no more JavaScript: nothing
// here could close its fds or stop its server then. Instead the thread
// adopts them (libforks_thread_adopt_*), and the native library frees
// what is still adopted when the thread exits. On the main thread the
// process's exit does that, so nothing is recorded there.

import type { Pointer } from "bun:ffi";
import { closeSync } from "node:fs";
import { lib } from "./native.ts";
import { LibforksError, codeOf } from "./errors.ts";

const inWorker = !Bun.isMainThread;

function check(result: number, what: string, syscall: string): void {
  if (result !== 0) throw new LibforksError(codeOf(result), what, { errno: lib.libforks_last_errno(), syscall });
}

/** Marks an fd of ours as this thread's: closed if the thread ends first. */
export function adoptFd(fd: number): number {
  if (inWorker) check(lib.libforks_thread_adopt_fd(fd), `cannot record fd ${fd}`, "libforks_thread_adopt_fd");
  return fd;
}

/** Takes an fd back from the thread, before it is closed or handed over. */
export function releaseFd(fd: number): void {
  if (inWorker) lib.libforks_thread_release_fd(fd);
}

/** Closes an adopted fd. */
export function closeAdopted(fd: number): void {
  releaseFd(fd);
  closeSync(fd);
}

/** Marks a connection as this thread's: freed if the thread ends first
 * (a server it started then shuts down as if its owner died). */
export function adoptConn(conn: Pointer): void {
  if (inWorker) check(lib.libforks_thread_adopt_conn(conn), "cannot record the connection", "libforks_thread_adopt_conn");
}

export function releaseConn(conn: Pointer): void {
  if (inWorker) lib.libforks_thread_release_conn(conn);
}
