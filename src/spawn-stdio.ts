// The fds a spawned program starts with, made from its checked stdio
// options: which fd of ours becomes each of its fds, and the ends we keep
// (pipes to read, a pipe to write stdin data into, sockets at index 3+).

import { closeSync, openSync, constants as fs } from "node:fs";
import { pipe, socketPair } from "./fds.ts";
import { PipeWriter } from "./stdio.ts";
import { pipeReader, type PipeReader } from "./pipe-reader.ts";
import type { StdioSpec } from "./spawn-options.ts";

let devNullFd = -1;

/** /dev/null, opened once per thread for reading and writing (Bun opens
 * files close-on-exec): "ignore" is the default stdin, so spawn must not
 * pay an open and a close for it each time. */
function devNull(): number {
  if (devNullFd < 0) devNullFd = openSync("/dev/null", fs.O_RDWR);
  return devNullFd;
}

export interface PreparedStdio {
  /** Program fd -> fd of ours (closed or kept as below). */
  mapped: Map<number, number>;
  /** Ours to close once the spec was sent, whatever happens. */
  opened: number[];
  /** Ours to keep on success (closed on failure). */
  kept: number[];
  stdin?: number;
  stdout?: number;
  stderr?: number;
  /** stdin data to write into `stdin` once the program runs. */
  stdinData?: () => ReadableStream<Uint8Array>;
  /** child.stdio: the fd here of "pipe" entries at 3 or more. */
  extra: (number | null)[];
}

/** Opens what `stdio` needs. On a throw, everything it opened is closed. */
export function prepareStdio(stdio: (StdioSpec | undefined)[]): PreparedStdio {
  const prepared: PreparedStdio = { mapped: new Map(), opened: [], kept: [], extra: [null, null, null] };
  try {
    stdio.forEach((spec, target) => {
      if (target >= 3) prepared.extra[target] = null;
      if (spec === undefined) return;
      switch (spec.kind) {
        case "inherit":
          prepared.mapped.set(target, target);
          return;
        case "ignore":
          prepared.mapped.set(target, devNull());
          return;
        case "fd":
          prepared.mapped.set(target, spec.fd);
          return;
        case "file": {
          // As Bun.spawn: read for stdin; for output created if missing and
          // written from the start, not truncated.
          const fd = target === 0 ? openSync(spec.path, "r") : openSync(spec.path, fs.O_WRONLY | fs.O_CREAT, 0o666);
          prepared.opened.push(fd);
          prepared.mapped.set(target, fd);
          return;
        }
        case "pipe":
        case "data": {
          if (target >= 3) {
            const [ours, theirs] = socketPair();
            prepared.opened.push(theirs);
            prepared.kept.push(ours);
            prepared.mapped.set(target, theirs);
            prepared.extra[target] = ours;
            return;
          }
          const [readEnd, writeEnd] = pipe();
          const [theirs, ours] = target === 0 ? [readEnd, writeEnd] : [writeEnd, readEnd];
          prepared.opened.push(theirs);
          prepared.kept.push(ours);
          prepared.mapped.set(target, theirs);
          if (target === 0) prepared.stdin = ours;
          else if (target === 1) prepared.stdout = ours;
          else prepared.stderr = ours;
          if (spec.kind === "data") prepared.stdinData = spec.source;
          return;
        }
      }
    });
  } catch (error) {
    closeAll(prepared.opened);
    closeAll(prepared.kept);
    throw error;
  }
  return prepared;
}

export function closeAll(fds: number[]): void {
  for (const fd of fds.splice(0)) closeSync(fd);
}

/** Writes stdin data into the program's stdin pipe, then closes it. A
 * program that exits without reading all of it is not an error (EPIPE). */
export async function pumpStdin(fd: number, source: ReadableStream<Uint8Array>): Promise<void> {
  const writer = new PipeWriter(fd);
  const reader = source.getReader();
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      await writer.write(value);
      await writer.flush();
    }
  } catch {
    // The program closed its stdin, or the source failed: stop writing.
  } finally {
    await writer.end().catch(() => {});
  }
}

export interface Outputs {
  stdout?: PipeReader;
  stderr?: PipeReader;
}

/** Readers for the stdout/stderr pipes; `onBytes` counts for maxBuffer. */
export function outputReaders(prepared: PreparedStdio, onBytes?: (n: number) => void): Outputs {
  return {
    stdout: prepared.stdout === undefined ? undefined : pipeReader(prepared.stdout, onBytes),
    stderr: prepared.stderr === undefined ? undefined : pipeReader(prepared.stderr, onBytes),
  };
}
