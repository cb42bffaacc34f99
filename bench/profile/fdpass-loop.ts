// Profiling helper (not part of the suite): case 5's round trip to the
// native echo child in a loop. Usage: bun bench/profile/fdpass-loop.ts [n]

import { closeSync } from "node:fs";
import { ForkServer, pipe } from "../../src/index.ts";
import { compileEntries } from "../lib/bench.ts";
import { summarize } from "../lib/stats.ts";

const n = Number(process.argv[2] ?? 20000);
const entries = compileEntries();
await using server = ForkServer.start();
const child = server.fork(entries.bench_echo_fds, { socket: true });
const channel = child.channel!;
const [, passed] = pipe();
const payload = new Uint8Array(8);
const samples: number[] = [];
const start = Bun.nanoseconds();
for (let i = 0; i < n; i++) {
  const t0 = Bun.nanoseconds();
  await channel.send(payload, { fds: [passed] });
  const message = await channel.receive();
  for (const fd of message!.fds) closeSync(fd);
  samples.push((Bun.nanoseconds() - t0) / 1000);
}
const seconds = (Bun.nanoseconds() - start) / 1e9;
const s = summarize(samples);
console.log(`round trip median ${s.median.toFixed(1)} µs, p99 ${s.p99.toFixed(0)} µs, ${(n / seconds).toFixed(0)}/s`);
channel.close();
await child.exited;
