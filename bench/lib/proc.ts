// /proc readers: resident size, proportional set size, threads, fds.

import { readdirSync, readFileSync } from "node:fs";

function statusFields(pid: number | "self"): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

function kib(text: string | undefined): number {
  return text === undefined ? Number.NaN : Number.parseInt(text, 10);
}

export interface ProcessMemory {
  /** VmRSS, KiB. */
  rssKiB: number;
  /** RssAnon, KiB: the private, anonymous part that fork(2) must copy-on-write-protect. */
  anonKiB: number;
  /** VmPTE: page tables, KiB. */
  pageTablesKiB: number;
  threads: number;
}

export function memoryOf(pid: number | "self" = "self"): ProcessMemory {
  const fields = statusFields(pid);
  return {
    rssKiB: kib(fields.get("VmRSS")),
    anonKiB: kib(fields.get("RssAnon")),
    pageTablesKiB: kib(fields.get("VmPTE")),
    threads: Number.parseInt(fields.get("Threads") ?? "NaN", 10),
  };
}

export interface Rollup {
  rssKiB: number;
  pssKiB: number;
  privateKiB: number;
  sharedKiB: number;
}

/** /proc/<pid>/smaps_rollup, in KiB. */
export function smapsRollup(pid: number | "self" = "self"): Rollup {
  const values = new Map<string, number>();
  for (const line of readFileSync(`/proc/${pid}/smaps_rollup`, "utf8").split("\n")) {
    const match = /^(\w+):\s+(\d+) kB/.exec(line);
    if (match) values.set(match[1]!, Number(match[2]));
  }
  const get = (name: string) => values.get(name) ?? 0;
  return {
    rssKiB: get("Rss"),
    pssKiB: get("Pss"),
    privateKiB: get("Private_Clean") + get("Private_Dirty"),
    sharedKiB: get("Shared_Clean") + get("Shared_Dirty"),
  };
}

/** Names (comm) of this process's threads, one entry per thread. */
export function threadNames(pid: number | "self" = "self"): string[] {
  const names: string[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      names.push(readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim());
    } catch {
      // The thread ended while we listed.
    }
  }
  return names.sort();
}

export function threadCount(pid: number | "self" = "self"): number {
  return readdirSync(`/proc/${pid}/task`).length;
}

export function fdCount(pid: number | "self" = "self"): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Elements of `after` not matched one-for-one in `before`. */
export function multisetDifference(after: string[], before: string[]): string[] {
  const left = new Map<string, number>();
  for (const name of before) left.set(name, (left.get(name) ?? 0) + 1);
  const extra: string[] = [];
  for (const name of after) {
    const count = left.get(name) ?? 0;
    if (count > 0) left.set(name, count - 1);
    else extra.push(name);
  }
  return extra;
}
