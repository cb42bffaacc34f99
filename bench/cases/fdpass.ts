// Case 5: fd passing. Round trips of Channel.send with one fd (a pipe's
// write end) from Bun to a child that sends it straight back, received with
// Channel.receive and closed. Two children: a native one (forked, entry
// bench_echo_fds from bench/native/cc/entries.c, raw recvmsg/sendmsg) and a
// spawned Bun echo worker (bench/cases/workers/echo.ts). Baseline: a C pair
// doing the same with sendmsg/recvmsg over a SOCK_SEQPACKET socketpair.

import { closeSync } from "node:fs";
import { join } from "node:path";
import { ForkServer, pipe } from "../../src/index.ts";
import type { Channel } from "../../src/index.ts";
import { BENCH_DIR, compileEntries, finish, fmt, interleave, log, nativeSlice, now, pick, timeLoop } from "../lib/bench.ts";
import type { Row, Target } from "../lib/result.ts";

const startedAt = now();
const entries = compileEntries();
await using server = ForkServer.start();

const rounds = pick(5, 3);
const iterations = pick(2000, 1000);
const warmup = pick(200, 20);

const [, passed] = pipe();
const payload = new Uint8Array(8).fill(7);

async function roundTrip(channel: Channel): Promise<void> {
  await channel.send(payload, { fds: [passed] });
  const message = await channel.receive();
  if (message === null || message.fds.length !== 1) throw new Error("the echo child did not send the fd back");
  for (const fd of message.fds) closeSync(fd);
}

const native = server.fork(entries.bench_echo_fds, { socket: true });
const worker = server.spawn([process.execPath, join(BENCH_DIR, "cases", "workers", "echo.ts")]);
const ready = await worker.channel!.receive();
if (ready === null || new TextDecoder().decode(ready.data) !== "ready") throw new Error("the echo worker did not start");

log(`${rounds} rounds × ${iterations} round trips (+${warmup} warm-up) per contender`);
const m = await interleave(rounds, [
  { name: "native", slice: () => timeLoop(() => roundTrip(native.channel!), { warmup, iterations }) },
  { name: "worker", slice: () => timeLoop(() => roundTrip(worker.channel!), { warmup, iterations }) },
  { name: "c_pair", slice: nativeSlice("fdpass_pair", () => ({ warmup, iterations })) },
]);
native.channel!.close();
worker.channel!.close();
await Promise.all([native.exited, worker.exited]);
closeSync(passed);

const nat = m.get("native")!;
const wrk = m.get("worker")!;
const c = m.get("c_pair")!;
const rows: Row[] = [
  { label: "Channel.send + receive, 1 fd, native child", role: "libforks", unit: "µs", stats: nat.stats, rate: nat.rate },
  { label: "Channel.send + receive, 1 fd, Bun worker", role: "libforks", unit: "µs", stats: wrk.stats, rate: wrk.rate },
  { label: "sendmsg + recvmsg, 1 fd (C pair)", role: "baseline", unit: "µs", stats: c.stats, rate: c.rate },
];
const nativeRatio = nat.rate / c.rate;
const workerRatio = wrk.rate / c.rate;
const targets: Target[] = [
  {
    text: "Case 5: >= 0.7x the C pair's round trips per second",
    measured: `native child ${nativeRatio.toFixed(2)}x (${fmt(nat.rate)}/s vs ${fmt(c.rate)}/s); Bun worker ${workerRatio.toFixed(2)}x (${fmt(wrk.rate)}/s)`,
    met: nativeRatio >= 0.7,
    note: "judged on the native child, the like-for-like comparison (both ends native in the baseline)",
  },
];

finish(
  {
    id: "fdpass",
    title: "5. Fd passing",
    description: "One iteration: send 8 bytes and one fd to the child, receive them back, close the received fd.",
    rows,
    targets,
    charts: [
      {
        title: "5. Fd passing round trips per second",
        unit: "/s",
        better: "higher",
        bars: rows.map((row) => ({ label: row.label, value: row.rate!, role: row.role })),
      },
    ],
    notes: [`Rates are iterations / total measured time; per-round-trip latency median ${fmt(nat.stats.median, 1)} µs (native child), ${fmt(wrk.stats.median, 1)} µs (Bun worker), ${fmt(c.stats.median, 1)} µs (C pair).`],
  },
  startedAt,
);
