// Tracing for LIBFORKS_DEBUG=1 (or NODE_DEBUG containing "libforks"):
// one line on stderr per server start and stop, fork, spawn, exit and
// error, with pids and the milliseconds since the child was asked for.
// Read once at load: tracing costs one boolean test when off.

import { formatWithOptions } from "node:util";

function enabled(): boolean {
  const flag = process.env.LIBFORKS_DEBUG;
  if (flag !== undefined && flag !== "" && flag !== "0") return true;
  return (process.env.NODE_DEBUG ?? "").split(",").some((name) => name.trim().toLowerCase() === "libforks");
}

export const debugEnabled: boolean = enabled();

/** `LIBFORKS 1234 5.123ms spawn pid=1240 argv=["ls"]` */
export function debug(event: string, fields: Record<string, unknown> = {}): void {
  if (!debugEnabled) return;
  const parts = Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `${key}=${typeof value === "string" ? value : formatWithOptions({ breakLength: Infinity }, "%j", value)}`);
  process.stderr.write(`LIBFORKS ${process.pid} ${performance.now().toFixed(3)}ms ${event}${parts.length ? ` ${parts.join(" ")}` : ""}\n`);
}
