// A program's exec spec packed into one buffer and carried with the fork
// request (libforks_spawn_async): its strings are joined and encoded once
// per call, not one buffer and one pointer per string.

import { ptr } from "bun:ffi";
import { SpawnRequest } from "./abi.ts";

/** zig/protocol.zig spec_inline_max, less the SpecHeader. */
const INLINE_MAX = 48 * 1024 - 32;

export interface PackedSpawn {
  request: ArrayBuffer;
  /** Buffers the request points into: alive until it was sent. */
  keep: unknown[];
}

/** The request for libforks_spawn_async, or null when the spec is too
 * large to travel with it (then it goes on the program's socket). */
export function packSpawn(
  file: string,
  argv: string[],
  env: string[],
  cwd: string | null,
  mapped: Map<number, number>,
  control: number,
  events: number,
  tag: number,
): PackedSpawn | null {
  const parts = [file, ...argv, ...env];
  if (cwd !== null) parts.push(cwd);
  const strings = Buffer.from(`${parts.join("\0")}\0`);
  if (strings.length + mapped.size * 4 > INLINE_MAX || parts.length > 4096) return null;
  const targets = new Int32Array([...mapped.keys()]);
  const sources = new Int32Array([...mapped.values()]);
  const request = new ArrayBuffer(SpawnRequest.size);
  const view = new DataView(request);
  view.setBigUint64(SpawnRequest.offset.size, BigInt(SpawnRequest.size), true);
  view.setBigUint64(SpawnRequest.offset.strings, BigInt(ptr(strings)), true);
  view.setBigUint64(SpawnRequest.offset.strings_len, BigInt(strings.length), true);
  view.setUint32(SpawnRequest.offset.argc, argv.length, true);
  view.setUint32(SpawnRequest.offset.envc, env.length, true);
  view.setUint8(SpawnRequest.offset.has_cwd, cwd === null ? 0 : 1);
  if (targets.length > 0) {
    view.setBigUint64(SpawnRequest.offset.fds, BigInt(ptr(sources)), true);
    view.setBigUint64(SpawnRequest.offset.targets, BigInt(ptr(targets)), true);
  }
  view.setInt32(SpawnRequest.offset.fd_count, targets.length, true);
  view.setInt32(SpawnRequest.offset.socket_fd, control, true);
  view.setUint32(SpawnRequest.offset.events, events, true);
  view.setBigUint64(SpawnRequest.offset.tag, BigInt(tag), true);
  return { request, keep: [strings, targets, sources] };
}
