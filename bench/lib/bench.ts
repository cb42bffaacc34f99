// What every case shares: quick or full mode, timing loops with warm-up,
// interleaved rounds, the C baselines, the native entrypoints, and writing
// the case's result for bench/run.ts.

import { cc, FFIType } from "bun:ffi";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { summarize, type Summary } from "./stats.ts";
import type { CaseResult } from "./result.ts";
import { memoryOf } from "./proc.ts";

export const BENCH_DIR = resolve(import.meta.dir, "..");
export const ROOT = resolve(BENCH_DIR, "..");
export const NATIVE_DIR = join(ROOT, "zig-out", "bench");

/** `bun run bench --quick`: a smoke run, few iterations. */
export const quick = process.env.BENCH_MODE === "quick";

/** Picks the full-run or the quick-run figure. */
export function pick<T>(full: T, quickValue: T): T {
  return quick ? quickValue : full;
}

export function log(message: string): void {
  process.stderr.write(`  ${message}\n`);
}

export const now = (): number => Bun.nanoseconds();

/** Runs `body` warmup + iterations times and returns the per-iteration
 * times of the measured ones, in microseconds, plus the elapsed time of
 * the measured part (for rates). */
export async function timeLoop(
  body: (i: number) => unknown,
  options: { warmup: number; iterations: number },
): Promise<{ samples: number[]; elapsedSeconds: number }> {
  const samples: number[] = [];
  for (let i = 0; i < options.warmup; i++) await body(i);
  const start = now();
  for (let i = 0; i < options.iterations; i++) {
    const t0 = now();
    await body(i);
    samples.push((now() - t0) / 1000);
  }
  return { samples, elapsedSeconds: (now() - start) / 1e9 };
}

/** A measurement that is taken in slices, interleaved with the others of
 * its case (round 1: A B C, round 2: A B C, ...), so that the noise of a
 * shared two-core machine falls on every contender alike. */
export interface Contender {
  name: string;
  /** Measures one slice; returns its samples (µs) and elapsed seconds. */
  slice: (round: number) => Promise<{ samples: number[]; elapsedSeconds: number; extra?: Record<string, number | string> }>;
}

/** Open fds of this process. Every comparison runs with the fd table
 * flat: Bun.spawn's own cost grows with it. */
export function openFdCount(): number {
  return readdirSync("/proc/self/fd").length;
}

/** How long after a slice its fds are counted. */
const FD_SETTLE_MS = 20;

/** Largest growth of this process's fd table over any one slice of any
 * case in this process, printed by bench/run.ts next to the results. */
export const fdTable = { before: -1, maxGrowth: 0, worst: "" };

export interface Measured {
  samples: number[];
  stats: Summary;
  /** Iterations per second over all slices. */
  rate: number;
  extra: Record<string, number | string>;
}

export async function interleave(rounds: number, contenders: Contender[]): Promise<Map<string, Measured>> {
  const acc = new Map<string, { samples: number[]; seconds: number; extra: Record<string, number | string> }>();
  for (const c of contenders) acc.set(c.name, { samples: [], seconds: 0, extra: {} });
  for (let round = 0; round < rounds; round++) {
    // Rotate the order each round: no contender always runs first.
    for (let k = 0; k < contenders.length; k++) {
      const contender = contenders[(k + round) % contenders.length]!;
      const slot = acc.get(contender.name)!;
      const fdsBefore = openFdCount();
      if (fdTable.before < 0) fdTable.before = fdsBefore;
      const { samples, elapsedSeconds, extra } = await contender.slice(round);
      // Counted once the last children's output pipes closed: Bun reads
      // their end-of-file a little after their exit is known.
      await Bun.sleep(FD_SETTLE_MS);
      const growth = openFdCount() - fdsBefore;
      if (growth > fdTable.maxGrowth) {
        fdTable.maxGrowth = growth;
        fdTable.worst = contender.name;
      }
      slot.samples.push(...samples);
      slot.seconds += elapsedSeconds;
      Object.assign(slot.extra, extra ?? {});
    }
  }
  const out = new Map<string, Measured>();
  for (const [name, slot] of acc) {
    out.set(name, {
      samples: slot.samples,
      stats: summarize(slot.samples),
      rate: slot.samples.length / slot.seconds,
      extra: slot.extra,
    });
  }
  return out;
}

export interface NativeResult {
  name: string;
  rss_kib: number;
  rss_anon_kib: number;
  elapsed_ns: number;
  samples_ns: number[];
  [key: string]: unknown;
}

/** Runs a C baseline from zig-out/bench (built by `zig build bench`) and
 * parses the JSON line it prints. */
export async function runNative(name: string, args: Record<string, number | string>): Promise<NativeResult> {
  const path = join(NATIVE_DIR, name);
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: run 'python3 -m ziglang build bench' (bench/run.ts does it first)`);
  }
  const argv = [path, ...Object.entries(args).flatMap(([key, value]) => [`--${key}`, typeof value === "number" ? String(Math.round(value)) : value])];
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "inherit", stdin: "ignore" });
  const [text, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  if (code !== 0) throw new Error(`${argv.join(" ")} exited with ${code}`);
  return JSON.parse(text.trim().split("\n").pop()!) as NativeResult;
}

/** A native baseline as one interleaved slice. */
export function nativeSlice(name: string, args: () => Record<string, number | string>): Contender["slice"] {
  return async () => {
    const result = await runNative(name, args());
    return {
      samples: result.samples_ns.map((ns) => ns / 1000),
      elapsedSeconds: result.elapsed_ns / 1e9,
      extra: { rssKiB: result.rss_kib, anonKiB: result.rss_anon_kib },
    };
  };
}

/** Ballast arguments that give a C baseline the shape of this Bun process
 * right now: the same anonymous resident size (what fork(2) copies page
 * tables for) and the same total resident size, the rest being resident
 * pages of Bun's own executable, as in Bun. */
export function bunShape(): Record<string, number | string> {
  const { rssKiB, anonKiB } = memoryOf("self");
  return { "rss-kib": rssKiB, "anon-kib": anonKiB, file: process.execPath };
}

const entrySignature = { args: [FFIType.ptr, FFIType.i32], returns: FFIType.void } as const;

/** The native entrypoints (bench/native/cc/entries.c), compiled by TinyCC.
 * Call before ForkServer.start(): children are copies of the process as it
 * was then. */
export function compileEntries() {
  const { symbols } = cc({
    source: join(BENCH_DIR, "native", "cc", "entries.c"),
    symbols: {
      bench_exit_now: entrySignature,
      bench_pause: entrySignature,
      bench_kill_reap: entrySignature,
      bench_echo_fds: entrySignature,
      bench_raw_fork_wait: { args: [], returns: FFIType.i32 },
    },
  });
  return symbols;
}

export const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));
export const nextTurn = () => new Promise<void>((done) => setImmediate(done));

/** Writes the case's result where bench/run.ts expects it (or prints it). */
export function finish(result: Omit<CaseResult, "durationSeconds">, startedAt: number): void {
  const fdNote = `fd table of this process: ${fdTable.before} fds at the first slice, grown by at most ${fdTable.maxGrowth} over one slice${fdTable.worst ? ` (${fdTable.worst})` : ""}${fdTable.maxGrowth > 8 ? ": NOT flat, ratios against Bun.spawn are flattered" : ", flat"}`;
  const full: CaseResult = { ...result, notes: [...result.notes, fdNote], fdGrowth: fdTable.maxGrowth, durationSeconds: (now() - startedAt) / 1e9 };
  const out = process.env.BENCH_OUT;
  const text = JSON.stringify(full, null, 2);
  if (out) writeFileSync(out, text);
  else console.log(text);
}

export function fmt(value: number, digits = 0): string {
  if (!Number.isFinite(value)) return String(value);
  return value.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** A duration in µs, printed in the unit that reads best. */
export function fmtMicros(us: number): string {
  if (!Number.isFinite(us)) return String(us);
  if (us >= 10_000) return `${fmt(us / 1000, 1)} ms`;
  if (us >= 1000) return `${fmt(us / 1000, 2)} ms`;
  return `${fmt(us, 0)} µs`;
}
