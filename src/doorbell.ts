// Waiting for fds without blocking the JavaScript thread.
//
// The native library runs one thread per process that watches fds and
// writes an 8-byte record (token | events << 48) to this event loop's
// doorbell pipe when one is ready. Here the doorbell is read with Bun's own
// asynchronous file stream, so readiness costs no thread per fd and no
// native callback into JavaScript. The stream is open while someone waits
// and for a short while after, so a ping-pong on a channel does not open a
// new doorbell and reader for every wait; then it closes, so an idle
// process can exit.

import { ptr } from "bun:ffi";
import { lib } from "./native.ts";
import { LibforksError, codeOf } from "./errors.ts";
import { doorbellRecord, watchEvents } from "./abi.ts";

export const READABLE = watchEvents.readable;
export const WRITABLE = watchEvents.writable;
export const ERROR = watchEvents.error;
export const HANGUP = watchEvents.hangup;

const TOKEN_LIMIT = 2 ** doorbellRecord.tokenBits;
/** A record is read as two little-endian u32 halves; the token's bits
 * above 32 are the low bits of the high half, the events the next 8. */
const HIGH_TOKEN_BITS = doorbellRecord.tokenBits - 32;
const RECORDS_PER_TASK = 8;
/** How long the reader outlives the last ref'd wait. */
const LINGER_MS = 25;

interface Waiter {
  fd: number;
  resolve: (events: number) => void;
  reject: (error: Error) => void;
  /** Unref'd waiters do not keep the process alive. */
  ref: boolean;
}

class Doorbell {
  /** -1 while closed: an idle doorbell is closed, so a Worker that ends
   * leaves no fd behind, and at most the busy event loops hold one. */
  #fd = -1;
  #closing: Promise<void> | null = null;
  readonly #waiters = new Map<number, Waiter>();
  #nextToken = 1;
  #reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  #pending = new Uint8Array(0);

  #open(): number {
    if (this.#fd >= 0) return this.#fd;
    const out = new Int32Array(1);
    const result = lib.libforks_doorbell_open(ptr(out));
    if (result !== 0) {
      throw new LibforksError(codeOf(result), "cannot open the readiness doorbell", {
        errno: lib.libforks_last_errno(),
        syscall: "libforks_doorbell_open",
      });
    }
    this.#fd = out[0]!;
    return this.#fd;
  }

  /** Resolves with the ready events (READABLE, WRITABLE, ERROR, HANGUP)
   * once `fd` is ready for `events`. One-shot. */
  wait(fd: number, events: number, options: { ref?: boolean } = {}): { promise: Promise<number>; token: number } {
    const token = this.#nextToken;
    this.#nextToken = token + 1 >= TOKEN_LIMIT ? 1 : token + 1;
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    let doorbellFd: number;
    try {
      doorbellFd = this.#open();
    } catch (error) {
      reject(error as Error);
      return { promise, token };
    }
    this.#waiters.set(token, { fd, resolve, reject, ref: options.ref ?? true });
    const result = lib.libforks_watch(doorbellFd, fd, events, BigInt(token));
    if (result !== 0) {
      this.#waiters.delete(token);
      reject(
        new LibforksError(codeOf(result), `cannot watch fd ${fd}`, {
          errno: lib.libforks_last_errno(),
          syscall: "libforks_watch",
        }),
      );
      return { promise, token };
    }
    this.#updateReading();
    return { promise, token };
  }

  /** Stops waiting: the promise of `token` never settles. Call before
   * closing a watched fd. */
  cancel(token: number): void {
    const waiter = this.#waiters.get(token);
    if (!waiter) return;
    this.#waiters.delete(token);
    if (this.#fd >= 0) lib.libforks_unwatch(this.#fd, waiter.fd);
    this.#updateReading();
  }

  /** Lets `token`'s wait no longer keep the process alive, or again. */
  setRef(token: number, ref: boolean): void {
    const waiter = this.#waiters.get(token);
    if (!waiter) return;
    waiter.ref = ref;
    this.#updateReading();
  }

  #wanted(): boolean {
    for (const waiter of this.#waiters.values()) if (waiter.ref) return true;
    return false;
  }

  #linger: ReturnType<typeof setTimeout> | null = null;

  #updateReading(): void {
    if (this.#wanted()) {
      if (this.#linger !== null) {
        clearTimeout(this.#linger);
        this.#linger = null;
      }
      if (!this.#reader && !this.#closing) void this.#readLoop();
      return;
    }
    if (this.#reader) {
      if (this.#linger === null) {
        // Unref'd: the pending read keeps the loop alive, not this timer.
        this.#linger = setTimeout(() => this.#stopIfIdle(), LINGER_MS);
        this.#linger.unref();
      }
    } else if (!this.#closing) {
      this.#closeIfIdle();
    }
  }

  #stopIfIdle(): void {
    this.#linger = null;
    if (this.#wanted() || !this.#reader) return;
    const reader = this.#reader;
    this.#reader = null;
    // Cancelling is lossless only while a read is pending (Bun reads
    // ahead into the stream's queue otherwise, and cancel drops that). In
    // a timer one always is: the loop asks for the next read before it
    // yields.
    this.#stopReader(reader);
  }

  #stopReader(reader: ReadableStreamDefaultReader<Uint8Array>): void {
    this.#closing = reader
      .cancel()
      .catch(() => {})
      .then(() => this.#closeIfIdle());
  }

  /** Closes the doorbell once nothing waits on it (the reader is stopped,
   * so Bun no longer polls its fd). */
  #closeIfIdle(): void {
    this.#closing = null;
    if (this.#waiters.size === 0 && this.#ready.length === 0 && this.#fd >= 0) {
      lib.libforks_doorbell_close(this.#fd);
      this.#fd = -1;
      this.#pending = new Uint8Array(0);
    }
    this.#updateReadingIfWanted();
  }

  #updateReadingIfWanted(): void {
    if (this.#wanted() && !this.#reader) void this.#readLoop();
  }

  async #readLoop(): Promise<void> {
    const reader = Bun.file(this.#open()).stream().getReader();
    this.#reader = reader;
    try {
      while (this.#reader === reader) {
        const { value, done } = await reader.read();
        if (value) this.#dispatch(value);
        if (done) break;
      }
    } catch {
      // A cancelled reader ends here; a replacement may already run.
    }
    if (this.#reader === reader) {
      this.#reader = null;
      this.#updateReading();
    }
  }

  #dispatch(chunk: Uint8Array): void {
    let bytes = chunk;
    if (this.#pending.length > 0) {
      bytes = new Uint8Array(this.#pending.length + chunk.length);
      bytes.set(this.#pending);
      bytes.set(chunk, this.#pending.length);
    }
    const whole = bytes.length - (bytes.length % doorbellRecord.size);
    const view = new DataView(bytes.buffer, bytes.byteOffset, whole);
    for (let offset = 0; offset < whole; offset += doorbellRecord.size) {
      const low = view.getUint32(offset, true);
      const high = view.getUint32(offset + 4, true);
      this.#ready.push(low + (high & (2 ** HIGH_TOKEN_BITS - 1)) * 2 ** 32, (high >>> HIGH_TOKEN_BITS) & 0xff);
    }
    this.#pending = bytes.slice(whole);
    this.#wake();
  }

  /** Ready (token, events) pairs not yet handed to their waiters. */
  #ready: number[] = [];
  #waking = false;

  /** Hands ready records to their waiters a slice at a time: each waiter's
   * continuation does native calls, and a burst of a thousand exits in one
   * task would stall timers and I/O for the whole burst. */
  #wake(): void {
    if (this.#waking) return;
    this.#waking = true;
    const slice = () => {
      const end = Math.min(this.#ready.length, 2 * RECORDS_PER_TASK);
      for (let i = 0; i < end; i += 2) {
        const waiter = this.#waiters.get(this.#ready[i]!);
        if (!waiter) continue; // cancelled after the thread fired
        this.#waiters.delete(this.#ready[i]!);
        waiter.resolve(this.#ready[i + 1]!);
      }
      this.#ready.splice(0, end);
      if (this.#ready.length > 0) {
        setImmediate(slice);
      } else {
        this.#waking = false;
        this.#updateReading();
      }
    };
    slice();
  }
}

let doorbell: Doorbell | null = null;

/** The doorbell of this event loop (each Worker has its own module
 * instance, hence its own doorbell). */
export function getDoorbell(): Doorbell {
  doorbell ??= new Doorbell();
  return doorbell;
}
