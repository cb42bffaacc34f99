// Signal names and numbers, from the platform's own table.

import { constants } from "node:os";
import { invalidArgument, describe } from "./errors.ts";

const byName = constants.signals as Record<string, number>;
const byNumber = new Map<number, string>();
for (const [name, number] of Object.entries(byName)) {
  if (!byNumber.has(number)) byNumber.set(number, name);
}

export type SignalName = keyof typeof constants.signals;

/** Number of a signal given as "SIGTERM", "TERM" or a number. 0 is allowed
 * (checks liveness). Throws INVALID_ARGUMENT for anything else. */
export function signalNumber(signal: unknown, argument = "signal"): number {
  if (typeof signal === "number") {
    if (Number.isInteger(signal) && (signal === 0 || byNumber.has(signal))) return signal;
    throw invalidArgument(argument, `must be a known signal number, got ${signal}`);
  }
  if (typeof signal === "string") {
    const name = signal.startsWith("SIG") ? signal : `SIG${signal}`;
    const number = byName[name];
    if (number !== undefined) return number;
    throw invalidArgument(argument, `must be a signal name like "SIGTERM", got ${JSON.stringify(signal)}`);
  }
  throw invalidArgument(argument, `must be a signal name or number, got ${describe(signal)}`);
}

/** "SIGKILL" for 9; undefined for numbers the platform does not name. */
export function signalName(number: number): string | undefined {
  return byNumber.get(number);
}
