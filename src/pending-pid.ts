// The pid of a fork whose answer is still on its way.

import { LibforksError, codeOf } from "./errors.ts";
import type { EventStream } from "./events.ts";
import type { ServerConn } from "./conn.ts";
import { Result } from "./abi.ts";

/** @internal The pid of a fork sent with libforks_fork_async: the
 * answer on the event stream, or read there at once (blocking briefly) by
 * whoever needs it synchronously. */
export class PendingPid {
  readonly promise: Promise<number>;
  queued = false;
  #conn: ServerConn;
  #stream: EventStream;
  readonly #tag: number;
  #value: number | null = null;
  /** A spawn answered with its outcome: the failed step's errno and the
   * step, or null (exec'd, or not such a spawn). */
  #execFailure: { errno: number; step: number } | null = null;
  #error: Error | null = null;
  #resolve!: (pid: number) => void;
  #reject!: (error: Error) => void;

  constructor(conn: ServerConn, stream: EventStream, tag: number, what: string) {
    this.#conn = conn;
    this.#stream = stream;
    this.#tag = tag;
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    this.promise = promise;
    this.#resolve = resolve;
    this.#reject = reject;
    promise.catch(() => {});
    stream.onReply(
      tag,
      (record) => {
        if (record.result === 0) {
          if (record.execError !== 0) this.#execFailure = { errno: record.execError, step: record.execStep };
          this.#value = record.pid;
          this.#resolve(record.pid);
          return;
        }
        const message = what === "cannot fork" ? what : `cannot ${record.result === Result.LOAD_ERROR ? "load" : "fork"} ${what}`;
        this.fail(new LibforksError(codeOf(record.result), message, { errno: record.errno, syscall: "fork" }));
      },
      (error: Error) => this.fail(error),
    );
    // A failed fork has no exit to wait for: its error is the answer.
    promise.catch((error: Error) => stream.failExit(tag, error));
  }

  /** @internal The request went out; its answer comes on the stream. */
  sent(): void {
    this.queued = false;
  }

  /** @internal */
  fail(error: Error): void {
    if (this.#value !== null || this.#error !== null) return;
    this.#stream.dropReply(this.#tag);
    this.#error = error;
    this.#reject(error);
  }

  /** The pid now: waits for the server's answer if it has not been read. */
  get(): number {
    if (this.#value !== null) return this.#value;
    if (this.#error) throw this.#error;
    if (this.queued) this.#conn.flushUntil(this);
    if (!this.queued) this.#stream.readUntil(() => this.#value !== null || this.#error !== null);
    if (this.#value !== null) return this.#value;
    throw this.#error ?? new LibforksError("SERVER_GONE", "the fork was never sent");
  }

  /** @internal After get(), for a spawn whose outcome came in the answer:
   * why its program was not exec'd, or null. */
  execFailure(): { errno: number; step: number } | null {
    return this.#execFailure;
  }

  /** The pid if known, else null (never waits). */
  peek(): number | null {
    return this.#value;
  }
}
