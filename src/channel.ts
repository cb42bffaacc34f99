// Channel: messages with file descriptors over a socket to a child, sent
// in order as the socket has room and received in call order, readiness
// from the doorbell. The framing of a message into socket messages is
// channel-framing.ts; a queued send's copies of its fds outgoing-send.ts;
// checking fds and the raw one-message calls fd-passing.ts; telling the
// peer on close channel-hangup.ts; a spawned program's channel to its
// parent parent-channel.ts.

import { ptr } from "bun:ffi";
import { closeSync } from "node:fs";
import { constants } from "node:os";
import { lib } from "./native.ts";
import { LibforksError, checkFd, describe } from "./errors.ts";
import { getDoorbell, ERROR, HANGUP, READABLE, WRITABLE } from "./doorbell.ts";
import { adoptFd, closeAdopted, releaseFd } from "./owned.ts";
import { forgetAtExit, hangUpAndClose, hangUpAtExit } from "./channel-hangup.ts";
import { argTypeError } from "./node-errors.ts";
import { HEADER_SIZE, PART_SIZE, concat, framePart, parsePart } from "./channel-framing.ts";
import { MAX_FDS, checkFds, toBytes, type Message } from "./fd-passing.ts";
import { pin, unpin, type OutgoingSend } from "./outgoing-send.ts";

/** Sends that may wait for room in the socket at once; one more is
 * refused (LIMIT_ERROR) instead of growing memory without bound. */
export const MAX_QUEUED_SENDS = 4096;
const EAGAIN = constants.errno.EAGAIN;
/** macOS: a datagram for a full receiver is refused with ENOBUFS, and its
 * datagram sockets always poll writable, so a full channel is retried on
 * a timer (1 ms doubling to 32 ms), never by waiting for writability,
 * which would spin. */
const ENOBUFS = constants.errno.ENOBUFS;
const NOBUFS_RETRY_MAX_MS = 32;
const EPIPE = constants.errno.EPIPE;
const ECONNRESET = constants.errno.ECONNRESET;

/** Options of `Channel.send`. */
export interface SendOptions {
  /** Fds to pass (duplicated into the receiver; yours stay open), at most
   * `MAX_FDS`.
   * @default [] */
  fds?: number[];
}

/** @internal Child calls it when the child has exited. */
export const childExited = Symbol("childExited");

/** A received socket message not yet handed out. */
interface Packet {
  bytes: Uint8Array;
  fds: number[];
}

/** What a Channel holds natively, apart from the Channel itself, so that
 * garbage collection of an unclosed Channel can close it. */
interface Holdings {
  fd: number | null;
  /** After the child's exit: what it had sent, read at exit. */
  drained: Packet[] | null;
}

function releaseHoldings(holdings: Holdings): void {
  if (holdings.fd !== null) hangUpAndClose(holdings.fd);
  holdings.fd = null;
  forgetAtExit(holdings);
  for (const packet of holdings.drained ?? []) for (const fd of packet.fds) closeAdopted(fd);
  holdings.drained = null;
}

const unreachableChannels = new FinalizationRegistry<Holdings>(releaseHoldings);

/**
 * Messages with file descriptors over a connected `SOCK_SEQPACKET` socket:
 * `child.channel` on the parent's side, `connectToParent()` in a spawned
 * program. Any fd travels: pipes, sockets, listening sockets, memfds,
 * files. Messages of any size are split into parts and joined again (the
 * wire format is in the README).
 *
 * @example
 * ```ts
 * const [readEnd, writeEnd] = pipe();
 * await child.channel!.send("write here", { fds: [writeEnd] });
 * for await (const { data, fds } of child.channel!) {
 *   console.log(new TextDecoder().decode(data), fds);
 * }
 * ```
 */
export class Channel {
  readonly #holdings: Holdings;
  readonly #outgoing: OutgoingSend[] = [];
  #pumping = false;
  #receiving: Promise<unknown> = Promise.resolve();
  #waiters: { events: number; resolve: () => void; reject: (error: Error) => void }[] = [];
  #interest = 0;
  #token = 0;
  #ref = true;
  /** The peer's end-of-file was read: every later receive gets null too
   * (on macOS it was a message, which only one read sees). */
  #peerEnded = false;
  readonly #buffer = new Uint8Array(HEADER_SIZE + PART_SIZE);
  readonly #fdSlots = new Int32Array(MAX_FDS);

  /** Wraps a connected `SOCK_SEQPACKET` socket (made non-blocking); the
   * channel owns it and `close()` closes it.
   * @throws {LibforksError} `INVALID_ARGUMENT` when `fd` is not an open fd. */
  constructor(fd: number) {
    checkFd("fd", fd);
    if (lib.libforks_set_nonblocking(fd, true) !== 0) {
      throw new LibforksError("INVALID_ARGUMENT", `fd ${fd} cannot be used as a channel`, {
        errno: lib.libforks_last_errno(),
        syscall: "fcntl",
      });
    }
    this.#holdings = { fd: adoptFd(fd), drained: null };
    unreachableChannels.register(this, this.#holdings, this.#holdings);
    hangUpAtExit(this.#holdings);
  }

  get #fd(): number | null {
    return this.#holdings.fd;
  }

  /** The socket's fd, or -1 once closed. */
  get fd(): number {
    return this.#fd ?? -1;
  }

  /** True once the socket is closed: by close(), or after the child on
   * the other end exited (what it had sent can still be received). */
  get closed(): boolean {
    return this.#fd === null;
  }

  /** Sends one message, with `options.fds` if given. Sends are delivered
   * in call order. The data and fds are taken now: the fds are checked and
   * sent, or duplicated (close-on-exec), before this returns, so closing
   * them or reusing the buffer afterwards is safe. The promise resolves
   * once the whole message is in the socket.
   * @default options `{}` (no fds)
   * @throws {LibforksError} never synchronously: the promise rejects with
   *   `INVALID_ARGUMENT` (naming the argument) for bad data or fds,
   *   `LIMIT_ERROR` when MAX_QUEUED_SENDS sends already wait for room
   *   (await them: that is the backpressure), `CHANNEL_CLOSED` once the
   *   channel or the peer closed, `WRITE_ERROR` when sending fails. */
  send(data: ArrayBufferView | ArrayBuffer | string, options: SendOptions = {}): Promise<void> {
    try {
      const bytes = toBytes(data);
      if (options === null || typeof options !== "object") throw argTypeError("options", `must be an object, got ${describe(options)}`);
      const fds = checkFds(options.fds, "options.fds");
      this.#open();
      const send: OutgoingSend = { bytes, offset: 0, started: false, fds, pinned: false, resolve: () => {}, reject: () => {} };
      if (this.#outgoing.length >= MAX_QUEUED_SENDS) {
        throw new LibforksError("LIMIT_ERROR", `the channel already holds ${MAX_QUEUED_SENDS} sends waiting for the peer to read; await earlier sends before sending more`);
      }
      // Nothing queued ahead (the usual case): sent at once, as far as
      // the socket takes it.
      if (this.#outgoing.length === 0 && this.#writeParts(send) === true) return Promise.resolve();
      if (!send.started) {
        send.fds = pin(fds);
        send.pinned = true;
      }
      // The caller may reuse their buffer once this returns: what waits is
      // a copy of what is left to send.
      if (typeof data !== "string") {
        send.bytes = send.bytes.slice(send.offset);
        send.offset = 0;
      }
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      send.resolve = resolve;
      send.reject = reject;
      this.#outgoing.push(send);
      void this.#pump();
      return promise;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The next message (its fds are close-on-exec and yours to close), or
   * `null` once the peer closed its end. Receives are served in call
   * order.
   * @throws {LibforksError} the promise rejects with `CHANNEL_CLOSED` after
   *   `close()`, `READ_ERROR` when receiving fails. */
  receive(): Promise<Message | null> {
    const next = this.#receiving.then(() => this.#receiveNow());
    this.#receiving = next.catch(() => {});
    return next;
  }

  /** `for await (const message of channel)`: every message until the peer
   * closes its end. */
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

  /** Undoes `unref()`: a pending receive or send keeps the process alive again. */
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

  /** Closes the socket; pending sends and receives fail with
   * CHANNEL_CLOSED, and fds received but not yet handed out are closed. */
  close(): void {
    this.#closeSocket(new LibforksError("CHANNEL_CLOSED", "the channel was closed"), false);
    releaseHoldings(this.#holdings);
    unreachableChannels.unregister(this.#holdings);
  }

  /** @internal The child has exited: nothing will read what is sent any more, and
   * what it sent is in the socket now. That is read into memory, for
   * receive() to hand out before null, and the socket is closed. */
  [childExited](): void {
    const fd = this.#fd;
    if (fd === null) return;
    const drained: Packet[] = [];
    while (true) {
      const n = lib.libforks_read_socket_fds(fd, ptr(this.#buffer), this.#buffer.length, ptr(this.#fdSlots), MAX_FDS);
      // Nothing queued (EAGAIN), end-of-file, or a failure: done. The fd
      // slots are only filled by a successful read.
      if (n <= 0) break;
      const fds: number[] = [];
      for (const slot of this.#fdSlots) {
        if (slot < 0) break;
        fds.push(adoptFd(slot));
      }
      drained.push({ bytes: this.#buffer.slice(0, n), fds });
    }
    this.#holdings.drained = drained;
    this.#closeSocket(new LibforksError("CHANNEL_CLOSED", "the child on the other end has exited"), true);
  }

  /** Closes the socket. Queued sends fail with `error`; waiting receives
   * fail too, or with `wakeReceives` retry (and find what was drained). */
  #closeSocket(error: LibforksError, wakeReceives: boolean): void {
    const fd = this.#fd;
    if (fd === null) return;
    if (this.#token !== 0) getDoorbell().cancel(this.#token);
    this.#token = 0;
    this.#interest = 0;
    this.#holdings.fd = null;
    forgetAtExit(this.#holdings);
    hangUpAndClose(fd);
    for (const send of this.#outgoing.splice(0)) {
      unpin(send);
      send.reject(error);
    }
    for (const waiter of this.#waiters.splice(0)) {
      if (wakeReceives) waiter.resolve();
      else waiter.reject(error);
    }
  }

  #open(): number {
    if (this.#fd === null) throw new LibforksError("CHANNEL_CLOSED", this.#holdings.drained ? "the child on the other end has exited" : "the channel is closed");
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

  /** Writes the parts of `send` that fit now: true once all went out,
   * "full" when the socket is full, "nobufs" when the receiver is (macOS).
   * Throws when the socket fails. */
  #writeParts(send: OutgoingSend): true | "full" | "nobufs" {
    const fd = this.#open();
    while (!send.started || send.offset < send.bytes.length) {
      const { part, size } = framePart(send.bytes, send.offset);
      const fdArray = !send.started && send.fds.length > 0 ? new Int32Array(send.fds) : null;
      const sent = lib.libforks_write_socket_fds(fd, ptr(part), part.length, fdArray ? ptr(fdArray) : null, fdArray ? fdArray.length : 0);
      if (sent < 0) {
        const errno = lib.libforks_last_errno();
        if (errno === EAGAIN) return "full";
        if (errno === ENOBUFS) return "nobufs";
        const gone = errno === EPIPE || errno === ECONNRESET;
        throw new LibforksError(gone ? "CHANNEL_CLOSED" : "WRITE_ERROR", gone ? "the peer closed the channel" : "cannot send on the channel", {
          errno,
          syscall: "sendmsg",
        });
      }
      if (!send.started) {
        send.started = true;
        unpin(send);
      }
      send.offset += size;
    }
    return true;
  }

  /** Sends the queued sends in order as the socket has room. */
  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      let retryMs = 0;
      while (this.#outgoing.length > 0) {
        const send = this.#outgoing[0]!;
        let done: true | "full" | "nobufs";
        try {
          done = this.#writeParts(send);
        } catch (error) {
          this.#outgoing.shift();
          unpin(send);
          send.reject(error as Error);
          continue;
        }
        if (done === true) {
          this.#outgoing.shift();
          send.resolve();
          retryMs = 0;
          continue;
        }
        if (done === "nobufs") {
          retryMs = Math.min(Math.max(retryMs * 2, 1), NOBUFS_RETRY_MAX_MS);
          await Bun.sleep(retryMs);
          if (this.#fd === null) return; // closed meanwhile: #closeSocket failed the queue
          continue;
        }
        retryMs = 0;
        try {
          await this.#ready(WRITABLE);
        } catch {
          return; // closed: #closeSocket failed the queue
        }
      }
    } finally {
      this.#pumping = false;
    }
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
      const drained = this.#holdings.drained;
      if (drained !== null && this.#fd === null) {
        const packet = drained.shift();
        if (packet === undefined) return null;
        for (const fd of packet.fds) releaseFd(fd);
        fds.push(...packet.fds);
        return parsePart(packet.bytes, packet.bytes.length, fds);
      }
      const fd = this.#open();
      if (this.#peerEnded) return null;
      const n = lib.libforks_read_socket_fds(fd, ptr(this.#buffer), this.#buffer.length, ptr(this.#fdSlots), MAX_FDS);
      if (n < 0) {
        const errno = lib.libforks_last_errno();
        if (errno === EAGAIN) {
          await this.#ready(READABLE);
          continue;
        }
        if (errno === ECONNRESET) {
          this.#peerEnded = true;
          return null;
        }
        throw new LibforksError("READ_ERROR", "cannot receive on the channel", { errno, syscall: "recvmsg" });
      }
      for (const slot of this.#fdSlots) {
        if (slot < 0) break;
        fds.push(slot);
      }
      if (n === 0) {
        this.#peerEnded = true;
        return null;
      }
      return parsePart(this.#buffer, n, fds);
    }
  }
}
