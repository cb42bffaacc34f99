// Channel: messages with file descriptors over a socket to a child.
//
// Wire format (documented in the README): one send is one or more socket
// messages, each a 4-byte little-endian header then at most PART_SIZE
// bytes of data. Header bit 0 set means more parts follow. The fds travel
// with the first part. The socket keeps message boundaries (SOCK_SEQPACKET),
// so a part is never split or merged.

import { ptr } from "bun:ffi";
import { closeSync } from "node:fs";
import { constants } from "node:os";
import { lib } from "./native.ts";
import { LibforksError, checkFd, describe } from "./errors.ts";
import { getDoorbell, ERROR, HANGUP, READABLE, WRITABLE } from "./doorbell.ts";
import { argError, argTypeError, argValueError } from "./node-errors.ts";

const PART_SIZE = 60 * 1024;
const HEADER_SIZE = 4;
const MORE = 1;
/** Most fds in one message (Linux SCM_MAX_FD). */
export const MAX_FDS = 253;
const EAGAIN = constants.errno.EAGAIN;
const EPIPE = constants.errno.EPIPE;
const ECONNRESET = constants.errno.ECONNRESET;

export interface Message<T = Uint8Array> {
  /** The bytes (or, on a channel with serialization, the value). */
  data: T;
  /** Received fds, close-on-exec, owned by the receiver. */
  fds: number[];
}

export interface SendOptions {
  /** Fds to pass (duplicated into the receiver; yours stay open). */
  fds?: number[];
}

export function toBytes(data: unknown, name = "data"): Uint8Array {
  if (typeof data === "string") return new TextEncoder().encode(data);
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw argTypeError(name, `must be a string, an ArrayBufferView or an ArrayBuffer, got ${describe(data)}`);
}

export function checkFds(fds: unknown, name = "fds"): number[] {
  if (fds === undefined) return [];
  if (!Array.isArray(fds)) throw argTypeError(name, `must be an array of file descriptors, got ${describe(fds)}`);
  if (fds.length > MAX_FDS) throw argValueError(name, `holds ${fds.length} fds; at most ${MAX_FDS} travel in one message`);
  return fds.map((fd, i) => checkFd(`${name}[${i}]`, fd));
}

export class Channel {
  #fd: number | null;
  #sending: Promise<void> = Promise.resolve();
  #receiving: Promise<unknown> = Promise.resolve();
  #waiters: { events: number; resolve: () => void; reject: (error: Error) => void }[] = [];
  #interest = 0;
  #token = 0;
  #ref = true;
  readonly #buffer = new Uint8Array(HEADER_SIZE + PART_SIZE);
  readonly #fdSlots = new Int32Array(MAX_FDS);

  /** Wraps a connected socket (made non-blocking). The channel owns it. */
  constructor(fd: number) {
    checkFd("fd", fd);
    if (lib.libforks_set_nonblocking(fd, true) !== 0) {
      throw new LibforksError("INVALID_ARGUMENT", `fd ${fd} cannot be used as a channel`, {
        errno: lib.libforks_last_errno(),
        syscall: "fcntl",
      });
    }
    this.#fd = fd;
  }

  /** The socket's fd, or -1 once closed. */
  get fd(): number {
    return this.#fd ?? -1;
  }

  get closed(): boolean {
    return this.#fd === null;
  }

  /** Sends one message. Sends are delivered in call order; each resolves
   * once its bytes are in the socket, and waits while the socket is full
   * (await each send to bound the memory queued here). */
  send(data: ArrayBufferView | ArrayBuffer | string, options: SendOptions = {}): Promise<void> {
    const bytes = toBytes(data);
    const fds = checkFds(options.fds);
    const next = this.#sending.then(() => this.#sendNow(bytes, fds));
    this.#sending = next.catch(() => {});
    return next;
  }

  /** The next message, or null once the peer closed its end. */
  receive(): Promise<Message | null> {
    const next = this.#receiving.then(() => this.#receiveNow());
    this.#receiving = next.catch(() => {});
    return next;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Message> {
    while (true) {
      const message = await this.receive();
      if (message === null) return;
      yield message;
    }
  }

  /** Lets the process exit while this channel waits (or not, again). */
  unref(): void {
    this.#ref = false;
    if (this.#token !== 0) getDoorbell().setRef(this.#token, false);
  }

  ref(): void {
    this.#ref = true;
    if (this.#token !== 0) getDoorbell().setRef(this.#token, true);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  get [Symbol.toStringTag](): string {
    return "Channel";
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    const serialization = (this as { serialization?: string }).serialization ?? "bytes";
    return `Channel { fd: ${this.fd}, state: "${this.closed ? "closed" : "open"}", serialization: "${serialization}" }`;
  }

  /** Closes the socket; pending sends and receives fail with CHANNEL_CLOSED. */
  close(): void {
    const fd = this.#fd;
    if (fd === null) return;
    this.#fd = null;
    if (this.#token !== 0) getDoorbell().cancel(this.#token);
    this.#token = 0;
    this.#interest = 0;
    for (const waiter of this.#waiters.splice(0)) waiter.reject(new LibforksError("CHANNEL_CLOSED", "the channel was closed"));
    closeSync(fd);
  }

  #open(): number {
    if (this.#fd === null) throw new LibforksError("CHANNEL_CLOSED", "the channel is closed");
    return this.#fd;
  }

  /** Waits until the socket is ready for `events`. A send waiting for room
   * and a receive waiting for data share one watch on the socket (one
   * registration per fd), armed with the union of what they wait for. */
  #ready(events: number): Promise<void> {
    this.#open();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#waiters.push({ events, resolve, reject });
    this.#arm();
    return promise;
  }

  #arm(): void {
    const fd = this.#fd;
    if (fd === null) return;
    const wanted = this.#waiters.reduce((union, waiter) => union | waiter.events, 0);
    if (wanted === this.#interest) return;
    const doorbell = getDoorbell();
    if (this.#token !== 0) doorbell.cancel(this.#token);
    this.#token = 0;
    this.#interest = wanted;
    if (wanted === 0) return;
    const { promise, token } = doorbell.wait(fd, wanted, { ref: this.#ref });
    this.#token = token;
    promise.then(
      (fired) => {
        if (this.#token !== token) return;
        this.#token = 0;
        this.#interest = 0;
        // An error or hang-up wakes everyone: each retries and sees it.
        const all = (fired & (ERROR | HANGUP)) !== 0;
        const woken = this.#waiters.filter((waiter) => all || (waiter.events & fired) !== 0);
        this.#waiters = this.#waiters.filter((waiter) => !woken.includes(waiter));
        for (const waiter of woken) waiter.resolve();
        this.#arm();
      },
      (error: Error) => {
        if (this.#token !== token) return;
        this.#token = 0;
        this.#interest = 0;
        for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
      },
    );
  }

  async #sendNow(bytes: Uint8Array, fds: number[]): Promise<void> {
    const fdArray = new Int32Array(fds);
    let offset = 0;
    let first = true;
    do {
      const size = Math.min(PART_SIZE, bytes.length - offset);
      const more = offset + size < bytes.length;
      const part = new Uint8Array(HEADER_SIZE + size);
      new DataView(part.buffer).setUint32(0, more ? MORE : 0, true);
      part.set(bytes.subarray(offset, offset + size), HEADER_SIZE);
      const withFds = first && fdArray.length > 0;
      while (true) {
        const fd = this.#open();
        const sent = lib.libforks_write_socket_fds(fd, ptr(part), part.length, withFds ? ptr(fdArray) : null, withFds ? fdArray.length : 0);
        if (sent >= 0) break;
        const errno = lib.libforks_last_errno();
        if (errno === EAGAIN) {
          await this.#ready(WRITABLE);
          continue;
        }
        const gone = errno === EPIPE || errno === ECONNRESET;
        throw new LibforksError(gone ? "CHANNEL_CLOSED" : "WRITE_ERROR", gone ? "the peer closed the channel" : "cannot send on the channel", {
          errno,
          syscall: "sendmsg",
        });
      }
      offset += size;
      first = false;
    } while (offset < bytes.length);
  }

  async #receiveNow(): Promise<Message | null> {
    const parts: Uint8Array[] = [];
    const fds: number[] = [];
    while (true) {
      const part = await this.#receivePart(fds);
      if (part === null) {
        if (parts.length === 0 && fds.length === 0) return null;
        for (const fd of fds) closeSync(fd);
        throw new LibforksError("PROTOCOL_ERROR", "the peer closed the channel in the middle of a message");
      }
      parts.push(part.data);
      if (!part.more) break;
    }
    const data = parts.length === 1 ? parts[0]! : concat(parts);
    return { data, fds };
  }

  async #receivePart(fds: number[]): Promise<{ data: Uint8Array; more: boolean } | null> {
    while (true) {
      const fd = this.#open();
      const n = lib.libforks_read_socket_fds(fd, ptr(this.#buffer), this.#buffer.length, ptr(this.#fdSlots), MAX_FDS);
      if (n < 0) {
        const errno = lib.libforks_last_errno();
        if (errno === EAGAIN) {
          await this.#ready(READABLE);
          continue;
        }
        if (errno === ECONNRESET) return null;
        throw new LibforksError("READ_ERROR", "cannot receive on the channel", { errno, syscall: "recvmsg" });
      }
      for (const slot of this.#fdSlots) {
        if (slot < 0) break;
        fds.push(slot);
      }
      if (n === 0) return null;
      if (n < HEADER_SIZE) {
        for (const received of fds) closeSync(received);
        throw new LibforksError("PROTOCOL_ERROR", `a ${n}-byte message is not a channel message`);
      }
      const header = new DataView(this.#buffer.buffer).getUint32(0, true);
      return { data: this.#buffer.slice(HEADER_SIZE, n), more: (header & MORE) !== 0 };
    }
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Env variable naming the fd of a spawned child's channel to its parent. */
export const CHANNEL_FD_ENV = "LIBFORKS_CHANNEL_FD";

/** In a program started by `server.spawn`, the channel to the parent. */
export function connectToParent(): Channel {
  return new Channel(parentChannelFd());
}

/** The fd of the channel to the parent, from the environment. */
export function parentChannelFd(): number {
  const value = process.env[CHANNEL_FD_ENV];
  if (value === undefined || !/^\d+$/.test(value)) {
    throw new LibforksError(
      "CHANNEL_CLOSED",
      `no channel to a parent: ${CHANNEL_FD_ENV} is not set (was this process started by server.spawn with channel: true?)`,
    );
  }
  return Number(value);
}

/** One raw message (no channel framing) with fds, sent at once. Throws
 * WRITE_ERROR with errno EAGAIN if a non-blocking socket is full. */
export function sendFds(fd: number, data: Uint8Array | string, fds: number[] = []): void {
  checkFd("fd", fd);
  const bytes = toBytes(data);
  const list = new Int32Array(checkFds(fds));
  if (bytes.length === 0) throw argValueError("data", "must hold at least one byte");
  const sent = lib.libforks_write_socket_fds(fd, ptr(bytes), bytes.length, list.length ? ptr(list) : null, list.length);
  if (sent < 0) {
    throw new LibforksError("WRITE_ERROR", `cannot send on fd ${fd}`, { errno: lib.libforks_last_errno(), syscall: "sendmsg" });
  }
}

/** One raw message with its fds (close-on-exec), read at once (blocking
 * on a blocking socket). data is empty at end-of-file. */
export function recvFds(fd: number, maxBytes = 65536, maxFds = MAX_FDS): Message {
  checkFd("fd", fd);
  if (!Number.isInteger(maxBytes) || maxBytes < 1) throw argError("maxBytes", `must be a positive integer, got ${describe(maxBytes)}`, maxBytes, "number");
  if (!Number.isInteger(maxFds) || maxFds < 0 || maxFds > MAX_FDS) throw argError("maxFds", `must be an integer from 0 to ${MAX_FDS}, got ${describe(maxFds)}`, maxFds, "number");
  const buffer = new Uint8Array(maxBytes);
  const slots = new Int32Array(Math.max(1, maxFds));
  const n = lib.libforks_read_socket_fds(fd, ptr(buffer), buffer.length, maxFds ? ptr(slots) : null, maxFds);
  if (n < 0) {
    throw new LibforksError("READ_ERROR", `cannot receive on fd ${fd}`, { errno: lib.libforks_last_errno(), syscall: "recvmsg" });
  }
  const fds = Array.from(slots.subarray(0, maxFds)).filter((slot) => slot >= 0);
  return { data: buffer.slice(0, n), fds };
}

