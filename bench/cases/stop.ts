// Case 8: stop() with 1,000 running children. A server forks 1,000
// children that stay alive (pause), every child.started resolves, then one
// `await server.stop()` is timed: SIGTERM to the tree, every exit reaped
// and reported, the server gone. Against what the kernel alone needs for
// the same children: C SIGKILL of each + waitpid of each. For the
// snapshot's children that is measured on the very same kind of process:
// a native entry in a child of the server (a copy of this Bun process)
// forks 1,000 copies of itself and kills and reaps them
// (bench_kill_reap); a C program of this process's shape (fork_wait
// --burst) is shown too. A clean server's tiny children (libc `pause`)
// are compared the same way: the same entry, built as a shared library
// (zig cc), run in a clean server's child, kills and reaps 1,000 copies of
// that child; and a tiny C process's children. The library's own stop from C
// (libforks_fork --burst --stop) splits Bun's share from the server's.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ForkServer } from "../../src/index.ts";
import { BENCH_DIR, bunShape, compileEntries, finish, fmt, interleave, log, now, pick, runNative } from "../lib/bench.ts";
import { memoryOf } from "../lib/proc.ts";
import type { Row, Target } from "../lib/result.ts";

const startedAt = now();
const entries = compileEntries();
const children = 1000;
const rounds = pick(4, 2);

async function bunStop(mode: "snapshot" | "clean"): Promise<{ samples: number[]; elapsedSeconds: number; extra: Record<string, number> }> {
  const server = ForkServer.start({ mode });
  const forked = [];
  for (let i = 0; i < children; i++) {
    forked.push(mode === "clean" ? server.fork({ library: "libc.so.6", symbol: "pause" }) : server.fork(entries.bench_pause));
  }
  await Promise.all(forked.map((child) => child.started));
  const childRss = memoryOf(forked[0]!.pid).rssKiB;
  const t0 = now();
  await server.stop();
  const micros = (now() - t0) / 1000;
  // Every exit was reported: each child's exited settles (resolves with
  // its SIGTERM) by the time stop() resolved.
  const settled = await Promise.allSettled(forked.map((child) => child.exited));
  const reported = settled.filter((s) => s.status === "fulfilled").length;
  if (reported !== children) throw new Error(`only ${reported} of ${children} exits reported after stop()`);
  return { samples: [micros], elapsedSeconds: micros / 1e6, extra: { childRssKiB: childRss } };
}

/** entries.c as a shared library, for a clean server's children. */
function entriesLibrary(): string {
  const dir = join(BENCH_DIR, "results", "tmp");
  mkdirSync(dir, { recursive: true });
  const out = join(dir, "bench-entries.so");
  const build = Bun.spawnSync(["python3", "-m", "ziglang", "cc", "-shared", "-fPIC", "-O2", "-o", out, join(BENCH_DIR, "native", "cc", "entries.c")], { stderr: "inherit" });
  if (build.exitCode !== 0) throw new Error("cannot build bench-entries.so with zig cc");
  return out;
}
const library = entriesLibrary();

/** SIGKILL + waitpid of 1,000 copies of a child of a `mode` server, timed
 * in such a child (bench_kill_reap). */
async function sameChildrenKillReap(mode: "snapshot" | "clean"): Promise<{ samples: number[]; elapsedSeconds: number }> {
  const server = ForkServer.start({ mode });
  try {
    const entry = mode === "clean" ? { library, symbol: "bench_kill_reap" } : entries.bench_kill_reap;
    const child = server.fork(entry, { socket: true });
    const message = await child.channel!.receive();
    const event = await child.exited;
    child.channel!.close();
    if (!message || event.exitCode !== 0) throw new Error(`bench_kill_reap failed: ${event}`);
    const micros = Number(new TextDecoder().decode(message.data as Uint8Array)) / 1000;
    return { samples: [micros], elapsedSeconds: micros / 1e6 };
  } finally {
    await server.stop();
  }
}

function nativeStop(name: string, args: () => Record<string, number | string>, field: string) {
  return async () => {
    const result = await runNative(name, { ...args(), burst: children });
    const micros = Number(result[field]) / 1000;
    return { samples: [micros], elapsedSeconds: micros / 1e6 };
  };
}

log(`${rounds} round(s), ${fmt(children)} children each`);
const shape = bunShape();
const m = await interleave(rounds, [
  { name: "bun_snapshot", slice: () => bunStop("snapshot") },
  { name: "same_kill_reap", slice: () => sameChildrenKillReap("snapshot") },
  { name: "c_kill_reap", slice: nativeStop("fork_wait", () => shape, "reap_ns") },
  { name: "c_libforks_stop", slice: nativeStop("libforks_fork", () => ({ ...shape, stop: 1 }), "stop_ns") },
  { name: "bun_clean", slice: () => bunStop("clean") },
  { name: "same_kill_reap_clean", slice: () => sameChildrenKillReap("clean") },
  { name: "c_kill_reap_tiny", slice: nativeStop("fork_wait", () => ({}), "reap_ns") },
]);

const get = (name: string) => m.get(name)!;
const ms = (name: string) => get(name).stats.median / 1000;
const snapshot = ms("bun_snapshot");
const kernel = ms("same_kill_reap");
const shaped = ms("c_kill_reap");
const fromC = ms("c_libforks_stop");
const clean = ms("bun_clean");
const tinyProcess = ms("c_kill_reap_tiny");
const tiny = ms("same_kill_reap_clean");
const msRow = (label: string, name: string, role: Row["role"]): Row => {
  const s = get(name).stats;
  const scale = (v: number) => v / 1000;
  return {
    label,
    role,
    unit: "ms",
    stats: { ...s, median: scale(s.median), p99: scale(s.p99), mean: scale(s.mean), min: scale(s.min), max: scale(s.max) },
    extra: get(name).extra,
  };
};
const rows: Row[] = [
  msRow(`await server.stop(), ${fmt(children)} snapshot children (Bun-sized)`, "bun_snapshot", "libforks"),
  msRow(`libforks_stop from C, ${fmt(children)} Bun-sized children`, "c_libforks_stop", "libforks"),
  msRow(`C SIGKILL + waitpid, ${fmt(children)} copies of a snapshot child (the same children)`, "same_kill_reap", "baseline"),
  msRow(`C SIGKILL + waitpid, ${fmt(children)} children of a C process of Bun's shape`, "c_kill_reap", "baseline"),
  msRow(`await server.stop(), clean server, ${fmt(children)} tiny children`, "bun_clean", "libforks"),
  msRow(`C SIGKILL + waitpid, ${fmt(children)} copies of a clean server's child (the same children)`, "same_kill_reap_clean", "baseline"),
  msRow(`C SIGKILL + waitpid, ${fmt(children)} children of a tiny C process`, "c_kill_reap_tiny", "baseline"),
];
const ratio = (a: number, b: number) => a / b;
const targets: Target[] = [
  {
    text: "Case 8: stop() with 1,000 children <= 1.5x the C SIGKILL+reap baseline",
    measured: `snapshot children: ${fmt(snapshot, 1)} ms vs ${fmt(kernel, 1)} ms for the same children (${fmt(ratio(snapshot, kernel), 2)}x; a C process of Bun's shape: ${fmt(shaped, 1)} ms; libforks_stop from C of its children: ${fmt(fromC, 1)} ms, ${fmt(ratio(fromC, shaped), 2)}x that); tiny: ${fmt(clean, 1)} ms vs ${fmt(tiny, 1)} ms for the same children (${fmt(ratio(clean, tiny), 2)}x; a tiny C process's: ${fmt(tinyProcess, 1)} ms)`,
    met: ratio(snapshot, kernel) <= 1.5 && ratio(clean, tiny) <= 1.5,
    note: "median of the rounds; stop() sends SIGTERM (children that ignore it get SIGKILL after the grace period), the baseline SIGKILL",
  },
];

finish(
  {
    id: "stop",
    title: "8. stop() with 1,000 children",
    description: `${fmt(children)} children alive (pause), every child.started resolved, then one await server.stop() timed (every exit reported, the server gone); against C kill(SIGKILL) + waitpid of as many children of a process of the same shape. ${rounds} round(s), median.`,
    rows,
    targets,
    charts: [
      {
        title: `8. Stopping ${fmt(children)} children`,
        unit: "ms",
        better: "lower",
        bars: rows.map((row) => ({ label: row.label.replace(/, 1,000.*/, ""), value: row.stats!.median, role: row.role })),
      },
    ],
    notes: [`Bun process at the start: ${shape["rss-kib"]} KiB resident, ${shape["anon-kib"]} KiB anonymous; a snapshot child's RSS: ${get("bun_snapshot").extra.childRssKiB} KiB.`],
  },
  startedAt,
);
