// The stdin stream of a spawned program's stdio "pipe" (stdout and stderr
// are pipe-reader.ts's). Bun's file sinks never close an fd they were
// handed, so this one closes it itself: at end() (which the Child calls
// when the program exits), and when garbage collection finds it
// unreachable.

import type { FileSink } from "bun";
import { adoptFd, closeAdopted } from "./owned.ts";

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
