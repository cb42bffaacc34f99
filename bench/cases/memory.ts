// Case 6: memory. The server's and a child's proportional set size (Pss,
// /proc/<pid>/smaps_rollup) right after start and after 10,000 forks
// (children that _exit(0) at once, 64 in flight). A second, idle server
// started at the same moment is the control: the server is a copy-on-write
// snapshot of this process, and every page this process writes afterwards
// stops being shared, which raises the server's Pss without the server
// doing anything. The server's fd count is shown too (a leak would grow it).

import { ForkServer } from "../../src/index.ts";
import { compileEntries, finish, fmt, log, now, pick, sleep } from "../lib/bench.ts";
import { fdCount, smapsRollup, type Rollup } from "../lib/proc.ts";
import type { Row, Target } from "../lib/result.ts";

const startedAt = now();
const entries = compileEntries();
await using server = ForkServer.start();
await using idle = ForkServer.start();
const forks = pick(10_000, 2000);
const inFlight = 64;

/** A long-lived child's Pss, measured once it sits in pause(). */
async function childRollup(): Promise<Rollup> {
  const child = server.fork(entries.bench_pause);
  await child.started;
  await sleep(50);
  const rollup = smapsRollup(child.pid);
  child.kill("SIGKILL");
  await child.exited;
  return rollup;
}

await sleep(100);
const serverStart = smapsRollup(server.pid);
const idleStart = smapsRollup(idle.pid);
const bunStart = smapsRollup("self");
const fdsStart = fdCount(server.pid);
const childStart = await childRollup();

log(`${fmt(forks)} forks, ${inFlight} in flight`);
const t0 = now();
let pending: Promise<unknown>[] = [];
for (let i = 0; i < forks; i++) {
  pending.push(server.fork(entries.bench_exit_now).exited);
  if (pending.length >= inFlight) {
    await Promise.all(pending);
    pending = [];
  }
}
await Promise.all(pending);
const forkSeconds = (now() - t0) / 1e9;
await sleep(100);

const serverEnd = smapsRollup(server.pid);
const idleEnd = smapsRollup(idle.pid);
const bunEnd = smapsRollup("self");
const fdsEnd = fdCount(server.pid);
const childEnd = await childRollup();

const memRow = (label: string, role: Row["role"], r: Rollup, extra: Record<string, number | string> = {}): Row => ({
  label,
  role,
  unit: "KiB",
  value: r.pssKiB,
  extra: { rssKiB: r.rssKiB, privateKiB: r.privateKiB, sharedKiB: r.sharedKiB, ...extra },
});
const rows: Row[] = [
  memRow("server Pss at start", "libforks", serverStart, { fds: fdsStart }),
  memRow(`server Pss after ${fmt(forks)} forks`, "libforks", serverEnd, { fds: fdsEnd }),
  memRow("child Pss at start", "libforks", childStart),
  memRow(`child Pss after ${fmt(forks)} forks`, "libforks", childEnd),
  memRow("idle server Pss at start (control)", "baseline", idleStart),
  memRow("idle server Pss at end (control)", "baseline", idleEnd),
  memRow("Bun process Pss at start", "baseline", bunStart),
  memRow("Bun process Pss at end", "baseline", bunEnd),
];

const growth = serverEnd.pssKiB - serverStart.pssKiB;
const idleGrowth = idleEnd.pssKiB - idleStart.pssKiB;
const flatLimit = Math.max(256, serverStart.pssKiB * 0.05);
const targets: Target[] = [
  {
    text: `Case 6: the server's Pss stays flat after ${fmt(forks)} forks`,
    measured: `${fmt(serverStart.pssKiB)} → ${fmt(serverEnd.pssKiB)} KiB (${growth >= 0 ? "+" : ""}${fmt(growth)} KiB; idle control server ${idleGrowth >= 0 ? "+" : ""}${fmt(idleGrowth)} KiB; RSS ${fmt(serverStart.rssKiB)} → ${fmt(serverEnd.rssKiB)} KiB; fds ${fdsStart} → ${fdsEnd})`,
    met: growth - idleGrowth <= flatLimit,
    note: `judged net of the idle control (${growth - idleGrowth >= 0 ? "+" : ""}${fmt(growth - idleGrowth)} KiB): flat = at most max(256 KiB, 5%) = ${fmt(flatLimit)} KiB more than the control, whose growth is this process's pages becoming unshared (copy-on-write), not the server's doing`,
  },
];

finish(
  {
    id: "memory",
    title: "6. Memory",
    description: `Pss (smaps_rollup) of the server, of a child sitting in pause(), of an idle control server and of the Bun process, right after start and after ${fmt(forks)} forks (${fmt(forks / forkSeconds)} forks/s, ${inFlight} in flight).`,
    rows,
    targets,
    charts: [
      {
        title: `6. Proportional set size, at start and after ${fmt(forks)} forks`,
        unit: "MiB",
        better: "lower",
        bars: rows.slice(0, 6).map((row) => ({ label: row.label, value: row.value! / 1024, role: row.role })),
      },
    ],
    notes: [
      `Child Pss ${fmt(childStart.pssKiB)} → ${fmt(childEnd.pssKiB)} KiB (RSS ${fmt(childStart.rssKiB)} → ${fmt(childEnd.rssKiB)} KiB): most of a child's pages are shared with the server.`,
      `Bun process Pss ${fmt(bunStart.pssKiB)} → ${fmt(bunEnd.pssKiB)} KiB over the run.`,
    ],
  },
  startedAt,
);
