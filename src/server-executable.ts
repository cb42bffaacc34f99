// The program a clean server runs: libforks-server beside the library,
// or, where the kernel cannot execute that file, a memfd holding a copy.

import { ptr } from "bun:ffi";
import { closeSync, readFileSync, writeFileSync } from "node:fs";
import { isEmbedded, isExecutable, lib, serverExecutablePath } from "./native.ts";
import { LibforksError } from "./errors.ts";

/** libforks-server's path, and a memfd holding a copy of it to exec
 * instead (fexecve), or -1 when the file itself can be executed. The
 * memfd is the caller's to close.
 * @throws {LibforksError} `LOAD_ERROR` when libforks-server cannot be
 *   read or copied into a memfd. */
export function serverExecutable(): { path: string; memfd: number } {
  const path = serverExecutablePath();
  // The kernel executes neither a file embedded in a compiled executable
  // (it is not on disk) nor one without the exec bit (`bun build
  // --outdir` writes its assets mode 644): run those from a memfd
  // (fexecve), so no exec bit and no executable TMPDIR is assumed.
  const fromMemfd = isEmbedded(path) || !isExecutable(path);
  let memfd = -1;
  if (fromMemfd) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (error) {
      throw new LibforksError("LOAD_ERROR", `cannot read libforks-server at ${path}: ${(error as Error).message}`, { syscall: "open" });
    }
    memfd = lib.libforks_memfd(ptr(Buffer.from("libforks-server\0")));
    if (memfd < 0) {
      throw new LibforksError(
        "LOAD_ERROR",
        `cannot run ${path}: it is ${isEmbedded(path) ? "embedded in this executable" : "not executable"} and needs a memfd, ` +
          "but memfd_create failed; set LIBFORKS_PATH to a libforks library on disk with an executable libforks-server beside it",
        { errno: lib.libforks_last_errno(), syscall: "memfd_create" },
      );
    }
    try {
      writeFileSync(memfd, bytes);
    } catch (error) {
      closeSync(memfd);
      throw new LibforksError("LOAD_ERROR", `cannot copy libforks-server into a memfd: ${(error as Error).message}`, { syscall: "write" });
    }
  }
  return { path, memfd };
}
