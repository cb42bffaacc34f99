// LibforksError: every failure of this package, with a code that names it.

import { constants } from "node:os";

/** Names of libforks_Result values, as libforks_result_string gives them. */
export const resultNames: Record<number, string> = {
  0: "OK",
  [-1]: "READ_ERROR",
  [-2]: "WRITE_ERROR",
  [-3]: "KILL_ERROR",
  [-4]: "SOCKET_CREATION_ERROR",
  [-5]: "MALLOC_ERROR",
  [-6]: "FORK_ERROR",
  [-7]: "WAIT_ERROR",
  [-8]: "STOP_ERROR",
  [-9]: "PIPE_CREATION_ERROR",
  [-10]: "INVALID_ARGUMENT",
  [-11]: "SERVER_GONE",
  [-12]: "NOT_OWNER",
  [-13]: "PROTOCOL_ERROR",
  [-14]: "WOULD_BLOCK",
  [-15]: "LOAD_ERROR",
  [-16]: "EXEC_ERROR",
  [-17]: "THREAD_ERROR",
  [-18]: "LIMIT_ERROR",
};

/**
 * What failed, as `LibforksError.code` names it. The names of the C
 * library's `libforks_Result` values (`"FORK_ERROR"`, `"SERVER_GONE"`,
 * ...), and the package's own: `"CHANNEL_CLOSED"` (no channel, or it was
 * closed), `"SERVER_STOPPED"`, `"UNSUPPORTED_RUNTIME"` (not Bun, or a Bun
 * older than the package needs), `"UNSUPPORTED_PLATFORM"` (no prebuilt
 * library for this platform), `"WORKER_NOT_DISPATCHED"` (see
 * `workerName()`), `"UNKNOWN"`.
 */
export type LibforksErrorCode =
  | "READ_ERROR"
  | "WRITE_ERROR"
  | "KILL_ERROR"
  | "SOCKET_CREATION_ERROR"
  | "MALLOC_ERROR"
  | "FORK_ERROR"
  | "WAIT_ERROR"
  | "STOP_ERROR"
  | "PIPE_CREATION_ERROR"
  | "INVALID_ARGUMENT"
  | "SERVER_GONE"
  | "NOT_OWNER"
  | "PROTOCOL_ERROR"
  | "WOULD_BLOCK"
  | "LOAD_ERROR"
  | "EXEC_ERROR"
  | "THREAD_ERROR"
  | "LIMIT_ERROR"
  | "CHANNEL_CLOSED"
  | "SERVER_STOPPED"
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

/**
 * Every failure of this package: thrown synchronously for bad arguments
 * and failed system calls, the rejection of every promise. A bad
 * argument's message names the argument (`INVALID_ARGUMENT`).
 *
 * @example
 * ```ts
 * try {
 *   server.spawn(["no-such-program"]);
 * } catch (error) {
 *   if (error instanceof LibforksError && error.code === "EXEC_ERROR") {
 *     console.log(error.errnoCode); // "ENOENT"
 *   } else throw error;
 * }
 * ```
 */
export class LibforksError extends Error {
  /** Always `"LibforksError"`. */
  override readonly name = "LibforksError";
  /** What failed, e.g. "FORK_ERROR", "INVALID_ARGUMENT", "SERVER_GONE". */
  readonly code: LibforksErrorCode;
  /** errno of the failed system call, when one failed. */
  readonly errno?: number;
  /** Name of that errno, e.g. "EAGAIN". */
  readonly errnoCode?: string;
  /** The call that failed, e.g. "fork", "execve", "libforks_start". */
  readonly syscall?: string;

  /**
   * @param code What failed.
   * @param message Says what failed; an errno's name is appended, as in
   *   `"cannot fork (EAGAIN)"`.
   * @param options `errno` of the failed call (ignored unless positive) and
   *   the call's name.
   * @default options `{}`
   */
  constructor(code: LibforksErrorCode, message: string, options: { errno?: number; syscall?: string } = {}) {
    const errno = options.errno && options.errno > 0 ? options.errno : undefined;
    const errnoCode = errno === undefined ? undefined : errnoName(errno);
    super(errnoCode ? `${message} (${errnoCode})` : message);
    this.code = code;
    this.errno = errno;
    this.errnoCode = errnoCode;
    this.syscall = options.syscall;
  }
}

export function codeOf(result: number): LibforksErrorCode {
  return (resultNames[result] as LibforksErrorCode | undefined) ?? "UNKNOWN";
}

/** A bad argument: the message names it. */
export function invalidArgument(name: string, problem: string): LibforksError {
  return new LibforksError("INVALID_ARGUMENT", `${name} ${problem}`);
}

/** Checks a file descriptor argument: a non-negative integer. */
export function checkFd(name: string, fd: unknown): number {
  if (typeof fd !== "number" || !Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) {
    throw invalidArgument(name, `must be a file descriptor (a non-negative integer), got ${describe(fd)}`);
  }
  return fd;
}

export function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || value == null) return String(value);
  if (Array.isArray(value)) return "an array";
  return typeof value === "function" ? "a function" : `a ${typeof value}`;
}
