// The shape of what each case reports. A case runs in its own Bun process
// and writes one CaseResult as JSON to the path in BENCH_OUT; bench/run.ts
// gathers them into bench/results/latest.json.

import type { Summary } from "./stats.ts";

/** "probe": a prototype of a design, measured to say what it could reach. */
export type Role = "libforks" | "baseline" | "probe";

export interface Row {
  /** What was measured, e.g. "server.fork(entry) → exited". */
  label: string;
  /** Case 3 groups rows by heap size. */
  group?: string;
  role: Role;
  /** Unit of median/p99/mean/min/max: "µs", "ms", "KiB". */
  unit: string;
  /** Order statistics of the per-iteration samples, when there are some. */
  stats?: Summary;
  /** Operations per second over the whole measured run, when relevant. */
  rate?: number;
  /** A single measured value (memory figures). */
  value?: number;
  /** Anything else worth keeping (RSS of the process that measured, ...). */
  extra?: Record<string, number | string>;
}

export interface Target {
  /** The bar, as the issue states it. */
  text: string;
  /** What was measured, in words and numbers. */
  measured: string;
  met: boolean;
  /** Why it was missed, or what qualifies it. */
  note?: string;
}

export interface ChartBar {
  label: string;
  value: number;
  role: Role;
  /** Drawn as a thin whisker past the bar (p99 for latencies). */
  whisker?: number;
}

export interface Chart {
  title: string;
  unit: string;
  better: "lower" | "higher";
  bars: ChartBar[];
}

export interface CaseResult {
  id: string;
  title: string;
  /** What one iteration is, for the README and the markdown table. */
  description: string;
  rows: Row[];
  targets: Target[];
  charts: Chart[];
  notes: string[];
  /** Largest growth of the measuring process's fd table over one slice. */
  fdGrowth?: number;
  durationSeconds: number;
}
