// Fork requests that did not fit the connection's queue: they wait here,
// in call order (never in a blocked system call), until the socket is
// writable again, or are sent at once for a caller that needs a pid now.

import { ptr, type Pointer } from "bun:ffi";
import { lib } from "./native.ts";
import { LibforksError } from "./errors.ts";
import { getDoorbell, WRITABLE } from "./doorbell.ts";
import { adoptFd, closeAdopted } from "./owned.ts";
import type { PendingPid } from "./pending-pid.ts";
import { failure } from "./wire.ts";
import { ForkRequest, Result } from "./abi.ts";

export interface QueuedFork {
  /** For error messages: "cannot fork" or "symbol X of L". */
  what: string;
  request: ArrayBuffer;
  keep: Buffer[];
  childFds: number[];
  pid: PendingPid;
}

export class ForkQueue {
  readonly #handle: () => Pointer | null;
  readonly #queued: QueuedFork[] = [];
  #draining = false;

  /** `handle`: the connection, null once it is gone. */
  constructor(handle: () => Pointer | null) {
    this.#handle = handle;
  }

  /** Sends `fork` now, or queues it behind those already waiting (its
   * child's fds then belong to this thread until it is sent). */
  submit(handle: Pointer, fork: QueuedFork): "sent" | "queued" | LibforksError {
    if (this.#queued.length === 0) {
      const sent = this.#send(handle, fork, false);
      if (sent !== "queue") return sent;
    }
    for (const fd of fork.childFds) adoptFd(fd);
    this.#queued.push(fork);
    fork.pid.queued = true;
    void this.#drain();
    return "queued";
  }


  /** Sends one fork request. "queue": the connection is full (only when
   * not blocking). On success or failure the child's fd copies are closed. */
  #send(handle: Pointer, fork: QueuedFork, blocking: boolean): "sent" | "queue" | LibforksError {
    new DataView(fork.request).setUint8(ForkRequest.offset.nonblocking, blocking ? 0 : 1);
    const out = new Int32Array(1);
    const result = lib.libforks_fork_async(handle, ptr(fork.request), ptr(out));
    void fork.keep;
    if (result === Result.WOULD_BLOCK && !blocking) return "queue";
    for (const fd of fork.childFds) closeAdopted(fd);
    if (result !== 0) {
      const message = fork.what === "cannot fork" ? fork.what : `cannot ${result === Result.LOAD_ERROR ? "load" : "fork"} ${fork.what}`;
      const error = failure(result, message, "libforks_fork_async");
      fork.pid.fail(error);
      return error;
    }
    fork.pid.sent();
    return "sent";
  }

  async #drain(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    try {
      while (this.#queued.length > 0 && this.#handle() !== null) {
        const connFd = lib.libforks_conn_fd(this.#handle()!);
        await getDoorbell().wait(connFd, WRITABLE).promise;
        while (this.#queued.length > 0 && this.#handle() !== null) {
          const sent = this.#send(this.#handle()!, this.#queued[0]!, false);
          if (sent === "queue") break;
          this.#queued.shift();
        }
      }
    } finally {
      this.#draining = false;
      this.failAll();
      this.#notifyEmpty();
    }
  }

  /** Sends queued forks up to and including `pid`'s, blocking. */
  flushUntil(pid: PendingPid): void {
    while (this.#queued.length > 0 && this.#handle() !== null) {
      const fork = this.#queued.shift()!;
      this.#send(this.#handle()!, fork, true);
      if (fork.pid === pid) break;
    }
    this.failAll();
    this.#notifyEmpty();
  }

  /** The connection is gone: what was not sent fails. */
  failAll(): void {
    if (this.#handle() !== null) return;
    for (const fork of this.#queued.splice(0)) {
      for (const fd of fork.childFds) closeAdopted(fd);
      fork.pid.fail(new LibforksError("SERVER_GONE", "the fork server was stopped before this fork was sent"));
    }
    this.#notifyEmpty();
  }

  /** Resolves once every fork queued here has been sent. The server
   * serves a connection's requests in order, so a request sent after this
   * reaches every child forked before it. */
  sent(): Promise<void> {
    if (this.#queued.length === 0) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#emptied.push(resolve);
    return promise;
  }

  readonly #emptied: (() => void)[] = [];

  #notifyEmpty(): void {
    if (this.#queued.length > 0) return;
    for (const resolve of this.#emptied.splice(0)) resolve();
  }
}
