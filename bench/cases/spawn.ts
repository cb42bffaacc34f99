// Case 2: running a program. server.spawn(["/bin/true"]) vs
// Bun.spawn(["/bin/true"]) vs node:child_process spawn under Bun, each
// awaited until the program's exit is known. Each is called as a user
// would, with its defaults (server.spawn and Bun.spawn: stdout piped,
// stdin ignored, stderr inherited, and server.spawn's channel;
// child_process: three pipes), from a snapshot and a clean server. C posix_spawn +
// waitpid from a Bun-sized process is shown for reference, and so is a
// probe of a design without the server hop (bench/lib/handover.ts).

import { spawn as nodeSpawn } from "node:child_process";
import { once } from "node:events";
import { ForkServer } from "../../src/index.ts";
import { startHandover } from "../lib/handover.ts";
import { bunShape, finish, fmtMicros, interleave, log, nativeSlice, now, pick, timeLoop } from "../lib/bench.ts";
import type { Row, Target } from "../lib/result.ts";

const startedAt = now();
await using server = ForkServer.start();
await using clean = ForkServer.start({ mode: "clean" });
const handover = startHandover();

const rounds = pick(5, 3);
const iterations = pick(300, 120);
const warmup = pick(30, 15);
log(`${rounds} rounds × ${iterations} iterations (+${warmup} warm-up) per contender`);

const m = await interleave(rounds, [
  {
    name: "server_spawn",
    slice: () =>
      timeLoop(
        async () => {
          // The default channel is this process's to close: left open,
          // one socket per child would pile up in the fd table, and
          // Bun.spawn's own cost grows with it.
          const child = server.spawn(["/bin/true"]);
          await child.exited;
          child.channel?.close();
        },
        { warmup, iterations },
      ),
  },
  {
    name: "clean_spawn",
    slice: () =>
      timeLoop(
        async () => {
          const child = clean.spawn(["/bin/true"]);
          await child.exited;
          child.channel?.close();
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
  {
    name: "node_spawn",
    slice: () =>
      timeLoop(
        async () => {
          const child = nodeSpawn("/bin/true");
          await once(child, "exit");
        },
        { warmup, iterations },
      ),
  },
  {
    name: "handover",
    slice: () =>
      timeLoop(
        async () => {
          await handover.run(["/bin/true"]);
        },
        { warmup, iterations },
      ),
  },
  { name: "c_posix_spawn", slice: nativeSlice("spawn_true", () => ({ ...bunShape(), warmup, iterations })) },
]);

const server_ = m.get("server_spawn")!;
const cleanSpawn = m.get("clean_spawn")!;
const bun = m.get("bun_spawn")!;
const node = m.get("node_spawn")!;
const c = m.get("c_posix_spawn")!;
const probe = m.get("handover")!;
await handover.close();
const rows: Row[] = [
  { label: 'server.spawn(["/bin/true"]) → exited', role: "libforks", unit: "µs", stats: server_.stats, rate: server_.rate },
  { label: 'clean server: server.spawn(["/bin/true"]) → exited', role: "libforks", unit: "µs", stats: cleanSpawn.stats, rate: cleanSpawn.rate },
  { label: 'Bun.spawn(["/bin/true"]) → exited', role: "baseline", unit: "µs", stats: bun.stats, rate: bun.rate },
  { label: 'child_process.spawn("/bin/true") → exit', role: "baseline", unit: "µs", stats: node.stats, rate: node.rate },
  { label: "probe: posix_spawn here, supervision handed over (pidfd)", role: "probe", unit: "µs", stats: probe.stats, rate: probe.rate },
  { label: "posix_spawn + waitpid (C, Bun-sized)", role: "baseline", unit: "µs", stats: c.stats, rate: c.rate, extra: c.extra },
];
const vsBun = server_.stats.median / bun.stats.median;
const cleanVsBun = cleanSpawn.stats.median / bun.stats.median;
const targets: Target[] = [
  {
    text: "Case 2: server.spawn at least as fast as Bun.spawn, from snapshot and clean servers",
    measured:
      `snapshot: ${vsBun.toFixed(2)}x Bun.spawn's time (median ${fmtMicros(server_.stats.median)} vs ${fmtMicros(bun.stats.median)}); ` +
      `clean: ${cleanVsBun.toFixed(2)}x (${fmtMicros(cleanSpawn.stats.median)})`,
    met: vsBun <= 1 && cleanVsBun <= 1,
    note:
      `one server hop each way is the cost; the probe of a design without it (the program started here with posix_spawn, ` +
      `its pidfd handed to a supervisor that reports its end) measured ${(probe.stats.median / bun.stats.median).toFixed(2)}x Bun.spawn's time in the same rounds`,
  },
];

finish(
  {
    id: "spawn",
    title: "2. Running a program",
    description: "One iteration: start /bin/true and wait until its exit is known.",
    rows,
    targets,
    charts: [
      {
        title: "2. Running /bin/true (start → exit known)",
        unit: "µs",
        better: "lower",
        bars: rows.map((row) => ({ label: row.label, value: row.stats!.median, whisker: row.stats!.p99, role: row.role })),
      },
    ],
    notes: [`child_process.spawn is ${(node.stats.median / bun.stats.median).toFixed(2)}x Bun.spawn's time.`],
  },
  startedAt,
);
