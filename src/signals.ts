// Signal names and numbers, from the platform's own table.

import { constants } from "node:os";
import { describe } from "./errors.ts";
import { argTypeError, argValueError } from "./node-errors.ts";

const byName = constants.signals as Record<string, number>;
const byNumber = new Map<number, string>();
for (const [name, number] of Object.entries(byName)) {
  if (!byNumber.has(number)) byNumber.set(number, name);
}

/** Number of a signal given as "SIGTERM", "TERM" or a number. 0 is allowed
 * (checks liveness). Anything else throws: a TypeError (code
 * ERR_INVALID_ARG_TYPE) for an unknown name or a non-signal, as Bun's kill
 * does, a RangeError (ERR_INVALID_ARG_VALUE) for an unknown number. */
export function signalNumber(signal: unknown, argument = "signal"): number {
  if (typeof signal === "number") {
    if (Number.isInteger(signal) && (signal === 0 || byNumber.has(signal))) return signal;
    throw argValueError(argument, `must be a known signal number, got ${signal}`);
  }
  if (typeof signal === "string") {
    const name = signal.startsWith("SIG") ? signal : `SIG${signal}`;
    const number = byName[name];
    if (number !== undefined) return number;
    throw argTypeError(argument, `must be a signal name like "SIGTERM", got ${JSON.stringify(signal)}`);
  }
  throw argTypeError(argument, `must be a signal name or number, got ${describe(signal)}`);
}

/** "SIGKILL" for 9; undefined for numbers the platform does not name. */
export function signalName(number: number): string | undefined {
  return byNumber.get(number);
}
