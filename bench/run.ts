// The benchmark suite: `bun run bench` (full, a few minutes) or
// `bun run bench --quick` (smoke run, well under a minute).
//
// 1. Builds the C baselines: `python3 -m ziglang build bench`.
// 2. Runs every case of bench/cases/ in its own, fresh Bun process (one
//    case's heap, threads and children never disturb the next).
// 3. Prints a table; writes bench/results/latest.{json,md,svg} (a quick
//    run writes bench/results/tmp/quick.* instead, so it never replaces
//    the committed results).
//
// Options: --quick; --only fork,spawn,clean,...; --no-build; --out DIR.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BENCH_DIR, ROOT, fmt, fmtMicros } from "./lib/bench.ts";
import { describeMachine, type Machine } from "./lib/machine.ts";
import { renderSvg, formatValue } from "./lib/svg.ts";
import type { CaseResult, Row } from "./lib/result.ts";

const CASES = [
  { id: "fork", file: "fork.ts" },
  { id: "spawn", file: "spawn.ts" },
  { id: "heap", file: "heap.ts" },
  { id: "burst", file: "burst.ts" },
  { id: "fdpass", file: "fdpass.ts" },
  { id: "memory", file: "memory.ts" },
  { id: "clean", file: "clean.ts" },
  { id: "stop", file: "stop.ts" },
];

function option(name: string): string | undefined {
  const index = process.argv.indexOf(name);
  return index >= 0 ? process.argv[index + 1] : undefined;
}

const quick = process.argv.includes("--quick");
const only = option("--only")?.split(",");
const outDir = option("--out") ?? (quick ? join(BENCH_DIR, "results", "tmp") : join(BENCH_DIR, "results"));
const outName = quick ? "quick" : "latest";
const caseTimeoutMs = quick ? 60_000 : 300_000;
const tmpDir = join(BENCH_DIR, "results", "tmp");
mkdirSync(tmpDir, { recursive: true });
mkdirSync(outDir, { recursive: true });

const suiteStart = performance.now();

if (!process.argv.includes("--no-build")) {
  process.stderr.write("building the C baselines: python3 -m ziglang build bench\n");
  const build = Bun.spawnSync(["python3", "-m", "ziglang", "build", "bench"], { cwd: ROOT, stdout: "inherit", stderr: "inherit" });
  if (build.exitCode !== 0) {
    process.stderr.write("bench: building the baselines failed\n");
    process.exit(1);
  }
}

const { nativeVersion } = await import("../src/index.ts");
const machine = describeMachine(ROOT, nativeVersion);

const results: CaseResult[] = [];
const failures: { id: string; error: string }[] = [];
for (const entry of CASES) {
  if (only && !only.includes(entry.id)) continue;
  const out = join(tmpDir, `${entry.id}.json`);
  rmSync(out, { force: true });
  process.stderr.write(`\n▶ case ${entry.id} (${quick ? "quick" : "full"})\n`);
  const started = performance.now();
  const proc = Bun.spawn([process.execPath, join(BENCH_DIR, "cases", entry.file)], {
    cwd: ROOT,
    env: { ...process.env, BENCH_MODE: quick ? "quick" : "full", BENCH_OUT: out },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), caseTimeoutMs);
  const code = await proc.exited;
  clearTimeout(timer);
  const seconds = (performance.now() - started) / 1000;
  try {
    if (code !== 0) throw new Error(`exited with ${proc.signalCode ?? code}${proc.signalCode === "SIGKILL" ? ` (timed out after ${caseTimeoutMs / 1000} s?)` : ""}`);
    results.push(JSON.parse(readFileSync(out, "utf8")) as CaseResult);
    process.stderr.write(`  done in ${seconds.toFixed(1)} s\n`);
  } catch (error) {
    failures.push({ id: entry.id, error: (error as Error).message });
    process.stderr.write(`  FAILED: ${(error as Error).message}\n`);
  }
}
const totalSeconds = (performance.now() - suiteStart) / 1000;

// ------------------------------------------------------------ reporting

function cells(row: Row): { median: string; p99: string; rate: string; n: string } {
  if (row.value !== undefined) return { median: formatValue(row.value, row.unit), p99: "", rate: "", n: "" };
  const stats = row.stats;
  const time = (v: number) => (row.unit === "µs" ? fmtMicros(v) : `${fmt(v, 2)} ${row.unit}`);
  return {
    median: stats ? time(stats.median) : "",
    p99: stats ? time(stats.p99) : "",
    rate: row.rate !== undefined ? `${fmt(row.rate)}/s` : "",
    n: stats ? fmt(stats.n) : "",
  };
}

function rowLabel(row: Row): string {
  const lag = row.extra?.statsAre ? ` [median/p99: ${row.extra.statsAre}]` : "";
  return `${row.group ? `${row.group} · ` : ""}${row.label}${lag}`;
}

function printTable(): void {
  const lines: string[][] = [["case", "measurement", "median", "p99", "rate", "n"]];
  for (const result of results) {
    for (const row of result.rows) {
      const c = cells(row);
      lines.push([result.id, `${row.role === "libforks" ? "* " : "  "}${rowLabel(row)}`, c.median, c.p99, c.rate, c.n]);
    }
  }
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  const out: string[] = [];
  lines.forEach((line, index) => {
    out.push(line.map((cell, i) => (i >= 2 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join("  "));
    if (index === 0) out.push(widths.map((w) => "-".repeat(w)).join("  "));
  });
  console.log(`\nlibforks benchmarks (${quick ? "quick" : "full"} run, ${totalSeconds.toFixed(0)} s) — * = libforks\n`);
  console.log(out.join("\n"));
  console.log("\nTargets:");
  for (const result of results) {
    for (const target of result.targets) console.log(`  ${target.met ? "MET   " : "MISSED"}  ${target.text}: ${target.measured}`);
  }
  for (const failure of failures) console.log(`  FAILED  case ${failure.id}: ${failure.error}`);
  const unflat = results.filter((r) => (r.fdGrowth ?? 0) > 8);
  console.log(
    unflat.length
      ? `\nfd table NOT flat in: ${unflat.map((r) => `${r.id} (+${r.fdGrowth})`).join(", ")}: ratios against Bun.spawn there are flattered`
      : "\nfd table flat in every case (no slice grew it by more than 8 fds)",
  );
}

function markdown(m: Machine): string {
  const md: string[] = [];
  md.push(`# libforks benchmark results (${quick ? "quick" : "full"} run)`, "");
  md.push("| Machine | |", "|---|---|");
  md.push(`| CPU | ${m.cpu} |`, `| Cores | ${m.cores} |`, `| Memory | ${m.memoryGiB} GiB |`, `| Kernel | ${m.kernel} |`);
  md.push(`| Bun | ${m.bun} |`, `| Zig | ${m.zig} |`, `| libforks | ${m.libforks}, commit ${m.commit} |`, `| Date | ${m.date} |`);
  md.push(`| Suite time | ${totalSeconds.toFixed(0)} s |`, "");
  md.push("Every comparison below was measured in the same run, interleaved in rounds. Latencies: median and p99 over all iterations after warm-up. **Bold** rows are libforks.", "");
  md.push("## Targets", "", "| | Target | Measured |", "|---|---|---|");
  for (const result of results) {
    for (const t of result.targets) md.push(`| ${t.met ? "✅ met" : "❌ missed"} | ${t.text.replace(/^Case \d: /, `${result.title.split(".")[0]}. `)} | ${t.measured}${t.note ? ` — ${t.note}` : ""} |`);
  }
  for (const failure of failures) md.push(`| ⚠️ failed | case ${failure.id} | ${failure.error} |`);
  md.push("");
  for (const result of results) {
    md.push(`## ${result.title}`, "", result.description, "");
    md.push("| Measurement | median | p99 | rate | n |", "|---|--:|--:|--:|--:|");
    for (const row of result.rows) {
      const c = cells(row);
      const label = rowLabel(row).replace(/\|/g, "\\|");
      md.push(`| ${row.role === "libforks" ? `**${label}**` : label} | ${c.median} | ${c.p99} | ${c.rate} | ${c.n} |`);
    }
    if (result.notes.length) md.push("", ...result.notes.map((n) => `- ${n}`));
    md.push("");
  }
  return md.join("\n");
}

printTable();
const summary = {
  mode: quick ? "quick" : "full",
  machine,
  totalSeconds,
  cases: results,
  failures,
};
writeFileSync(join(outDir, `${outName}.json`), `${JSON.stringify(summary, null, 2)}\n`);
writeFileSync(join(outDir, `${outName}.md`), markdown(machine));
const subtitle = `${machine.cpu}, ${machine.cores} cores, Linux ${machine.kernel.split(" ")[0]}, Bun ${machine.bun.split(" ")[0]}, ${machine.date.slice(0, 10)}${quick ? " (quick run)" : ""}`;
writeFileSync(join(outDir, `${outName}.svg`), renderSvg(results.flatMap((r) => r.charts), subtitle));
console.log(`\nwrote ${join(outDir, outName)}.{json,md,svg}`);
process.exit(failures.length ? 1 : 0);
