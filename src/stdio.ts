// The streams of a spawned program's stdio "pipe"s. Bun's file streams
// never close an fd they were handed, so these close it themselves: the
// reader at end-of-file or cancel, the writer at end() (which the Child
// calls when the program exits), and both when garbage collection finds
// them unreachable.

import type { FileSink } from "bun";
import { adoptFd, closeAdopted } from "./owned.ts";

/** How much a stdout/stderr stream reads ahead of its consumer: a program
 * that exits with less than this unread lets its pipe reach end-of-file
 * (and close) whether or not anyone reads it. */
export const READ_AHEAD_BYTES = 1024 * 1024;

interface ReaderHoldings {
  fd: number;
  open: boolean;
  inner: ReadableStreamDefaultReader<Uint8Array>;
}

const unreachableReaders = new FinalizationRegistry<ReaderHoldings>((holdings) => {
  // Bun's reader must stop polling the fd before its number can be reused.
  void holdings.inner
    .cancel()
    .catch(() => {})
    .then(() => closeReader(holdings));
});

function closeReader(holdings: ReaderHoldings): void {
  if (!holdings.open) return;
  holdings.open = false;
  closeAdopted(holdings.fd);
}

/** A readable stream over the read end of a pipe; owns and closes it. */
export function pipeReadable(fd: number): ReadableStream<Uint8Array> {
  const holdings: ReaderHoldings = { fd: adoptFd(fd), open: true, inner: Bun.file(fd).stream().getReader() };
  const inner = holdings.inner;
  const close = () => {
    unreachableReaders.unregister(holdings);
    closeReader(holdings);
  };
  const stream = new ReadableStream<Uint8Array>(
    {
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
    },
    { highWaterMark: READ_AHEAD_BYTES, size: (chunk?: Uint8Array) => chunk?.byteLength ?? 0 },
  );
  unreachableReaders.register(stream, holdings, holdings);
  return stream;
}

interface WriterHoldings {
  fd: number;
  open: boolean;
  sink: FileSink;
}

const unreachableWriters = new FinalizationRegistry<WriterHoldings>((holdings) => void endWriter(holdings));

async function endWriter(holdings: WriterHoldings): Promise<void> {
  try {
    await holdings.sink.end();
  } catch {
    // The program is gone (EPIPE): nothing left to deliver.
  } finally {
    if (holdings.open) {
      holdings.open = false;
      closeAdopted(holdings.fd);
    }
  }
}

/** The write end of a spawned program's stdin (`child.stdin` with stdio
 * `"pipe"`). */
export class PipeWriter {
  readonly #holdings: WriterHoldings;
  #ended: Promise<void> | null = null;

  /** Owns fd: end() closes it, which gives the program end-of-file. */
  constructor(fd: number) {
    this.#holdings = { fd: adoptFd(fd), open: true, sink: Bun.file(fd).writer() };
    unreachableWriters.register(this, this.#holdings, this.#holdings);
  }

  /** Buffers data; returns the number of bytes buffered. */
  write(data: string | Uint8Array | ArrayBuffer): number | Promise<number> {
    return this.#holdings.sink.write(data);
  }

  /** Writes what is buffered. */
  flush(): number | Promise<number> {
    return this.#holdings.sink.flush();
  }

  /** Lets the process exit while writes are pending (or not, again). */
  setRef(ref: boolean): void {
    if (ref) this.#holdings.sink.ref();
    else this.#holdings.sink.unref();
  }

  /** Writes what is buffered and closes the pipe. Idempotent. Rejects
   * when the program is gone before it read everything (EPIPE); the pipe
   * is closed either way. */
  end(): Promise<void> {
    this.#ended ??= (async () => {
      unreachableWriters.unregister(this.#holdings);
      try {
        await this.#holdings.sink.end();
      } finally {
        if (this.#holdings.open) {
          this.#holdings.open = false;
          closeAdopted(this.#holdings.fd);
        }
      }
    })();
    return this.#ended;
  }
}
