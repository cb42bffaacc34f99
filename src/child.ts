// Child: a process forked or spawned through a ForkServer.

import { readSync } from "node:fs";
import { LibforksError, describe } from "./errors.ts";
import { argTypeError } from "./node-errors.ts";
import { getDoorbell, READABLE } from "./doorbell.ts";
import { ExitEvent } from "./exit-event.ts";
import { signalNumber, signalName } from "./signals.ts";
import { decodeRusage } from "./resource-usage.ts";
import { ExitEvent as ExitEventLayout, ExitMessage } from "./abi.ts";
import type { ResourceUsage } from "bun";
import { childExited, type Channel } from "./channel.ts";
import { closeAdopted } from "./owned.ts";
import type { ExitSource } from "./conn.ts";
import type { EventRecord } from "./events.ts";
import type { PendingPid } from "./pending-pid.ts";
import type { PipeWriter } from "./stdio.ts";

/** @internal Signals a child through its server (ServerConn.kill). */
export type Killer = (pid: number, signal: number, tree: boolean) => Promise<boolean>;

/** @internal */
export interface ChildStreams {
  channel?: Channel;
  stdin?: PipeWriter;
  stdout?: ReadableStream<Uint8Array>;
  stderr?: ReadableStream<Uint8Array>;
  /** spawn: `[null, null, null, ...]`, the fds here of extra stdio entries. */
  stdio?: (number | null)[];
  /** Waits on pipes that ref()/unref() cover besides the exit and channel. */
  refs?: { setRef(ref: boolean): void }[];
  /** What runs: a program's argv, or a description of the entrypoint. */
  argv?: string[];
}

/** An exit event, then the child's struct rusage (the fork asks for it). */
const EXIT_EVENT_SIZE = ExitEventLayout.size;
const EXIT_MESSAGE_SIZE = ExitMessage.size;

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
  /** spawn: one entry per stdio entry; from index 3, the fd here of a
   * "pipe" entry (a socket, yours to close), else null. */
  readonly stdio: (number | null)[];
  /** What runs: the program's argv (spawn) or the entrypoint (fork). */
  readonly argv: string[];
  /** When the child was asked for (Date.now()). */
  readonly startTime: number = Date.now();

  #exit: ExitEvent | null = null;
  #rusage: Uint8Array | null = null;
  #exitToken = 0;
  #killer: Killer | null;
  readonly #refs: { setRef(ref: boolean): void }[];

  /** @internal Made by ForkServer; takes ownership of exitFd. */
  static create(pid: number | PendingPid, exit: ExitSource, streams: ChildStreams = {}, killer: Killer | null = null): Child {
    return new Child(pid, exit, streams, killer);
  }

  // Private: a Child is made by ForkServer.fork() and spawn() only.
  private constructor(pid: number | PendingPid, exit: ExitSource, streams: ChildStreams, killer: Killer | null) {
    this.#pid = pid;
    this.#killer = killer;
    this.channel = streams.channel;
    this.stdin = streams.stdin;
    this.stdout = streams.stdout;
    this.stderr = streams.stderr;
    this.stdio = streams.stdio ?? [null, null, null];
    this.argv = streams.argv ?? [];
    this.#refs = streams.refs ?? [];
    this.#exitSource = exit;
    this.exited = typeof exit === "number" ? this.#watchExit(exit) : this.#awaitExit(exit);
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

  readonly #exitSource: ExitSource;

  /** The exit record on the event stream. A fork that failed has none:
   * then its error is the answer. */
  async #awaitExit(source: Exclude<ExitSource, number>): Promise<ExitEvent> {
    let record: EventRecord;
    try {
      record = await source.record;
    } catch (error) {
      if (typeof this.#pid !== "number" && this.#pid.peek() === null) await this.#pid.promise; // throws the fork's error
      const pid = typeof this.#pid === "number" ? this.#pid : this.#pid.peek();
      if ((error as LibforksError).code !== "SERVER_GONE") throw error;
      throw new LibforksError("SERVER_GONE", `the fork server went away before child ${pid} exited; its exit status is unknown`);
    }
    this.#rusage = record.rusage;
    this.#exit = new ExitEvent(record.pid, record.waitStatus);
    if (typeof this.#pid !== "number") this.#pid = this.#exit.pid;
    this.#release();
    return this.#exit;
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
      const bytes = new Uint8Array(EXIT_MESSAGE_SIZE);
      const n = readSync(exitFd, bytes);
      if (n !== EXIT_EVENT_SIZE && n !== EXIT_MESSAGE_SIZE) {
        const pid = typeof this.#pid === "number" ? this.#pid : await this.#pid.promise; // throws the fork's error
        throw new LibforksError("SERVER_GONE", `the fork server went away before child ${pid} exited; its exit status is unknown`);
      }
      if (n === EXIT_MESSAGE_SIZE) this.#rusage = bytes.subarray(EXIT_EVENT_SIZE);
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

  /** The signal that killed the child ("SIGKILL"; its number if it has no
   * name), null while running or after a normal exit. */
  get signalCode(): NodeJS.Signals | number | null {
    const exit = this.#exit;
    if (exit === null || exit.signalNumber === null) return null;
    return (signalName(exit.signalNumber) as NodeJS.Signals | undefined) ?? exit.signalNumber;
  }

  /** True once the child has exited, whatever ended it (as Bun.spawn's
   * `killed`: false while it runs, even after kill()). */
  get killed(): boolean {
    return this.#exit !== null;
  }

  /** The child's resource usage (CPU time, max RSS, ...) once it exited,
   * as Bun.spawn's resourceUsage(); undefined while it runs. */
  resourceUsage(): ResourceUsage | undefined {
    return this.#rusage === null ? undefined : decodeRusage(this.#rusage);
  }

  /** Kills the child (SIGTERM), then waits for its exit. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#exit === null) {
      try {
        this.kill();
      } catch {}
    }
    await this.exited.catch(() => {});
  }

  get [Symbol.toStringTag](): string {
    return "Child";
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    const pid = typeof this.#pid === "number" ? this.#pid : (this.#pid.peek() ?? "pending");
    const state = this.#exit === null ? "running" : this.#exit.signal ? `killed by ${this.#exit.signal}` : `exited with ${this.#exit.exitCode}`;
    return `Child { pid: ${pid}, state: "${state}", argv: ${JSON.stringify(this.argv)} }`;
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
  kill(signal: NodeJS.Signals | number = "SIGTERM", options: { tree?: boolean } = {}): Promise<void> {
    const number = signalNumber(signal);
    if (options === null || typeof options !== "object") throw argTypeError("options", `must be an object, got ${describe(options)}`);
    if (options.tree !== undefined && typeof options.tree !== "boolean") {
      throw argTypeError("options.tree", `must be a boolean, got ${describe(options.tree)}`);
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

  /** Lets the process exit while this child runs (or not, again): covers
   * its exit, its channel and its stdout/stderr pipes. */
  unref(): void {
    this.#setRef(false);
  }

  /** Undoes `unref()`: this child's exit keeps the process alive again. */
  ref(): void {
    this.#setRef(true);
  }

  #setRef(ref: boolean): void {
    if (this.#exit === null) {
      const source = this.#exitSource;
      if (typeof source === "number") getDoorbell().setRef(this.#exitToken, ref);
      else source.stream.setExitRef(source.tag, ref);
    }
    if (ref) this.channel?.ref();
    else this.channel?.unref();
    for (const pipe of this.#refs) pipe.setRef(ref);
  }
}
