// Child: a process forked or spawned through a ForkServer.

import { readSync } from "node:fs";
import { LibforksError } from "./errors.ts";
import { getDoorbell, READABLE } from "./doorbell.ts";
import { ExitEvent } from "./exit-event.ts";
import { signalNumber } from "./signals.ts";
import { childExited, type Channel } from "./channel.ts";
import { closeAdopted } from "./owned.ts";
import type { PendingPid } from "./conn.ts";
import type { PipeWriter } from "./stdio.ts";

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

  /** @internal Made by ForkServer; takes ownership of exitFd. */
  static create(pid: number | PendingPid, exitFd: number, streams: ChildStreams = {}): Child {
    return new Child(pid, exitFd, streams);
  }

  // Private: a Child is made by ForkServer.fork() and spawn() only.
  private constructor(pid: number | PendingPid, exitFd: number, streams: ChildStreams) {
    this.#pid = pid;
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

  /** Sends a signal. Does nothing once the child is known to have exited,
   * so a recycled pid is never signalled.
   * @default signal `"SIGTERM"`
   * @throws {LibforksError} `INVALID_ARGUMENT` for an unknown signal;
   *   `KILL_ERROR` when `kill(2)` fails (errno `EPERM`). */
  kill(signal: string | number = "SIGTERM"): void {
    const number = signalNumber(signal);
    if (this.#exit !== null) return;
    const pid = this.pid;
    try {
      process.kill(pid, number);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === "ESRCH") return; // exited, not yet reported
      throw new LibforksError("KILL_ERROR", `cannot send ${signal} to ${this.pid}`, {
        errno: (error as { errno?: number }).errno ? Math.abs((error as { errno: number }).errno) : undefined,
        syscall: "kill",
      });
    }
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
