// Case 3: growth with the parent. The server starts while this process is
// small; then the Bun heap grows to each size (big ArrayBuffers, every page
// written, plus arrays of small objects for the JS heap proper). At each
// size, interleaved: a native child's round trip through the server, a raw
// C fork() + waitpid from a process of this process's shape (same
// anonymous and total resident size), and Bun.spawn(["/bin/true"]).

import { ForkServer } from "../../src/index.ts";
import { bunShape, compileEntries, finish, fmtMicros, interleave, log, nativeSlice, now, pick, timeLoop } from "../lib/bench.ts";
import { memoryOf } from "../lib/proc.ts";
import type { ChartBar, Row, Target } from "../lib/result.ts";

const startedAt = now();
const entries = compileEntries();
await using server = ForkServer.start();

const GiB = 1024 ** 3;
const sizes: { label: string; bytes: number }[] = pick(
  [
    { label: "small", bytes: 0 },
    { label: "0.5 GiB", bytes: 0.5 * GiB },
    { label: "1 GiB", bytes: 1 * GiB },
    { label: "2 GiB", bytes: 2 * GiB },
  ],
  [
    { label: "small", bytes: 0 },
    { label: "64 MiB", bytes: 64 * 1024 ** 2 },
    { label: "128 MiB", bytes: 128 * 1024 ** 2 },
  ],
);
const rounds = pick(5, 2);
const forkIterations = pick(60, 30);
const spawnIterations = pick(60, 30);
// Raw fork of a 2 GiB process takes tens of milliseconds: fewer iterations.
const rawIterations = (bytes: number) => pick(bytes >= GiB ? 24 : 60, 10);
const warmup = pick(10, 3);

// What the heap holds, kept reachable until the end.
const ballast: unknown[] = [];
let grown = 0;
const CHUNK = 64 * 1024 * 1024;

/** Grows the heap to `bytes`: 7/8 in ArrayBuffers written page by page,
 * 1/8 in arrays of small objects (about 64 bytes each in JSC). */
function growTo(bytes: number): void {
  while (grown < bytes) {
    const step = Math.min(CHUNK, bytes - grown);
    const objectBytes = Math.floor(step / 8);
    const buffer = new Uint8Array(step - objectBytes);
    for (let offset = 0; offset < buffer.length; offset += 4096) buffer[offset] = 1 + ((offset >> 12) % 251);
    ballast.push(buffer);
    const objects = new Array(Math.floor(objectBytes / 64));
    for (let i = 0; i < objects.length; i++) objects[i] = { i, s: grown + i, next: null as unknown };
    ballast.push(objects);
    grown += step;
  }
}

// The small-heap figures come first in this process: warm its code paths
// (JIT, the doorbell, the server) first, so "small" is not also "cold".
for (let i = 0; i < pick(300, 20); i++) await server.fork(entries.bench_exit_now).exited;
for (let i = 0; i < pick(100, 10); i++) await Bun.spawn(["/bin/true"]).exited;

const rows: Row[] = [];
const bars: ChartBar[] = [];
const bySize: { label: string; server: number; raw: number; spawn: number; rssKiB: number }[] = [];

for (const size of sizes) {
  growTo(size.bytes);
  Bun.gc(true);
  const shape = memoryOf("self");
  log(`${size.label}: Bun RSS ${(shape.rssKiB / 1024).toFixed(0)} MiB (anonymous ${(shape.anonKiB / 1024).toFixed(0)} MiB)`);
  const m = await interleave(rounds, [
    {
      name: "server",
      slice: () =>
        timeLoop(
          async () => {
            await server.fork(entries.bench_exit_now).exited;
          },
          { warmup, iterations: forkIterations },
        ),
    },
    { name: "raw", slice: nativeSlice("fork_wait", () => ({ ...bunShape(), warmup: 2, iterations: rawIterations(size.bytes) })) },
    {
      name: "spawn",
      slice: () =>
        timeLoop(
          async () => {
            await Bun.spawn(["/bin/true"]).exited;
          },
          { warmup, iterations: spawnIterations },
        ),
    },
  ]);
  const server_ = m.get("server")!;
  const raw = m.get("raw")!;
  const spawn = m.get("spawn")!;
  const extra = { bunRssKiB: shape.rssKiB, bunAnonKiB: shape.anonKiB, serverRssKiB: memoryOf(server.pid).rssKiB };
  rows.push(
    { group: size.label, label: "server.fork(entry) → exited", role: "libforks", unit: "µs", stats: server_.stats, rate: server_.rate, extra },
    { group: size.label, label: "fork() + waitpid (C, same shape)", role: "baseline", unit: "µs", stats: raw.stats, rate: raw.rate, extra: raw.extra },
    { group: size.label, label: 'Bun.spawn(["/bin/true"]) → exited', role: "baseline", unit: "µs", stats: spawn.stats, rate: spawn.rate },
  );
  for (const row of rows.slice(-3)) bars.push({ label: `${size.label} · ${row.label}`, value: row.stats!.median, whisker: row.stats!.p99, role: row.role });
  bySize.push({ label: size.label, server: server_.stats.median, raw: raw.stats.median, spawn: spawn.stats.median, rssKiB: shape.rssKiB });
}

const small = bySize[0]!;
const largest = bySize[bySize.length - 1]!;
const worst = bySize.slice(1).reduce((a, b) => (b.server / small.server > a.server / small.server ? b : a));
const spawnGrowth = bySize
  .slice(1)
  .map((s) => `${s.label}: ${(s.spawn / small.spawn).toFixed(2)}x`)
  .join(", ");
const targets: Target[] = [
  {
    text: "Case 3: server fork latency within 1.2x of its small-heap figure at every size",
    note: `Bun.spawn, which no heap size should affect either, measured in the same slices: ${spawnGrowth}`,
    measured:
      bySize
        .slice(1)
        .map((s) => `${s.label}: ${(s.server / small.server).toFixed(2)}x`)
        .join(", ") + ` (small: ${fmtMicros(small.server)})`,
    met: worst.server / small.server <= 1.2,
  },
  {
    text: "Case 3: the raw fork baseline grows with the heap",
    measured: `raw C fork ${fmtMicros(small.raw)} small → ${fmtMicros(largest.raw)} at ${largest.label} (${(largest.raw / small.raw).toFixed(1)}x)`,
    met: largest.raw / small.raw > 2,
  },
];

finish(
  {
    id: "heap",
    title: "3. Growth with the parent",
    description: "At each heap size: one native child round trip through the server (started while small), one raw C fork()+waitpid from a process of the same shape, one Bun.spawn of /bin/true.",
    rows,
    targets,
    charts: [{ title: "3. Fork latency as the Bun heap grows (server started while small)", unit: "µs", better: "lower", bars }],
    notes: bySize.map(
      (s) => `${s.label}: Bun RSS ${(s.rssKiB / 1024).toFixed(0)} MiB; server.fork ${fmtMicros(s.server)}, raw fork ${fmtMicros(s.raw)}, Bun.spawn ${fmtMicros(s.spawn)}.`,
    ),
  },
  startedAt,
);
void ballast.length;
