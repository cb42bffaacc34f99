// The channel's framing. Wire format (documented in the README): one send is one or more socket
// messages, each a 4-byte little-endian header then at most PART_SIZE
// bytes of data. Header bit 0 set means more parts follow. The fds travel
// with the first part. The socket keeps message boundaries (SOCK_SEQPACKET),
// so a part is never split or merged.

import { closeSync } from "node:fs";
import { LibforksError } from "./errors.ts";

export const PART_SIZE = 60 * 1024;
export const HEADER_SIZE = 4;
export const MORE = 1;

/** The socket message that carries `bytes` from `offset` (a header, then
 * at most PART_SIZE bytes), and how many bytes of `bytes` it carries. */
export function framePart(bytes: Uint8Array, offset: number): { part: Uint8Array; size: number } {
  const size = Math.min(PART_SIZE, bytes.length - offset);
  const more = offset + size < bytes.length;
  const part = new Uint8Array(HEADER_SIZE + size);
  new DataView(part.buffer).setUint32(0, more ? MORE : 0, true);
  part.set(bytes.subarray(offset, offset + size), HEADER_SIZE);
  return { part, size };
}

/** One socket message of `n` bytes at the start of `bytes`. */
export function parsePart(bytes: Uint8Array, n: number, fds: number[]): { data: Uint8Array; more: boolean } {
  if (n < HEADER_SIZE) {
    for (const received of fds) closeSync(received);
    throw new LibforksError("PROTOCOL_ERROR", `a ${n}-byte message is not a channel message`);
  }
  const header = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
  return { data: bytes.slice(HEADER_SIZE, n), more: (header & MORE) !== 0 };
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
