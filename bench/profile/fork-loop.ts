// Profiling helper (not part of the suite): a tight loop of case 1's round
// trip, for `perf record` or `perf trace`. Usage:
//   bun bench/profile/fork-loop.ts [iterations]
// Prints the parent's and the server's pids first, then per-phase medians
// (fork() returned, pid known, exit known).

import { ForkServer } from "../../src/index.ts";
import { compileEntries } from "../lib/bench.ts";
import { summarize } from "../lib/stats.ts";

const iterations = Number(process.argv[2] ?? 3000);
const entries = compileEntries();
await using server = ForkServer.start();
console.error(`parent ${process.pid} server ${server.pid}`);
const call: number[] = [];
const started: number[] = [];
const exited: number[] = [];
for (let i = 0; i < iterations; i++) {
  const t0 = Bun.nanoseconds();
  const child = server.fork(entries.bench_exit_now);
  const t1 = Bun.nanoseconds();
  await child.started;
  const t2 = Bun.nanoseconds();
  await child.exited;
  const t3 = Bun.nanoseconds();
  call.push((t1 - t0) / 1000);
  started.push((t2 - t0) / 1000);
  exited.push((t3 - t0) / 1000);
}
const show = (name: string, s: number[]) => {
  const x = summarize(s);
  console.log(`${name.padEnd(28)} median ${x.median.toFixed(0)} µs  p99 ${x.p99.toFixed(0)} µs`);
};
show("server.fork() returned", call);
show("child.started resolved", started);
show("child.exited resolved", exited);
