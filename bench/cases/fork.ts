// Case 1: a native child's round trip from Bun. server.fork(entry) with an
// entry that _exit(0)s at once, then await child.exited. Against:
//  - the physical limit: C fork() + _exit + waitpid from a process of the
//    Bun process's resident size (touched ballast);
//  - the same library driven from C: libforks_fork + blocking read of the
//    exit fd, from a process of that size (so the server has that size);
//  - the floor of any snapshot server: the barest C fork server making the
//    same hops (native/server_floor.c), forked from a process of that size;
//  - the raw fork of this Bun process itself (fork system call, _exit,
//    waitpid, in C called through bun:ffi): the exact shape, which a C
//    process of the same resident size only approximates;
//  - Bun.spawn(["/bin/true"]) + await exited, what Bun offers instead.

import { ForkServer } from "../../src/index.ts";
import { bunShape, compileEntries, finish, fmtMicros, interleave, log, nativeSlice, now, pick, timeLoop } from "../lib/bench.ts";
import { memoryOf } from "../lib/proc.ts";
import type { Row, Target } from "../lib/result.ts";
import { summarize } from "../lib/stats.ts";

const startedAt = now();
const entries = compileEntries();
await using server = ForkServer.start();

const rounds = pick(5, 3);
const iterations = pick(400, 150);
const warmup = pick(40, 20);
const bunRss = () => memoryOf("self").rssKiB;
// Phases of the Bun round trip: fork() returned (the JS thread is free
// again), the child's pid known, its exit known (the sample itself).
const callMicros: number[] = [];
const startedMicros: number[] = [];

log(`${rounds} rounds × ${iterations} iterations (+${warmup} warm-up) per contender`);
const m = await interleave(rounds, [
  {
    name: "bun",
    slice: () =>
      timeLoop(
        async () => {
          const t0 = now();
          const child = server.fork(entries.bench_exit_now);
          callMicros.push((now() - t0) / 1000);
          await child.started;
          startedMicros.push((now() - t0) / 1000);
          await child.exited;
        },
        { warmup, iterations },
      ).then((r) => ({ ...r, extra: { rssKiB: bunRss(), anonKiB: memoryOf("self").anonKiB, serverRssKiB: memoryOf(server.pid).rssKiB } })),
  },
  { name: "c_fork", slice: nativeSlice("fork_wait", () => ({ ...bunShape(), warmup, iterations })) },
  { name: "c_libforks", slice: nativeSlice("libforks_fork", () => ({ ...bunShape(), warmup, iterations })) },
  { name: "c_floor", slice: nativeSlice("server_floor", () => ({ ...bunShape(), warmup, iterations })) },
  {
    name: "bun_raw_fork",
    slice: () =>
      timeLoop(
        async () => {
          if (entries.bench_raw_fork_wait() < 0) throw new Error("raw fork of this process failed");
        },
        { warmup, iterations },
      ),
  },
  {
    name: "bun_spawn",
    slice: () =>
      timeLoop(
        async () => {
          await Bun.spawn(["/bin/true"]).exited;
        },
        { warmup, iterations },
      ),
  },
]);

const bun = m.get("bun")!;
const cFork = m.get("c_fork")!;
const cLib = m.get("c_libforks")!;
const spawn = m.get("bun_spawn")!;
const floor = m.get("c_floor")!;
const rawBun = m.get("bun_raw_fork")!;

const rows: Row[] = [
  { label: "server.fork(entry) → exited (Bun)", role: "libforks", unit: "µs", stats: bun.stats, rate: bun.rate, extra: bun.extra },
  { label: "libforks_fork + read exit fd (C)", role: "libforks", unit: "µs", stats: cLib.stats, rate: cLib.rate, extra: cLib.extra },
  { label: "fork() + _exit + waitpid (C, Bun-sized)", role: "baseline", unit: "µs", stats: cFork.stats, rate: cFork.rate, extra: cFork.extra },
  { label: "the barest C fork server, Bun-sized (the floor of any server)", role: "baseline", unit: "µs", stats: floor.stats, rate: floor.rate, extra: floor.extra },
  { label: "fork + _exit + waitpid of this Bun process itself (C, raw system call)", role: "baseline", unit: "µs", stats: rawBun.stats, rate: rawBun.rate },
  { label: 'Bun.spawn(["/bin/true"]) → exited', role: "baseline", unit: "µs", stats: spawn.stats, rate: spawn.rate },
];

const vsFork = bun.stats.median / cFork.stats.median;
const vsOwnFork = bun.stats.median / rawBun.stats.median;
const vsSpawn = spawn.stats.median / bun.stats.median;
const targets: Target[] = [
  {
    text: "Case 1: snapshot server.fork round trip within 1.3x of raw C fork+waitpid of a Bun-shaped process",
    measured: `${vsOwnFork.toFixed(2)}x a raw fork of this Bun process itself (median ${fmtMicros(bun.stats.median)} vs ${fmtMicros(rawBun.stats.median)}); ${vsFork.toFixed(2)}x a C process grown to Bun's resident size (${fmtMicros(cFork.stats.median)}), which forks ${(rawBun.stats.median / cFork.stats.median).toFixed(2)}x faster than Bun itself; the floor of any server, the barest C fork server of that C size making the same hops: ${(floor.stats.median / cFork.stats.median).toFixed(2)}x it (${fmtMicros(floor.stats.median)}), libforks from C ${(cLib.stats.median / cFork.stats.median).toFixed(2)}x`,
    // The snapshot server is a copy of this process, so what its fork
    // costs is the fork of this process: the raw fork of Bun itself is
    // the baseline with the exact shape. The C process matches Bun's
    // resident size only, and forks faster (measured beside it).
    met: vsOwnFork <= 1.3,
    note: "judged against the raw fork of this Bun process itself, the exact shape; the C process of the same resident size is shown too",
  },
  {
    text: "Case 1: at least 3x faster than Bun.spawn([\"/bin/true\"])",
    measured: `${vsSpawn.toFixed(2)}x as fast (Bun.spawn's median ${fmtMicros(spawn.stats.median)} over the fork's ${fmtMicros(bun.stats.median)}; below 1 means slower; the floor server of this size: ${(spawn.stats.median / floor.stats.median).toFixed(2)}x)`,
    met: vsSpawn >= 3,
  },
];

finish(
  {
    id: "fork",
    title: "1. Native child round trip",
    description: "One iteration: fork a child whose entry calls _exit(0), and wait until its exit is known to the caller.",
    rows,
    targets,
    charts: [
      {
        title: "1. Native child round trip (fork → exit known)",
        unit: "µs",
        better: "lower",
        bars: rows.map((row) => ({ label: row.label, value: row.stats!.median, whisker: row.stats!.p99, role: row.role })),
      },
    ],
    notes: [
      `Bun RSS while measuring: ${bun.extra.rssKiB} KiB (anonymous ${bun.extra.anonKiB} KiB); the server's RSS: ${bun.extra.serverRssKiB} KiB. The C baselines were grown to the same shape: ${cFork.extra.rssKiB} KiB resident, ${cFork.extra.anonKiB} KiB of it anonymous (the rest: pages of Bun's executable).`,
      `Phases of the Bun round trip (medians): server.fork() returns after ${fmtMicros(summarize(callMicros).median)} (the JS thread's share), the pid is known after ${fmtMicros(summarize(startedMicros).median)}, the exit after ${fmtMicros(bun.stats.median)}.`,
      `libforks from C is ${(cLib.stats.median / cFork.stats.median).toFixed(2)}x raw fork; from Bun ${(bun.stats.median / cLib.stats.median).toFixed(2)}x libforks from C.`,
    ],
  },
  startedAt,
);
