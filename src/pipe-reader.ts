// The read end of a spawned program's stdout/stderr pipe as a
// ReadableStream, read through the doorbell (not Bun.file().stream()) so
// the wait can be unref'd with its child. The stream reads eagerly, as
// Bun.spawn's pipes do: the program never blocks on a full pipe because
// nobody read it, and the fd is closed at end-of-file even when nobody
// does.

import { closeSync, readSync } from "node:fs";
import { lib } from "./native.ts";
import { getDoorbell, READABLE } from "./doorbell.ts";

const CHUNK = 64 * 1024;
/** One read buffer for every pipe of this thread: reads are synchronous,
 * and each chunk is copied out at its size. */
const scratch = new Uint8Array(CHUNK);

export interface PipeReader {
  readonly stream: ReadableStream<Uint8Array>;
  setRef(ref: boolean): void;
}

/** Owns `fd`. `onBytes` sees every chunk's size as it is read (maxBuffer). */
export function pipeReader(fd: number, onBytes?: (n: number) => void): PipeReader {
  lib.libforks_set_nonblocking(fd, true);
  let open = true;
  let ref = true;
  let token = 0;
  // Wait before reading, unless the last read filled the buffer (more is
  // likely there): a read of an empty pipe would throw EAGAIN, and
  // exceptions cost more than the wait.
  let readFirst = false;
  const close = () => {
    if (!open) return;
    open = false;
    if (token !== 0) getDoorbell().cancel(token);
    token = 0;
    closeSync(fd);
  };
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        while (open) {
          if (!readFirst) {
            const wait = getDoorbell().wait(fd, READABLE, { ref });
            token = wait.token;
            try {
              await wait.promise;
            } catch (error) {
              close();
              controller.error(error);
              return;
            } finally {
              if (token === wait.token) token = 0;
            }
            if (!open) return;
          }
          let n: number;
          try {
            n = readSync(fd, scratch);
          } catch (error) {
            if ((error as { code?: string }).code === "EAGAIN") {
              readFirst = false;
              continue;
            }
            close();
            controller.error(error);
            return;
          }
          if (n === 0) {
            close();
            controller.close();
            return;
          }
          readFirst = n === CHUNK;
          onBytes?.(n);
          controller.enqueue(scratch.slice(0, n));
          return;
        }
      },
      cancel() {
        close();
      },
    },
    // Pull until end-of-file, whether or not anyone reads.
    { highWaterMark: Number.POSITIVE_INFINITY, size: (chunk) => chunk?.byteLength ?? 0 },
  );
  return {
    stream,
    setRef(value: boolean) {
      ref = value;
      if (token !== 0) getDoorbell().setRef(token, value);
    },
  };
}
