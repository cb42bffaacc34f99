// Which addresses hold code: the check a native entrypoint given as a
// number gets before it is sent to the server. The number is never
// dereferenced in this process (the server's child calls it), so a wrong
// one cannot crash the host; it would crash the child. Checking that it
// lies in executable memory mapped when the server started turns the
// common mistakes (a stale number, a data pointer, a symbol loaded after
// start) into an error naming the argument. What cannot be checked: that
// it is the start of a function with the entrypoint's signature.

import { readFileSync } from "node:fs";

/** [start, end) of every executable mapping, or null where the system
 * has no /proc/self/maps (macOS: nothing is checked there). */
export type CodeRanges = [number, number][] | null;

export function codeRanges(): CodeRanges {
  let maps: string;
  try {
    maps = readFileSync("/proc/self/maps", "utf8");
  } catch {
    return null;
  }
  const ranges: [number, number][] = [];
  for (const line of maps.split("\n")) {
    // "start-end perms offset dev inode path"
    const space = line.indexOf(" ");
    if (space < 0 || line[space + 3] !== "x") continue;
    const dash = line.indexOf("-");
    ranges.push([parseInt(line.slice(0, dash), 16), parseInt(line.slice(dash + 1, space), 16)]);
  }
  return ranges;
}

export function inCode(ranges: CodeRanges, address: number): boolean {
  if (ranges === null) return true;
  for (const [start, end] of ranges) if (address >= start && address < end) return true;
  return false;
}
