// LibforksError: every failure of this package, with a code that names it.

import { constants } from "node:os";
import { argError } from "./node-errors.ts";
import { resultNames, type ResultName } from "./abi.ts";

/**
 * What failed, as `LibforksError.code` names it. The names of the C
 * library's `libforks_Result` values (`"FORK_ERROR"`, `"SERVER_GONE"`,
 * ...), and the package's own: `"CHANNEL_CLOSED"` (no channel, or it was
 * closed), `"UNSUPPORTED_RUNTIME"` (not Bun, or a Bun
 * older than the package needs), `"UNSUPPORTED_PLATFORM"` (no prebuilt
 * library for this platform), `"WORKER_NOT_DISPATCHED"` (see
 * `workerName()`), `"UNKNOWN"`.
 */
export type LibforksErrorCode =
  | Exclude<ResultName, "OK">
  | "CHANNEL_CLOSED"
  | "UNSUPPORTED_RUNTIME"
  | "UNSUPPORTED_PLATFORM"
  | "WORKER_NOT_DISPATCHED"
  | "UNKNOWN";

const errnoNames = new Map<number, string>(
  Object.entries(constants.errno).map(([name, value]) => [value as number, name]),
);

/** "ENOENT" for 2, or undefined. */
export function errnoName(errno: number): string | undefined {
  return errnoNames.get(errno);
}

/** Results that report a failed system call: with an errno, their `code`
 * is its name. The others (SERVER_GONE, CHANNEL_CLOSED, LIMIT_ERROR, ...)
 * name a state of libforks and keep their own code, errno or not. */
const SYSTEM_CALL_RESULTS = new Set<LibforksErrorCode>([
  "READ_ERROR",
  "WRITE_ERROR",
  "KILL_ERROR",
  "SOCKET_CREATION_ERROR",
  "FORK_ERROR",
  "WAIT_ERROR",
  "STOP_ERROR",
  "PIPE_CREATION_ERROR",
  "EXEC_ERROR",
  "THREAD_ERROR",
]);

/**
 * Every failure of this package. For a failed system call it has the
 * shape of Node's SystemError: `code` is the errno name ("ENOENT",
 * "EAGAIN"), `errno` its negative number, `syscall` the call, and `path` /
 * `spawnargs` where they apply. `result` always names the libforks result
 * ("EXEC_ERROR", "FORK_ERROR", "SERVER_GONE"); for other failures `code`
 * is that result too.
 *
 * @example
 * ```ts
 * try {
 *   server.spawn(["no-such-program"]);
 * } catch (error) {
 *   if (error instanceof LibforksError && error.code === "ENOENT") {
 *     console.log(error.result, error.path); // "EXEC_ERROR" "no-such-program"
 *   } else throw error;
 * }
 * ```
 */
export class LibforksError extends Error {
  /** Always `"LibforksError"`. */
  override readonly name = "LibforksError";
  /** The errno name of the failed system call ("ENOENT"), else `result`. */
  readonly code: LibforksErrorCode | string;
  /** What failed, as a libforks result: "FORK_ERROR", "EXEC_ERROR",
   * "SERVER_GONE", ... */
  readonly result: LibforksErrorCode;
  /** The errno of the failed system call, negative as in Node (-2 for
   * ENOENT). */
  readonly errno?: number;
  /** Name of that errno, e.g. "EAGAIN" (the same as `code` then). */
  readonly errnoCode?: string;
  /** The call that failed, e.g. "fork", "execve", "chdir", "spawn ls". */
  readonly syscall?: string;
  /** The file or directory the call was about (a program, a cwd). */
  readonly path?: string;
  /** spawn: the program's arguments after argv[0], as Node gives them. */
  readonly spawnargs?: string[];

  /**
   * @param code The libforks result (kept in `result`).
   * @param message Says what failed; an errno's name is appended, as in
   *   `"cannot fork (EAGAIN)"`.
   * @param options `errno` of the failed call (its sign is ignored), the
   *   call's name, and the `path` / `spawnargs` it concerned.
   * @default options `{}`
   */
  constructor(
    code: LibforksErrorCode,
    message: string,
    options: { errno?: number; syscall?: string; path?: string; spawnargs?: string[] } = {},
  ) {
    const number = options.errno === undefined ? undefined : Math.abs(options.errno);
    const errnoCode = number ? errnoName(number) : undefined;
    super(errnoCode ? `${message} (${errnoCode})` : message);
    this.result = code;
    this.code = errnoCode !== undefined && SYSTEM_CALL_RESULTS.has(code) ? errnoCode : code;
    this.errno = number && errnoCode ? -number : undefined;
    this.errnoCode = errnoCode;
    this.syscall = options.syscall;
    if (options.path !== undefined) this.path = options.path;
    if (options.spawnargs !== undefined) this.spawnargs = options.spawnargs;
  }
}

export function codeOf(result: number): LibforksErrorCode {
  return (resultNames[result] as LibforksErrorCode | undefined) ?? "UNKNOWN";
}

/** Checks a file descriptor argument: a non-negative integer. */
export function checkFd(name: string, fd: unknown): number {
  if (typeof fd !== "number" || !Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) {
    throw argError(name, `must be a file descriptor (a non-negative integer), got ${describe(fd)}`, fd, "number");
  }
  return fd;
}

export function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || value == null) return String(value);
  if (Array.isArray(value)) return "an array";
  return typeof value === "function" ? "a function" : `a ${typeof value}`;
}
