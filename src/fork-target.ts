// What a fork runs: a native entrypoint checked before it is sent.

import { JSCallback, dlopen } from "bun:ffi";
import { LibforksError, describe } from "./errors.ts";
import type { ForkTarget, ServerConn } from "./conn.ts";
import type { Entrypoint } from "./server.ts";
import { argError, argTypeError, argValueError } from "./node-errors.ts";

function refusePointerOnClean(conn: ServerConn): void {
  if (conn.clean) {
    throw argValueError(
      "entrypoint",
      "must be { library, symbol } on a clean server: it is another program, where a function pointer of this process means nothing",
    );
  }
}

export function forkTarget(conn: ServerConn, entrypoint: Entrypoint): ForkTarget {
  if (entrypoint instanceof JSCallback) {
    throw argTypeError(
      "entrypoint",
      "is a JSCallback: its body is JavaScript, which a forked child cannot run (the copied runtime is not usable there, and the child would die of SIGSEGV); write the entrypoint in C (bun:ffi cc() or a library) or spawn a Bun program instead",
    );
  }
  if (typeof entrypoint === "number" || typeof entrypoint === "bigint") {
    refusePointerOnClean(conn);
    return { entrypoint: checkPointer(conn, entrypoint, "entrypoint") };
  }
  if (typeof entrypoint === "function" || (entrypoint !== null && typeof entrypoint === "object")) {
    const candidate = entrypoint as { ptr?: unknown; library?: unknown; symbol?: unknown };
    if (candidate.ptr !== undefined) {
      refusePointerOnClean(conn);
      return { entrypoint: checkPointer(conn, candidate.ptr, "entrypoint.ptr") };
    }
    if (candidate.symbol !== undefined) {
      if (typeof candidate.symbol !== "string" || candidate.symbol.length === 0) {
        throw argError("entrypoint.symbol", `must be a non-empty string, got ${describe(candidate.symbol)}`, candidate.symbol, "string");
      }
      const library = candidate.library ?? null;
      if (library !== null && (typeof library !== "string" || library.length === 0)) {
        throw argError("entrypoint.library", `must be a path or null, got ${describe(library)}`, library, "string");
      }
      if (library === null && conn.clean) {
        throw argValueError("entrypoint.library", "must be a library path on a clean server (its own program exports nothing to run)");
      }
      checkLoadable(library as string | null, candidate.symbol);
      return { library: library as string | null, symbol: candidate.symbol };
    }
  }
  throw argTypeError(
    "entrypoint",
    `must be a native function pointer (a bun:ffi symbol or its .ptr) or { library, symbol }, got ${describe(entrypoint)}`,
  );
}

/** Entries that loaded here once, as "library\0symbol": bun:ffi's dlopen
 * builds a trampoline on each call, a cost a program that forks the same
 * entry again need not pay each time. A success is kept, not a failure: a library installed later
 * is found. At most MAX_CHECKED entries; past that, new ones are checked
 * every time. */
const checked = new Set<string>();
const MAX_CHECKED = 256;

/** dlopen and dlsym here first: a missing library or symbol is reported
 * now, by name, instead of as an exit status 127 later. */
function checkLoadable(library: string | null, symbol: string): void {
  if (library === null) return; // the image's own symbols: checked natively
  const key = `${library}\0${symbol}`;
  if (checked.has(key)) return;
  try {
    const probe = dlopen(library, { [symbol]: { args: [], returns: "void" } });
    probe.close();
  } catch (error) {
    throw new LibforksError("LOAD_ERROR", `cannot load symbol ${symbol} of ${library}: ${(error as Error).message}`, {
      syscall: "dlopen",
    });
  }
  if (checked.size < MAX_CHECKED) checked.add(key);
}

function checkPointer(conn: ServerConn, value: unknown, name: string): number {
  const number = typeof value === "bigint" ? Number(value) : value;
  if (typeof number !== "number" || !Number.isSafeInteger(number) || number <= 0) {
    throw argError(name, `must be a native function pointer, got ${describe(value)}`, value, "number", "bigint");
  }
  conn.checkEntrypoint(number, name);
  return number;
}
