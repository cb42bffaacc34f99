// What server.spawn does around a running program, as Bun.spawn does:
// `timeout`, `signal` and `maxBuffer` kill it with `killSignal`, and
// `onExit` is called once it exited.

import type { Child } from "./child.ts";
import type { PipeReader } from "./pipe-reader.ts";
import type { CheckedSpawn } from "./spawn-options.ts";

export interface Supervision {
  /** Counts output bytes against maxBuffer. */
  onBytes?: (n: number) => void;
  /** Starts watching `child` (after it exists) and its output pipes. */
  attach(child: Child, outputs: (PipeReader | undefined)[]): void;
}

export function supervision(spec: CheckedSpawn): Supervision {
  let child: Child | null = null;
  const kill = (): Promise<void> | undefined => {
    try {
      return child?.kill(spec.killSignal);
    } catch {
      // Already gone: its exit is on its way.
      return undefined;
    }
  };
  let output = 0;
  let overflowed = false;
  let readers: (PipeReader | undefined)[] = [];
  // Past maxBuffer: kill, and stop reading, as Bun.spawn does. The output
  // so far is kept; a grandchild still writing gets EPIPE. The pipes close
  // only once the signal was sent: closed first, the program could die of
  // EPIPE, or exit on its own, before the signal reached it, and end
  // without killSignal (seen with `sh -c "yes; true"` under qemu-user).
  const overflow = () => {
    const sent = kill();
    for (const reader of readers) reader?.stop(sent);
  };
  const onBytes =
    spec.maxBuffer === null
      ? undefined
      : (n: number) => {
          output += n;
          if (!overflowed && output > spec.maxBuffer!) {
            overflowed = true;
            overflow();
          }
        };
  return {
    onBytes,
    attach(started: Child, outputs: (PipeReader | undefined)[]) {
      child = started;
      readers = outputs;
      if (overflowed) overflow();
      // The timer does not keep this process alive: the child's own exit
      // watch does, and unref() on the child lets go of that.
      const timer = spec.timeout === null ? null : setTimeout(kill, spec.timeout);
      timer?.unref();
      const signal = spec.signal;
      if (signal?.aborted) kill();
      signal?.addEventListener("abort", kill, { once: true });
      const done = () => {
        if (timer !== null) clearTimeout(timer);
        signal?.removeEventListener("abort", kill);
      };
      const onExit = spec.onExit;
      started.exited.then(
        () => {
          done();
          onExit?.(started, started.exitCode, started.signalCode);
        },
        (error: Error) => {
          done();
          onExit?.(started, null, null, error);
        },
      );
    },
  };
}
