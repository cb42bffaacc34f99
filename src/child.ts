// Child: a process forked or spawned through a ForkServer.

import { closeSync, readSync } from "node:fs";
import { LibforksError, describe, invalidArgument } from "./errors.ts";
import { getDoorbell, READABLE } from "./doorbell.ts";
import { ExitEvent } from "./exit-event.ts";
import { signalNumber } from "./signals.ts";
import { childExited, type Channel } from "./channel.ts";
import { closeAdopted } from "./owned.ts";
import type { PendingPid } from "./conn.ts";
import type { PipeWriter } from "./stdio.ts";

/** @internal Signals a child through its server (ServerConn.kill). */
export type Killer = (pid: number, signal: number, tree: boolean) => Promise<boolean>;

/** @internal */
export interface ChildStreams {
  channel?: Channel;
  stdin?: PipeWriter;
  stdout?: ReadableStream<Uint8Array>;
  stderr?: ReadableStream<Uint8Array>;
}

/**
 * A process forked (`server.fork`) or spawned (`server.spawn`,
 * `server.spawnWorker`) through a fork server. The server reaps it and
 * reports its exit on `exited`; nothing needs to wait for it.
 *
 * @example
 * ```ts
 * const child = server.spawn(["/bin/sleep", "10"]);
 * setTimeout(() => child.kill(), 100);
 * console.log(String(await child.exited)); // "pid 1234 killed by SIGTERM"
 * ```
 */
export class Child {
  #pid: number | PendingPid;
  /** Settles when the child has exited and was reaped by the server.
   * Rejects with SERVER_GONE if the server went away first (then the exit
   * status is unknown). */
  readonly exited: Promise<ExitEvent>;
  /** The socket to the child, when one was asked for. */
  readonly channel?: Channel;
  /** With stdio "pipe": the child's stdin (write to it, then end(), which
   * gives the program end-of-file). */
  readonly stdin?: PipeWriter;
  /** With stdio "pipe": what the child writes to stdout. */
  readonly stdout?: ReadableStream<Uint8Array>;
  /** With stdio "pipe": what the child writes to stderr. */
  readonly stderr?: ReadableStream<Uint8Array>;

  #exit: ExitEvent | null = null;
  #exitToken = 0;
  #killer: Killer | null;

  /** @internal Made by ForkServer; takes ownership of exitFd. */
  static create(pid: number | PendingPid, exitFd: number, streams: ChildStreams = {}, killer: Killer | null = null): Child {
    return new Child(pid, exitFd, streams, killer);
  }

  // Private: a Child is made by ForkServer.fork() and spawn() only.
  private constructor(pid: number | PendingPid, exitFd: number, streams: ChildStreams, killer: Killer | null) {
    this.#pid = pid;
    this.#killer = killer;
    this.channel = streams.channel;
    this.stdin = streams.stdin;
    this.stdout = streams.stdout;
    this.stderr = streams.stderr;
    this.exited = this.#watchExit(exitFd);
    // Nobody has to await `exited`: an unobserved rejection must not take
    // the host process down.
    this.exited.catch(() => {});
  }

  /** Pid of the child. A fork's pid arrives asynchronously: reading this
   * before then waits for the server's reply (about one fork(2) of the
   * server), and throws the fork's LibforksError if it failed. */
  get pid(): number {
    if (typeof this.#pid === "number") return this.#pid;
    const pid = this.#pid.peek() ?? this.#pid.get();
    this.#pid = pid;
    return pid;
  }

  /** Resolves with the pid once the child exists; rejects with the
   * fork's LibforksError (FORK_ERROR with errnoCode EAGAIN, ...). */
  get started(): Promise<number> {
    return typeof this.#pid === "number" ? Promise.resolve(this.#pid) : this.#pid.promise;
  }

  /** Watches the exit fd at once, not after the pid arrives: one readiness
   * wait instead of two in a row. A fork that failed closes the pipe
   * without an event, and then its error is the answer. */
  async #watchExit(exitFd: number): Promise<ExitEvent> {
    const doorbell = getDoorbell();
    const { promise, token } = doorbell.wait(exitFd, READABLE);
    this.#exitToken = token;
    try {
      await promise;
      const bytes = new Uint8Array(8);
      const n = readSync(exitFd, bytes);
      if (n !== 8) {
        const pid = typeof this.#pid === "number" ? this.#pid : await this.#pid.promise; // throws the fork's error
        throw new LibforksError("SERVER_GONE", `the fork server went away before child ${pid} exited; its exit status is unknown`);
      }
      this.#exit = ExitEvent.fromBytes(bytes);
      if (typeof this.#pid !== "number") this.#pid = this.#exit.pid;
      this.#release();
      return this.#exit;
    } finally {
      closeAdopted(exitFd);
    }
  }

  /** The child is gone: its channel delivers what it sent, then closes;
   * its stdin has no reader left. stdout and stderr close themselves at
   * end-of-file. */
  #release(): void {
    this.channel?.[childExited]();
    this.stdin?.end().catch(() => {});
  }

  /** The exit event once the child exited, else null. */
  get exit(): ExitEvent | null {
    return this.#exit;
  }

  /** Exit code once exited (null while running or if killed by a signal). */
  get exitCode(): number | null {
    return this.#exit?.exitCode ?? null;
  }

  /** Sends a signal ("SIGTERM" by default) through the server, which
   * sends it only while the child is still its own (running, or exited and
   * not yet reaped by it): a pid the kernel has since given to another
   * process is never signalled. With `{ tree: true }` (Linux) the child's
   * descendants get it too. Resolves once the server has sent it, or
   * found the child already gone (nothing to do then); rejects with
   * SERVER_GONE once the server is stopped (after `stopServerOnly()`, the
   * children left running are no longer signalled through it). A bad
   * signal or option throws at once.
   * @default signal `"SIGTERM"`, options `{}`
   * @throws {LibforksError} synchronously `INVALID_ARGUMENT` for an unknown
   *   signal or a bad option; the promise rejects with `SERVER_GONE` or
   *   `KILL_ERROR`. */
  kill(signal: string | number = "SIGTERM", options: { tree?: boolean } = {}): Promise<void> {
    const number = signalNumber(signal);
    if (options === null || typeof options !== "object") throw invalidArgument("options", `must be an object, got ${describe(options)}`);
    if (options.tree !== undefined && typeof options.tree !== "boolean") {
      throw invalidArgument("options.tree", `must be a boolean, got ${describe(options.tree)}`);
    }
    const sent = this.#sendKill(number, options.tree === true);
    // Nobody has to await it: an unobserved rejection must not take the
    // host process down.
    sent.catch(() => {});
    return sent;
  }

  async #sendKill(signal: number, tree: boolean): Promise<void> {
    if (this.#exit !== null) return;
    // The server serves a connection's requests in order, but the pid of
    // a fork still on its way is needed to name the child.
    const pid = typeof this.#pid === "number" ? this.#pid : await this.#pid.promise;
    if (this.#exit !== null) return;
    if (this.#killer === null) throw new LibforksError("SERVER_GONE", `child ${pid} has no server to signal it through`);
    await this.#killer(pid, signal, tree);
  }

  /** Lets the process exit while this child runs (or not, again). */
  unref(): void {
    if (this.#exit === null) getDoorbell().setRef(this.#exitToken, false);
  }

  /** Undoes `unref()`: this child's exit keeps the process alive again. */
  ref(): void {
    if (this.#exit === null) getDoorbell().setRef(this.#exitToken, true);
  }
}
