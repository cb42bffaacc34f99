// Case 7: clean server vs snapshot server. A child round trip
// (server.fork(entry) → await child.exited) through a clean server
// (ForkServer.start({ mode: "clean" }), a fresh exec'd program) and through
// a snapshot server (a fork of this process), both started at the size
// measured: first while this process is small, then after its Bun heap has
// grown to 2 GiB (256 MiB in a quick run). The baseline is a tiny C
// process's raw fork() + _exit + waitpid (fork_wait without ballast).
//
// A clean server cannot run function pointers of this process, so both
// servers run the same entry, { library: "libc.so.6", symbol: "_exit" }: the
// clean server looks it up once itself (libc is mapped there) and hands its
// children the address; a snapshot server's child looks it up (already
// mapped). Either way the child exits at once. Its exit code is whatever
// the first argument register held; it is ignored.
//
// Two more rows split the clean round trip: the same clean server driven
// from C (libforks_fork_symbol + a blocking read of the exit fd), so what
// the server costs and what Bun's event loop adds are both measured; and
// the floor of any fork server, the barest C server making the same hops
// (native/server_floor.c), so what the hops themselves cost is too. And
// Bun.spawn(["/bin/true"]) in the same rounds, what Bun offers instead.

import { ForkServer } from "../../src/index.ts";
import { serverExecutablePath } from "../../src/native.ts";
import { finish, fmtMicros, interleave, log, nativeSlice, now, pick, timeLoop } from "../lib/bench.ts";
import { memoryOf } from "../lib/proc.ts";
import type { ChartBar, Row, Target } from "../lib/result.ts";

const startedAt = now();
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const entry = { library: "libc.so.6", symbol: "_exit" } as const;

const sizes: { label: string; bytes: number }[] = [
  { label: "small", bytes: 0 },
  pick({ label: "2 GiB", bytes: 2 * GiB }, { label: "256 MiB", bytes: 256 * MiB }),
];
const rounds = pick(5, 3);
const cleanIterations = pick(80, 40);
const cTinyIterations = pick(80, 40);
// A snapshot server of a 2 GiB process forks in tens of milliseconds:
// fewer iterations there.
const snapshotIterations = (bytes: number) => pick(bytes >= GiB ? 20 : 80, 20);
const warmup = pick(10, 3);
const snapshotWarmup = (bytes: number) => pick(bytes >= GiB ? 3 : 10, 3);

// What the heap holds, kept reachable until the end (as in case 3).
const ballast: unknown[] = [];
let grown = 0;
const CHUNK = 64 * MiB;

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

async function roundTrip(server: ForkServer): Promise<void> {
  await server.fork(entry).exited;
}

const rows: Row[] = [];
const bars: ChartBar[] = [];
const bySize: { label: string; clean: number; snapshot: number; cTiny: number; cClean: number; floor: number; floorSupervised: number; bunSpawn: number; rssKiB: number; startMicros: { clean: number; snapshot: number } }[] = [];

for (const size of sizes) {
  growTo(size.bytes);
  Bun.gc(true);
  const shape = memoryOf("self");
  log(`${size.label}: Bun RSS ${(shape.rssKiB / 1024).toFixed(0)} MiB (anonymous ${(shape.anonKiB / 1024).toFixed(0)} MiB); starting both servers`);
  // Both servers start now, at this size.
  let t0 = now();
  const clean = ForkServer.start({ mode: "clean" });
  const cleanStart = (now() - t0) / 1000;
  t0 = now();
  const snapshot = ForkServer.start();
  const snapshotStart = (now() - t0) / 1000;
  try {
    // Warm this process's code paths and both servers (JIT, doorbell,
    // dlopen in the server) before the first slice.
    for (let i = 0; i < pick(100, 20); i++) await roundTrip(clean);
    for (let i = 0; i < pick(size.bytes >= GiB ? 5 : 100, 3); i++) await roundTrip(snapshot);
    const m = await interleave(rounds, [
      { name: "clean", slice: () => timeLoop(() => roundTrip(clean), { warmup, iterations: cleanIterations }) },
      { name: "snapshot", slice: () => timeLoop(() => roundTrip(snapshot), { warmup: snapshotWarmup(size.bytes), iterations: snapshotIterations(size.bytes) }) },
      { name: "c_tiny", slice: nativeSlice("fork_wait", () => ({ warmup, iterations: cTinyIterations })) },
      { name: "c_clean", slice: nativeSlice("libforks_fork", () => ({ clean: serverExecutablePath(), warmup, iterations: cleanIterations })) },
      { name: "floor", slice: nativeSlice("server_floor", () => ({ warmup, iterations: cTinyIterations })) },
      { name: "floor_supervised", slice: nativeSlice("server_floor", () => ({ warmup, iterations: cTinyIterations, with: "supervise" })) },
      { name: "bun_spawn", slice: () => timeLoop(() => Bun.spawn(["/bin/true"], { stdout: "ignore" }).exited, { warmup, iterations: cTinyIterations }) },
    ]);
    const c = m.get("clean")!;
    const s = m.get("snapshot")!;
    const tiny = m.get("c_tiny")!;
    const cClean = m.get("c_clean")!;
    const floor = m.get("floor")!;
    const floorSupervised = m.get("floor_supervised")!;
    const bunSpawn = m.get("bun_spawn")!;
    const extra = {
      bunRssKiB: shape.rssKiB,
      bunAnonKiB: shape.anonKiB,
      cleanServerRssKiB: memoryOf(clean.pid).rssKiB,
      snapshotServerRssKiB: memoryOf(snapshot.pid).rssKiB,
    };
    rows.push(
      { group: size.label, label: "clean server.fork({ library, symbol }) → exited", role: "libforks", unit: "µs", stats: c.stats, rate: c.rate, extra: { ...extra, startMicros: cleanStart } },
      { group: size.label, label: "snapshot server.fork({ library, symbol }) → exited", role: "libforks", unit: "µs", stats: s.stats, rate: s.rate, extra: { ...extra, startMicros: snapshotStart } },
      { group: size.label, label: "clean server from C: libforks_fork_symbol + read exit fd", role: "libforks", unit: "µs", stats: cClean.stats, rate: cClean.rate, extra: cClean.extra },
      { group: size.label, label: "the barest C fork server, same hops (floor)", role: "baseline", unit: "µs", stats: floor.stats, rate: floor.rate, extra: floor.extra },
      {
        group: size.label,
        label: "the floor server, children supervised as a tree (subreaper, cgroup, PDEATHSIG)",
        role: "baseline",
        unit: "µs",
        stats: floorSupervised.stats,
        rate: floorSupervised.rate,
        extra: floorSupervised.extra,
      },
      { group: size.label, label: "fork() + _exit + waitpid (tiny C process)", role: "baseline", unit: "µs", stats: tiny.stats, rate: tiny.rate, extra: tiny.extra },
      { group: size.label, label: 'Bun.spawn(["/bin/true"]) → exited', role: "baseline", unit: "µs", stats: bunSpawn.stats, rate: bunSpawn.rate, extra: bunSpawn.extra },
    );
    for (const row of rows.slice(-7)) bars.push({ label: `${size.label} · ${row.label.replace(/ server\.fork\(\{ library, symbol \}\) → exited$/, " server").replace(/: libforks_fork_symbol .*$/, "").replace(/, same hops \(floor\)$/, "")}`, value: row.stats!.median, whisker: row.stats!.p99, role: row.role });
    bySize.push({
      label: size.label,
      clean: c.stats.median,
      snapshot: s.stats.median,
      cTiny: tiny.stats.median,
      cClean: cClean.stats.median,
      floor: floor.stats.median,
      floorSupervised: floorSupervised.stats.median,
      bunSpawn: bunSpawn.stats.median,
      rssKiB: shape.rssKiB,
      startMicros: { clean: cleanStart, snapshot: snapshotStart },
    });
    log(`${size.label}: clean ${fmtMicros(c.stats.median)}, snapshot ${fmtMicros(s.stats.median)}, tiny C fork ${fmtMicros(tiny.stats.median)}`);
  } finally {
    await clean.stop();
    await snapshot.stop();
  }
}

const small = bySize[0]!;
const big = bySize[1]!;
const vsC = big.clean / big.cTiny;
const growth = big.clean / small.clean;
const x = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
const targets: Target[] = [
  {
    text: "Case 7: clean native child round trip from Bun <= 1.0x the same server driven from C",
    measured: `${x(small.clean, small.cClean)} (${fmtMicros(small.clean)} vs ${fmtMicros(small.cClean)}, small heap); at ${big.label}: ${x(big.clean, big.cClean)}`,
    met: small.clean <= small.cClean,
  },
  {
    text: "Case 7: clean native child round trip from Bun <= 1.3x the floor server",
    measured: `${x(small.clean, small.floor)} (${fmtMicros(small.clean)} vs ${fmtMicros(small.floor)}, small heap); from C: ${x(small.cClean, small.floor)}`,
    met: small.clean <= 1.3 * small.floor,
    note:
      `where the rest goes, small heap: supervising the children as a tree (subreaper, a cgroup to join, PDEATHSIG, the mask reset) takes the floor to ${fmtMicros(small.floorSupervised)} (+${fmtMicros(small.floorSupervised - small.floor)}); ` +
      `libforks' protocol and tables add ${fmtMicros(small.cClean - small.floorSupervised)} more from C, and Bun's side ${fmtMicros(small.clean - small.cClean)}`,
  },
  {
    text: 'Case 7: clean native child round trip >= 3x faster than Bun.spawn(["/bin/true"])',
    measured: `${(small.bunSpawn / small.clean).toFixed(2)}x faster (${fmtMicros(small.clean)} vs ${fmtMicros(small.bunSpawn)}, small heap, same rounds); at ${big.label}: ${(big.bunSpawn / big.clean).toFixed(2)}x`,
    met: small.bunSpawn >= 3 * small.clean,
  },
  {
    text: `Case 7: clean-server fork latency from a ${big.label} Bun process within 1.5x of a tiny C process's raw fork+waitpid`,
    measured: `${vsC.toFixed(2)}x (median ${fmtMicros(big.clean)} vs ${fmtMicros(big.cTiny)})`,
    note:
      `at small heap, in its own slices: ${(small.clean / small.cTiny).toFixed(2)}x (${fmtMicros(small.clean)} vs ${fmtMicros(small.cTiny)}); ` +
      `the same clean server driven from C: ${(big.cClean / big.cTiny).toFixed(2)}x the tiny fork (${fmtMicros(big.cClean)}), Bun's event loop adding ${fmtMicros(big.clean - big.cClean)}; ` +
      `the barest C fork server making the same hops, the floor of any server: ${(big.floor / big.cTiny).toFixed(2)}x (${fmtMicros(big.floor)})`,
    met: vsC <= 1.5,
  },
  {
    text: `Case 7: clean fork latency at ${big.label} within 1.2x of clean at small heap`,
    measured: `${growth.toFixed(2)}x (${fmtMicros(big.clean)} vs ${fmtMicros(small.clean)}); snapshot: ${(big.snapshot / small.snapshot).toFixed(1)}x (${fmtMicros(big.snapshot)} vs ${fmtMicros(small.snapshot)})`,
    note: `the two sizes are measured one after the other (the servers must start at each size), so machine noise between them is not cancelled; the tiny C fork, measured beside both, moved ${(big.cTiny / small.cTiny).toFixed(2)}x`,
    met: growth <= 1.2,
  },
];

finish(
  {
    id: "clean",
    title: "7. Clean server vs snapshot server",
    description: `At each heap size (small, then ${big.label}), both servers started at that size: one child round trip through a clean server and through a snapshot server, entry { library: "libc.so.6", symbol: "_exit" }; one raw fork()+_exit+waitpid of a tiny C process.`,
    rows,
    targets,
    charts: [{ title: `7. Clean vs snapshot server, started at each heap size (small, ${big.label})`, unit: "µs", better: "lower", bars }],
    notes: [
      ...bySize.map(
        (s) =>
          `${s.label}: Bun RSS ${(s.rssKiB / 1024).toFixed(0)} MiB; clean ${fmtMicros(s.clean)}, snapshot ${fmtMicros(s.snapshot)}, tiny C fork ${fmtMicros(s.cTiny)}, clean server from C ${fmtMicros(s.cClean)}, barest C server ${fmtMicros(s.floor)}, supervising ${fmtMicros(s.floorSupervised)} (medians). ForkServer.start() took ${fmtMicros(s.startMicros.clean)} (clean) and ${fmtMicros(s.startMicros.snapshot)} (snapshot).`,
      ),
      `The entry _exit is called with whatever its first argument register holds: the children's exit codes are meaningless and ignored.`,
    ],
  },
  startedAt,
);
void ballast.length;
