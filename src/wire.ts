// Records of the C API that ServerConn reads and writes: their layout
// tables and decoding, in one place.

import { ptr } from "bun:ffi";
import { lib } from "./native.ts";
import { LibforksError, codeOf } from "./errors.ts";
import { getDoorbell, READABLE } from "./doorbell.ts";
import { ExitEvent } from "./exit-event.ts";
import { adoptFd, closeAdopted, releaseFd } from "./owned.ts";
import { Reply as ReplyLayout, Rusage } from "./abi.ts";
import type { EventRecord } from "./events.ts";
import type { WaitResult } from "./conn.ts";

export function failure(result: number, what: string, syscall: string): LibforksError {
  return new LibforksError(codeOf(result), what, { errno: lib.libforks_last_errno(), syscall });
}

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
  const buffer = new ArrayBuffer(ReplyLayout.size);
  releaseFd(replyFd);
  const result = lib.libforks_reply_read(replyFd, ptr(buffer)); // closes replyFd
  return { result, errno: new DataView(buffer).getInt32(ReplyLayout.offset.error_number, true) };
}

/** A wait's answer: the record's fields, decoded. */
export function replyOf(record: EventRecord): Reply {
  const reply: Reply = { result: record.result, errno: record.errno };
  if (record.result === 0) {
    const view = new DataView(record.rusage.buffer, record.rusage.byteOffset, record.rusage.byteLength);
    const long = (name: keyof typeof Rusage.offset) => Number(view.getBigInt64(Rusage.offset[name], true));
    reply.wait = {
      pid: record.pid,
      status: record.waitStatus,
      event: new ExitEvent(record.pid, record.waitStatus),
      rusage: {
        userMicros: long("utime_sec") * 1e6 + long("utime_usec"),
        systemMicros: long("stime_sec") * 1e6 + long("stime_usec"),
        maxRssKiB: long("maxrss"),
      },
    };
  }
  return reply;
}
