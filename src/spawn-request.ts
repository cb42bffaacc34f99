// A program's exec spec packed into one buffer and carried with the fork
// request (libforks_spawn_async): its strings are joined and encoded once
// per call, not one buffer and one pointer per string.

import { ptr } from "bun:ffi";

/** zig/client.zig SpawnRequest (libforks_SpawnRequest): its one layout table. */
const SPAWN_REQUEST = {
  size: 80,
  strings: 8,
  stringsLen: 16,
  argc: 24,
  envc: 28,
  hasCwd: 32,
  fds: 40,
  targets: 48,
  fdCount: 56,
  socketFd: 60,
  events: 64,
  tag: 72,
} as const;

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
  const request = new ArrayBuffer(SPAWN_REQUEST.size);
  const view = new DataView(request);
  view.setBigUint64(0, BigInt(SPAWN_REQUEST.size), true);
  view.setBigUint64(SPAWN_REQUEST.strings, BigInt(ptr(strings)), true);
  view.setBigUint64(SPAWN_REQUEST.stringsLen, BigInt(strings.length), true);
  view.setUint32(SPAWN_REQUEST.argc, argv.length, true);
  view.setUint32(SPAWN_REQUEST.envc, env.length, true);
  view.setUint8(SPAWN_REQUEST.hasCwd, cwd === null ? 0 : 1);
  if (targets.length > 0) {
    view.setBigUint64(SPAWN_REQUEST.fds, BigInt(ptr(sources)), true);
    view.setBigUint64(SPAWN_REQUEST.targets, BigInt(ptr(targets)), true);
  }
  view.setInt32(SPAWN_REQUEST.fdCount, targets.length, true);
  view.setInt32(SPAWN_REQUEST.socketFd, control, true);
  view.setUint32(SPAWN_REQUEST.events, events, true);
  view.setBigUint64(SPAWN_REQUEST.tag, BigInt(tag), true);
  return { request, keep: [strings, targets, sources] };
}
