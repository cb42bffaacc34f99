// Close-on-exec socket pairs and pipes, made by the native library (Bun
// has no pipe2 or socketpair).

import { ptr } from "bun:ffi";
import { lib } from "./native.ts";
import { LibforksError } from "./errors.ts";

/** A connected pair of close-on-exec `SOCK_SEQPACKET` sockets.
 * @throws {LibforksError} `SOCKET_CREATION_ERROR` (errno `EMFILE`, ...). */
export function socketPair(): [number, number] {
  const out = new Int32Array(2);
  if (lib.libforks_socketpair(ptr(out)) !== 0) {
    throw new LibforksError("SOCKET_CREATION_ERROR", "cannot create a socket pair", { errno: lib.libforks_last_errno(), syscall: "socketpair" });
  }
  return [out[0]!, out[1]!];
}

/** A close-on-exec pipe: `[read end, write end]`.
 * @throws {LibforksError} `PIPE_CREATION_ERROR` (errno `EMFILE`, ...).
 * @example
 * ```ts
 * const [readEnd, writeEnd] = pipe();
 * server.spawn(["/bin/sh", "-c", "echo hi >&5"], { fds: { 5: writeEnd } });
 * closeSync(writeEnd);
 * console.log(await new Response(Bun.file(readEnd).stream()).text());
 * ```
 */
export function pipe(): [number, number] {
  const out = new Int32Array(2);
  if (lib.libforks_pipe(ptr(out)) !== 0) {
    throw new LibforksError("PIPE_CREATION_ERROR", "cannot create a pipe", { errno: lib.libforks_last_errno(), syscall: "pipe2" });
  }
  return [out[0]!, out[1]!];
}
