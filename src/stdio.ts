// The streams of a spawned program's stdio "pipe"s. Bun's file streams
// never close an fd they were handed, so these close it themselves: the
// reader at end-of-file or cancel, the writer at end().

import { closeSync } from "node:fs";
import type { FileSink } from "bun";

/** A readable stream over the read end of a pipe; owns and closes it. */
export function pipeReadable(fd: number): ReadableStream<Uint8Array> {
  const inner = Bun.file(fd).stream().getReader();
  let open = true;
  const close = () => {
    if (!open) return;
    open = false;
    closeSync(fd);
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done } = await inner.read();
        if (done) {
          close();
          controller.close();
        } else if (value) {
          controller.enqueue(value);
        }
      } catch (error) {
        close();
        controller.error(error);
      }
    },
    async cancel(reason) {
      await inner.cancel(reason).catch(() => {});
      close();
    },
  });
}

/** The write end of a spawned program's stdin. */
export class PipeWriter {
  readonly #fd: number;
  readonly #sink: FileSink;
  #ended: Promise<void> | null = null;

  /** Owns fd: end() closes it, which gives the program end-of-file. */
  constructor(fd: number) {
    this.#fd = fd;
    this.#sink = Bun.file(fd).writer();
  }

  /** Buffers data; returns the number of bytes buffered. */
  write(data: string | Uint8Array | ArrayBuffer): number | Promise<number> {
    return this.#sink.write(data);
  }

  /** Writes what is buffered. */
  flush(): number | Promise<number> {
    return this.#sink.flush();
  }

  /** Lets the process exit while writes are pending (or not, again). */
  setRef(ref: boolean): void {
    if (ref) this.#sink.ref();
    else this.#sink.unref();
  }

  /** Writes what is buffered and closes the pipe. Idempotent. */
  end(): Promise<void> {
    this.#ended ??= (async () => {
      try {
        await this.#sink.end();
      } finally {
        closeSync(this.#fd);
      }
    })();
    return this.#ended;
  }
}
