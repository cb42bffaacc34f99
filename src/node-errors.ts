// Errors shaped as Node's and Bun's: a bad argument's type is a TypeError
// with code ERR_INVALID_ARG_TYPE, a bad value a RangeError with code
// ERR_INVALID_ARG_VALUE, and a failed system call a LibforksError whose
// `code` is the errno name ("ENOENT"), as Node's SystemError. Code written
// for Bun.spawn and node:child_process then handles ours unchanged.

import { constants } from "node:os";
import { LibforksError, describe, type LibforksErrorCode } from "./errors.ts";

/** A bad argument, shaped as Node's and Bun's: a `TypeError` with code
 * `ERR_INVALID_ARG_TYPE` for a wrong type, a `RangeError` with code
 * `ERR_INVALID_ARG_VALUE` for a wrong value; its message names it. */
export interface ArgumentError extends Error {
  /** `ERR_INVALID_ARG_TYPE` (a TypeError) or `ERR_INVALID_ARG_VALUE` (a RangeError). */
  code: "ERR_INVALID_ARG_TYPE" | "ERR_INVALID_ARG_VALUE";
  /** The argument, e.g. "options.cwd". */
  argument: string;
}

/** `name` has the wrong type: `expected` says what it must be. */
export function invalidArgType(name: string, expected: string, value: unknown): ArgumentError {
  return argTypeError(name, `must be ${expected}, got ${describe(value)}`);
}

/** `name` has the right type and a bad value: `problem` says why. */
export function invalidArgValue(name: string, value: unknown, problem: string): ArgumentError {
  return argValueError(name, `${problem}, got ${describe(value)}`);
}

/** A failed system call named by its errno ("ENOENT"). */
export function systemError(
  errnoName: string,
  message: string,
  details: { syscall: string; path?: string; spawnargs?: string[]; result: LibforksErrorCode },
): LibforksError {
  const errno = (constants.errno as Record<string, number>)[errnoName];
  return new LibforksError(details.result, message, { errno, syscall: details.syscall, path: details.path, spawnargs: details.spawnargs });
}

/** A bad argument of the wrong type; `problem` completes "name ...". */
export function argTypeError(name: string, problem: string): ArgumentError {
  const error = new TypeError(`${name} ${problem}`) as ArgumentError;
  error.code = "ERR_INVALID_ARG_TYPE";
  error.argument = name;
  return error;
}

/** A bad argument of the right type; `problem` completes "name ...". */
export function argValueError(name: string, problem: string): ArgumentError {
  const error = new RangeError(`${name} ${problem}`) as ArgumentError;
  error.code = "ERR_INVALID_ARG_VALUE";
  error.argument = name;
  return error;
}

/** argTypeError unless `value` has one of `types`, then argValueError. */
export function argError(name: string, problem: string, value: unknown, ...types: string[]): ArgumentError {
  return types.includes(typeof value) ? argValueError(name, problem) : argTypeError(name, problem);
}
