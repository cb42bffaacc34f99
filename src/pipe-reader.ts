// The read end of a spawned program's stdout/stderr pipe as a
// ReadableStream. The stream reads eagerly, as Bun.spawn's pipes do: the
// program never blocks on a full pipe because nobody read it, and the fd
// is closed at end-of-file even when nobody does.
//
// Bun's own file stream reads it while the pipe is ref'd: it is the
// cheapest (no hop through the readiness thread). Its wait keeps the
// event loop alive and cannot be unref'd, so unref() cancels it (with no
// read in flight it holds no data) and reading continues through the
// doorbell, whose waits can be unref'd.

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
  /** Stops reading (maxBuffer reached): the stream ends with what was
   * read, and the pipe is closed (once `after` settles, when given), so a
   * writer still running (a grandchild holding it) gets EPIPE instead of
   * filling this process's memory. */
  stop(after?: Promise<unknown>): void;
}

/** Owns `fd`. `onBytes` sees every chunk's size as it is read (maxBuffer). */
export function pipeReader(fd: number, onBytes?: (n: number) => void): PipeReader {
  let open = true;
  let ref = true;
  let token = 0;
  // Wait before reading, unless the last read filled the buffer (more is
  // likely there): a read of an empty pipe would throw EAGAIN, and
  // exceptions cost more than the wait.
  let readFirst = false;
  // Bun's reader until the first unref().
  let bunReader: ReadableStreamDefaultReader<Uint8Array> | null = Bun.file(fd).stream().getReader();
  let switching: Promise<void> | null = null;
  let controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  // `after`: the fd stays open until it settles (see stop()).
  const close = (after?: Promise<unknown>) => {
    if (!open) return;
    open = false;
    if (token !== 0) getDoorbell().cancel(token);
    token = 0;
    const reader = bunReader;
    bunReader = null;
    // Bun's reader may still watch the fd: close it only once that reader
    // let go, or Bun could read whatever file gets the number next.
    const released = reader ? reader.cancel().catch(() => {}) : undefined;
    if (released === undefined && after === undefined) closeSync(fd);
    else void Promise.all([released, after?.catch(() => {})]).finally(() => closeSync(fd));
  };
  const toDoorbell = () => {
    const reader = bunReader;
    if (reader === null) return;
    bunReader = null;
    switching = reader.cancel().catch(() => {});
  };
  const stream = new ReadableStream<Uint8Array>(
    {
      start(given) {
        controller = given;
      },
      async pull(controller) {
        while (open && bunReader !== null) {
          const reader = bunReader;
          let chunk: Awaited<ReturnType<typeof reader.read>>;
          try {
            chunk = await reader.read();
          } catch (error) {
            if (bunReader !== reader) break; // cancelled by unref() or stop()
            close();
            controller.error(error);
            return;
          }
          if (chunk.done) {
            if (bunReader !== reader) break; // cancelled by unref()
            close();
            controller.close();
            return;
          }
          if (!open) return; // stopped meanwhile
          // The chunk that crosses maxBuffer is kept, as Bun.spawn does.
          controller.enqueue(chunk.value!);
          onBytes?.(chunk.value!.length);
          return;
        }
        if (switching) {
          await switching;
          switching = null;
        }
        while (open) {
          if (!readFirst) {
            lib.libforks_set_nonblocking(fd, true); // Bun's reader may have left it blocking
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
          controller.enqueue(scratch.slice(0, n));
          onBytes?.(n);
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
    stop(after?: Promise<unknown>) {
      if (!open) return;
      close(after);
      try {
        controller?.close();
      } catch {
        // Already closed or errored.
      }
    },
    setRef(value: boolean) {
      ref = value;
      if (!value) toDoorbell();
      if (token !== 0) getDoorbell().setRef(token, value);
    },
  };
}
