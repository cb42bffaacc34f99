// Profiling helper (not part of the suite): a loop of case 2's
// server.spawn(["/bin/true"]) round trip, with the time until spawn()
// returned (the JS thread is blocked until the program exec'd) and until
// the exit is known. Usage: bun bench/profile/spawn-loop.ts [iterations]

import { ForkServer } from "../../src/index.ts";
import { summarize } from "../lib/stats.ts";

const iterations = Number(process.argv[2] ?? 1000);
await using server = ForkServer.start();
console.error(`parent ${process.pid} server ${server.pid}`);
const call: number[] = [];
const exited: number[] = [];
const noChannel: number[] = [];
for (let i = 0; i < iterations; i++) {
  const t0 = Bun.nanoseconds();
  const child = server.spawn(["/bin/true"]);
  const t1 = Bun.nanoseconds();
  await child.exited;
  const t2 = Bun.nanoseconds();
  call.push((t1 - t0) / 1000);
  exited.push((t2 - t0) / 1000);
  const t3 = Bun.nanoseconds();
  await server.spawn(["/bin/true"], { channel: false }).exited;
  noChannel.push((Bun.nanoseconds() - t3) / 1000);
}
const show = (name: string, s: number[]) => {
  const x = summarize(s);
  console.log(`${name.padEnd(34)} median ${x.median.toFixed(0)} µs  p99 ${x.p99.toFixed(0)} µs`);
};
show("server.spawn() returned", call);
show("child.exited resolved", exited);
show("same, channel: false", noChannel);
