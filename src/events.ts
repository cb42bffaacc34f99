// The event stream of one connection in one event loop (each Worker has
// its own ServerConn, hence its own stream): the server writes the answer
// to every request sent with the stream's handle, and the exit of every
// child forked with it, as 256-byte records tagged with the request's tag
// (zig/protocol.zig EventRecord). One Bun.file(fd).stream() reader reads
// it while anything ref'd waits, and for a short while after, so a round
// trip does not make a new reader each time; then it stops, so an idle
// process exits. A caller that needs an answer now reads the pipe itself
// (readUntil): records are whole in the pipe, and Bun's reads take whole
// pages of them, so both readers see whole records.

import { ptr } from "bun:ffi";
import { lib } from "./native.ts";
import { LibforksError, codeOf } from "./errors.ts";
import { adoptFd, closeAdopted } from "./owned.ts";
import { EventRecord as RecordLayout, EventRequest, eventOps, eventStream } from "./abi.ts";

const KIND_REPLY = eventStream.reply;
const KIND_EXIT = eventStream.exit;
export const EVENT_OP = eventOps;

/** How long the reader outlives the last ref'd wait. */
const LINGER_MS = 25;
/** Records handed to their waiters per task: each waiter's continuation
 * does native calls, and a burst of a thousand exits in one task would
 * stall timers and I/O for the whole burst. */
const RECORDS_PER_TASK = 16;
const READ_BUFFER = 64 * RecordLayout.size;

export interface EventRecord {
  result: number;
  errno: number;
  pid: number;
  waitStatus: number;
  /** The child's struct rusage (exits and wait answers). */
  rusage: Uint8Array;
  /** A spawn answered with its outcome (socket_fd -1): 0 once exec'd,
   * else the failed step's errno; and that step. */
  execError: number;
  execStep: number;
}

interface Waiter {
  resolve: (record: EventRecord) => void;
  reject: (error: Error) => void;
  ref: boolean;
}

export class EventStream {
  readonly fd: number;
  readonly handle: number;
  #nextTag = 1;
  readonly #replies = new Map<number, Waiter>();
  readonly #exits = new Map<number, Waiter>();
  #refs = 0;
  #reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  #linger: ReturnType<typeof setTimeout> | null = null;
  #partial = new Uint8Array(0);
  #gone: Error | null = null;
  #closed = false;
  readonly #syncBuffer = new Uint8Array(READ_BUFFER);

  /** libforks_events_open on `conn` (a libforks_ServerConn pointer). */
  constructor(conn: number) {
    const out = new Int32Array(2);
    const result = lib.libforks_events_open(conn as never, ptr(out, 0), ptr(out, 4));
    if (result !== 0) {
      throw new LibforksError(codeOf(result), "cannot open the event stream", { errno: lib.libforks_last_errno(), syscall: "libforks_events_open" });
    }
    this.fd = adoptFd(out[0]!);
    this.handle = out[1]! >>> 0;
  }

  /** A fresh tag for one request (and its child's exit). */
  tag(): number {
    return this.#nextTag++;
  }

  /** The answer to the request tagged `tag`; register before sending. */
  reply(tag: number): Promise<EventRecord> {
    const { promise, resolve, reject } = Promise.withResolvers<EventRecord>();
    this.onReply(tag, resolve, reject);
    return promise;
  }

  /** As reply(), with callbacks called as the record is read (readUntil
   * then sees their effect at once). */
  onReply(tag: number, resolve: (record: EventRecord) => void, reject: (error: Error) => void): void {
    if (this.#gone) {
      reject(this.#gone);
      return;
    }
    this.#replies.set(tag, { resolve, reject, ref: true });
    this.#refs++;
    this.#update();
  }

  /** The exit of the child forked by the request tagged `tag`. */
  exit(tag: number, ref = true): Promise<EventRecord> {
    return this.#expect(this.#exits, tag, ref);
  }

  /** The request was not sent, or failed: no answer is awaited any more
   * (a waiter left behind would keep the process alive). */
  dropReply(tag: number): void {
    this.#take(this.#replies, tag);
    this.#update();
  }

  /** The fork failed: no exit will come. */
  failExit(tag: number, error: Error): void {
    const waiter = this.#exits.get(tag);
    if (!waiter) return;
    this.#take(this.#exits, tag);
    waiter.reject(error);
    this.#update();
  }

  /** Whether the process may exit while `tag`'s exit is awaited. */
  setExitRef(tag: number, ref: boolean): void {
    const waiter = this.#exits.get(tag);
    if (!waiter || waiter.ref === ref) return;
    waiter.ref = ref;
    this.#refs += ref ? 1 : -1;
    this.#update();
  }

  /** libforks_send_event_request; the answer is `reply(tag)`. */
  send(conn: number, op: number, fields: { pid?: number; signal?: number; flags?: number }): { tag: number; result: number } {
    const tag = this.tag();
    const request = new ArrayBuffer(EventRequest.size);
    const view = new DataView(request);
    view.setBigUint64(EventRequest.offset.size, BigInt(EventRequest.size), true);
    view.setInt32(EventRequest.offset.op, op, true);
    view.setInt32(EventRequest.offset.pid, fields.pid ?? 0, true);
    view.setInt32(EventRequest.offset.signal, fields.signal ?? 0, true);
    view.setInt32(EventRequest.offset.flags, fields.flags ?? 0, true);
    view.setUint32(EventRequest.offset.events, this.handle, true);
    view.setBigUint64(EventRequest.offset.tag, BigInt(tag), true);
    return { tag, result: lib.libforks_send_event_request(conn as never, ptr(request)) };
  }

  /** Reads the pipe here, blocking, until `done()`: for a caller that
   * needs an answer synchronously. */
  readUntil(done: () => boolean): void {
    this.#dispatch(Infinity);
    while (!done() && this.#gone === null) {
      const n = Number(lib.libforks_events_read(this.fd, ptr(this.#syncBuffer), READ_BUFFER, -1));
      if (n === 0) {
        this.#end();
        return;
      }
      if (n < 0) {
        const errno = lib.libforks_last_errno();
        this.#end(new LibforksError("READ_ERROR", "cannot read the event stream", { errno, syscall: "read" }));
        return;
      }
      this.#feed(this.#syncBuffer.subarray(0, n), true);
    }
  }

  /** The connection was stopped or freed: the fd goes once the server's
   * end-of-file was read, or now if nothing waits. */
  close(): void {
    this.#closed = true;
    if (this.#replies.size + this.#exits.size === 0) this.#release();
  }

  #expect(map: Map<number, Waiter>, tag: number, ref: boolean): Promise<EventRecord> {
    if (this.#gone) return Promise.reject(this.#gone);
    const { promise, resolve, reject } = Promise.withResolvers<EventRecord>();
    map.set(tag, { resolve, reject, ref });
    if (ref) this.#refs++;
    this.#update();
    return promise;
  }

  #take(map: Map<number, Waiter>, tag: number): Waiter | undefined {
    const waiter = map.get(tag);
    if (!waiter) return undefined;
    map.delete(tag);
    if (waiter.ref) this.#refs--;
    return waiter;
  }

  #update(): void {
    if (this.#refs > 0) {
      if (this.#linger !== null) {
        clearTimeout(this.#linger);
        this.#linger = null;
      }
      if (this.#reader === null && this.#gone === null) void this.#readLoop();
      return;
    }
    if (this.#reader !== null && this.#linger === null) {
      // Unref'd: the pending read keeps the loop alive, not this timer.
      this.#linger = setTimeout(() => this.#stopIfIdle(), LINGER_MS);
      this.#linger.unref();
    }
    if (this.#closed && this.#replies.size + this.#exits.size === 0) this.#release();
  }

  /** The server is stopping and will end the stream: read until its
   * end-of-file whether or not anything here is ref'd, so no exit it
   * still writes waits on this loop (it exits only once its streams are
   * drained). */
  drain(): void {
    this.#draining = true;
    if (this.#reader === null && this.#gone === null && !this.#released) void this.#readLoop();
  }

  #draining = false;

  #stopIfIdle(): void {
    this.#linger = null;
    if (this.#refs > 0 || this.#reader === null || this.#draining) return;
    const reader = this.#reader;
    this.#reader = null;
    // A read is pending here (the loop asks for the next one before it
    // yields), and cancelling then loses nothing: records still in the
    // pipe wait for the next reader.
    reader.cancel().catch(() => {});
  }

  async #readLoop(): Promise<void> {
    const reader = Bun.file(this.fd).stream().getReader();
    this.#reader = reader;
    try {
      while (this.#reader === reader) {
        const { value, done } = await reader.read();
        if (value) this.#feed(value, false);
        if (done) {
          if (this.#reader === reader) {
            // Records read before the end-of-file are handed out first,
            // even those still waiting for their slice (#wake).
            this.#dispatch(Infinity);
            this.#end();
          }
          return;
        }
      }
    } catch {
      // Cancelled: a later wait starts another reader.
    }
  }

  /** Whole records read and not yet handed to their waiters. */
  #ready: Uint8Array[] = [];
  #readyAt = 0;
  #waking = false;

  /** Splits what was read into records; hands them out a slice at a time
   * (all at once for readUntil, which needs its own now). */
  #feed(chunk: Uint8Array, now: boolean): void {
    let bytes = chunk;
    if (this.#partial.length > 0) {
      bytes = new Uint8Array(this.#partial.length + chunk.length);
      bytes.set(this.#partial);
      bytes.set(chunk, this.#partial.length);
    }
    const size = RecordLayout.size;
    const whole = bytes.length - (bytes.length % size);
    for (let offset = 0; offset < whole; offset += size) this.#ready.push(bytes.subarray(offset, offset + size));
    this.#partial = bytes.slice(whole);
    if (now) this.#dispatch(Infinity);
    else this.#wake();
  }

  #wake(): void {
    if (this.#waking) return;
    this.#waking = true;
    const slice = () => {
      this.#dispatch(RECORDS_PER_TASK);
      if (this.#readyAt < this.#ready.length && this.#gone === null) {
        setImmediate(slice);
      } else {
        this.#waking = false;
      }
    };
    slice();
  }

  #dispatch(limit: number): void {
    let handed = 0;
    while (this.#readyAt < this.#ready.length && handed < limit && this.#gone === null) {
      const record = this.#ready[this.#readyAt++]!;
      handed++;
      this.#handOut(record);
    }
    if (this.#readyAt === this.#ready.length) {
      this.#ready = [];
      this.#readyAt = 0;
    }
    this.#update();
  }

  #handOut(bytes: Uint8Array): void {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const offset = 0;
    {
      if (view.getUint32(offset + RecordLayout.offset.magic, true) !== eventStream.magic) {
        this.#end(new LibforksError("PROTOCOL_ERROR", "the event stream is out of step"));
        return;
      }
      const kind = view.getUint32(offset + RecordLayout.offset.kind, true);
      const tag = Number(view.getBigUint64(offset + RecordLayout.offset.tag, true));
      const waiter = this.#take(kind === KIND_EXIT ? this.#exits : kind === KIND_REPLY ? this.#replies : new Map(), tag);
      if (!waiter) return;
      const start = bytes.byteOffset + RecordLayout.offset.rusage;
      waiter.resolve({
        result: view.getInt32(offset + RecordLayout.offset.result, true),
        errno: view.getInt32(offset + RecordLayout.offset.error_number, true),
        pid: view.getInt32(offset + RecordLayout.offset.pid, true),
        waitStatus: view.getInt32(offset + RecordLayout.offset.wait_status, true),
        rusage: new Uint8Array(bytes.buffer.slice(start, start + RecordLayout.width.rusage)),
        execError: view.getInt32(offset + RecordLayout.offset.exec_error, true),
        execStep: view.getInt32(offset + RecordLayout.offset.exec_step, true),
      });
    }
  }

  /** End-of-file (the server is gone) or a broken stream: everything
   * still awaited fails. */
  #end(error: Error = new LibforksError("SERVER_GONE", "the fork server went away")): void {
    if (this.#gone) return;
    this.#gone = error;
    this.#reader = null;
    for (const map of [this.#replies, this.#exits]) {
      for (const waiter of map.values()) waiter.reject(error);
      map.clear();
    }
    this.#refs = 0;
    this.#release();
  }

  #release(): void {
    if (this.#linger !== null) clearTimeout(this.#linger);
    this.#linger = null;
    if (this.#released) return;
    this.#released = true;
    const reader = this.#reader;
    this.#reader = null;
    // Closed once Bun let go of it.
    if (reader === null) closeAdopted(this.fd);
    else reader.cancel().catch(() => {}).finally(() => closeAdopted(this.fd));
  }

  #released = false;
}
