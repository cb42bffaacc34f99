// Bun workers that are this same program: how server.spawnWorker() runs
// one from source, from a bundle and from a `bun build --compile`
// executable alike.
//
// A compiled executable holds one program. Running it again always runs
// its main module ([process.execPath, "worker.ts"] just passes "worker.ts"
// as an argument), so a worker is this program run again with
// LIBFORKS_WORKER set to the worker's name, and the main module dispatches
// on workerName(). A main module that forgets to dispatch would start
// copies of itself without end: spawnWorker() refuses to run in a worker
// that never asked workerName(), and past MAX_WORKER_DEPTH nested workers.

import { existsSync } from "node:fs";
import { LibforksError, describe } from "./errors.ts";
import { argError } from "./node-errors.ts";
import { isEmbedded } from "./native.ts";

/** The environment variable that names the worker a process runs. */
export const WORKER_ENV = "LIBFORKS_WORKER";
/** How many spawnWorker() levels lie above this process. */
export const WORKER_DEPTH_ENV = "LIBFORKS_WORKER_DEPTH";
/** Most nested levels of workers (a worker's worker is level 2). */
export const MAX_WORKER_DEPTH = 4;

let dispatched = false;

/**
 * The name this process was started with by `server.spawnWorker(name)`,
 * or `null` in a process that is not such a worker (the main program).
 * The main module calls it first and runs the worker's code when it is not
 * `null`: from source, from a bundle and from a compiled executable, a
 * worker is this same program run again.
 *
 * @returns The worker's name, or `null`.
 * @example
 * ```ts
 * import { ForkServer, workerName } from "libforks";
 * import { runWriter } from "./writer.ts";
 *
 * if (workerName() === "writer") {
 *   await runWriter();
 * } else {
 *   await using server = ForkServer.start();
 *   const worker = server.spawnWorker("writer");
 *   await worker.exited;
 * }
 * ```
 */
export function workerName(): string | null {
  dispatched = true;
  const name = process.env[WORKER_ENV];
  return name === undefined || name === "" ? null : name;
}

/** Checks a worker name and that this process may start workers. Returns
 * the environment the worker gets on top of the caller's. */
export function workerEnv(name: unknown): Record<string, string> {
  if (typeof name !== "string" || name.length === 0 || name.includes("\0")) {
    throw argError("name", `must be a non-empty string without NUL, got ${describe(name)}`, name, "string");
  }
  const own = process.env[WORKER_ENV];
  if (own !== undefined && own !== "" && !dispatched) {
    throw new LibforksError(
      "WORKER_NOT_DISPATCHED",
      `this process is worker "${own}", run again by spawnWorker(), and calls spawnWorker() without having asked workerName(): ` +
        "it would start copies of itself without end; dispatch on workerName() at the top of the main module",
    );
  }
  const depth = Number(process.env[WORKER_DEPTH_ENV] ?? "0");
  const level = Number.isInteger(depth) && depth > 0 ? depth : 0;
  if (level >= MAX_WORKER_DEPTH) {
    throw new LibforksError("LIMIT_ERROR", `workers nest at most ${MAX_WORKER_DEPTH} levels deep; this process is at level ${level}`);
  }
  return { [WORKER_ENV]: name, [WORKER_DEPTH_ENV]: String(level + 1) };
}

/** The argv that runs this program again: the executable itself when
 * compiled, else Bun with its flags and the main script. */
export function thisProgram(): string[] {
  if (isEmbedded(Bun.main)) return [process.execPath];
  if (!existsSync(Bun.main)) {
    throw new LibforksError("INVALID_ARGUMENT", `spawnWorker() runs this program's main script again, but ${Bun.main} is not a file (bun -e?)`);
  }
  return [process.execPath, ...process.execArgv, Bun.main];
}
