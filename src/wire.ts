// Records of the C API that ServerConn reads and writes: their layout
// tables and decoding, in one place.

import { ptr } from "bun:ffi";
import { lib } from "./native.ts";
import { LibforksError, codeOf } from "./errors.ts";
import { getDoorbell, READABLE } from "./doorbell.ts";
import { ExitEvent } from "./exit-event.ts";
import { adoptFd, closeAdopted, releaseFd } from "./owned.ts";
import type { EventRecord } from "./events.ts";
import type { WaitResult } from "./conn.ts";

export function failure(result: number, what: string, syscall: string): LibforksError {
  return new LibforksError(codeOf(result), what, { errno: lib.libforks_last_errno(), syscall });
}

/** libforks_Reply: result, errno, pid, wait_status, then struct rusage. */
export const REPLY_SIZE = 16 + 144;

export interface Reply {
  result: number;
  errno: number;
  wait?: WaitResult;
}

export function replyFailure(reply: Reply, what: string, syscall: string): LibforksError {
  return new LibforksError(codeOf(reply.result), what, { errno: reply.errno, syscall });
}

/** The stop's answer, on its own reply pipe: the server's end follows it. */
export async function readStopReply(replyFd: number): Promise<Reply> {
  adoptFd(replyFd);
  try {
    await getDoorbell().wait(replyFd, READABLE).promise;
  } catch (error) {
    closeAdopted(replyFd);
    throw error;
  }
  const buffer = new ArrayBuffer(REPLY_SIZE);
  releaseFd(replyFd);
  const result = lib.libforks_reply_read(replyFd, ptr(buffer)); // closes replyFd
  return { result, errno: new DataView(buffer).getInt32(4, true) };
}

/** A wait's answer: the record's fields, decoded. */
export function replyOf(record: EventRecord): Reply {
  const reply: Reply = { result: record.result, errno: record.errno };
  if (record.result === 0) {
    const view = new DataView(record.rusage.buffer, record.rusage.byteOffset, record.rusage.byteLength);
    const micros = (offset: number) => Number(view.getBigInt64(offset, true)) * 1e6 + Number(view.getBigInt64(offset + 8, true));
    reply.wait = {
      pid: record.pid,
      status: record.waitStatus,
      event: new ExitEvent(record.pid, record.waitStatus),
      rusage: { userMicros: micros(0), systemMicros: micros(16), maxRssKiB: Number(view.getBigInt64(32, true)) },
    };
  }
  return reply;
}

/** zig/client.zig ForkRequest (libforks_ForkRequest). */
export const FORK_REQUEST = {
  size: 56,
  entrypoint: 8,
  library: 16,
  symbol: 24,
  socketFd: 32,
  exitFd: 36,
  nonblocking: 40,
  specQueued: 41,
  exitRusage: 42,
  exitEvent: 43,
  events: 44,
  tag: 48,
} as const;
