// Fd passing: the fds a message may carry, checked when they are named,
// and one raw message with fds on any Unix socket (no channel framing).

import { ptr } from "bun:ffi";
import { fstatSync } from "node:fs";
import { lib } from "./native.ts";
import { LibforksError, checkFd, describe } from "./errors.ts";
import { argError, argTypeError, argValueError } from "./node-errors.ts";
import { limits } from "./abi.ts";

/** Most fds in one message: 253 (Linux SCM_MAX_FD, LIBFORKS_MAX_FDS). */
export const MAX_FDS: number = limits.maxFds;

/** One message received on a channel or with `recvFds`.
 * @typeParam T The bytes (`Uint8Array`), or the value on a channel with
 *   serialization. */
export interface Message<T = Uint8Array> {
  /** The bytes sent (empty at end-of-file from `recvFds`), or, on a
   * channel with serialization, the value. */
  data: T;
  /** Received fds, close-on-exec, owned by the receiver. */
  fds: number[];
}

export function toBytes(data: unknown, name = "data"): Uint8Array {
  if (typeof data === "string") return new TextEncoder().encode(data);
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw argTypeError(name, `must be a string, an ArrayBufferView or an ArrayBuffer, got ${describe(data)}`);
}

/** Checks a list of fds to send: numbers, open now (a closed number would
 * otherwise be whatever opens next under it, such as one of our own
 * pipes). */
export function checkFds(fds: unknown, name = "fds"): number[] {
  if (fds === undefined) return [];
  if (!Array.isArray(fds)) throw argTypeError(name, `must be an array of file descriptors, got ${describe(fds)}`);
  if (fds.length > MAX_FDS) throw argValueError(name, `holds ${fds.length} fds; at most ${MAX_FDS} travel in one message`);
  return fds.map((fd, i) => {
    const checked = checkFd(`${name}[${i}]`, fd);
    try {
      fstatSync(checked);
    } catch {
      throw argValueError(`${name}[${i}]`, `is fd ${checked}, which is not open`);
    }
    return checked;
  });
}

/** One raw message (no channel framing) with fds on any Unix socket,
 * sent at once, as `libforks_write_socket_fds` does.
 * @default fds `[]`
 * @throws {LibforksError} `INVALID_ARGUMENT` for a bad fd, empty data or
 *   more than `MAX_FDS` fds; `WRITE_ERROR` when sending fails (errno
 *   `EAGAIN` when a non-blocking socket is full). */
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
 * on a blocking socket), as `libforks_read_socket_fds` does; `data` is
 * empty at end-of-file.
 * @default maxBytes `65536`, maxFds `MAX_FDS`
 * @throws {LibforksError} `INVALID_ARGUMENT` for bad arguments;
 *   `READ_ERROR` when receiving fails (`EMSGSIZE` when the message or its
 *   fds did not fit: what arrived is closed). */
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
