// Bun Workers: each starts its own fork server (and gets its own doorbell)
// and forks children concurrently with the others.

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ForkServer } from "../../src/index.ts";
import { lib } from "../../src/native.ts";
import { eventually, fdCount, fixtures, native, patience, pointerOf, processExited, within } from "./helpers.ts";

interface Report {
  error?: string;
  serverPid: number;
  pids: number[];
  exitCodes: (number | null)[];
  eventPids: number[];
  waitedCode: number | null;
}

function runWorker(count: number): { worker: Worker; report: Promise<Report> } {
  const worker = new Worker(join(fixtures, "fork-worker.ts"));
  const report = new Promise<Report>((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<Report>) => resolve(event.data);
    worker.onerror = (event) => reject(new Error(`worker error: ${(event as ErrorEvent).message}`));
  });
  worker.postMessage({ entry: pointerOf(native.exit7), count });
  return { worker, report };
}

/** Processes and threads the kernel has made since boot (/proc/stat's
 * "processes": each took a pid); Infinity when unreadable. */
function pidsHandedOut(): number {
  const match = /^processes (\d+)$/m.exec(readFileSync("/proc/stat", "latin1"));
  return match ? Number(match[1]) : Number.POSITIVE_INFINITY;
}

function pidMax(): number {
  return Number(readFileSync("/proc/sys/kernel/pid_max", "latin1"));
}

describe("Workers", () => {
  test("8 Workers x 500 forks on ONE server shared with share()/attach()", async () => {
    const pidsBefore = pidsHandedOut();
    await using server = ForkServer.start();
    const workers = Array.from({ length: 8 }, () => new Worker(join(fixtures, "shared-worker.ts")));
    try {
      const reports = await within(
        Promise.all(
          workers.map(
            (worker) =>
              new Promise<Report & { stopError: string }>((resolve, reject) => {
                worker.onmessage = (event) => resolve(event.data);
                worker.onerror = (event) => reject(new Error(`worker error: ${(event as ErrorEvent).message}`));
                worker.postMessage({ token: server.share(), entry: pointerOf(native.exit7), count: 500 });
              }),
          ),
        ),
        60000,
        "worker reports",
      );
      for (const report of reports) {
        expect(report.error).toBeUndefined();
        expect(report.serverPid).toBe(server.pid);
        expect(report.exitCodes).toEqual(Array(500).fill(7));
        expect(report.eventPids).toEqual(report.pids);
        expect(report.stopError).toBe("NOT_OWNER"); // an attached server cannot stop it
      }
      // Every event delivered once: 4,000 distinct children, unless the
      // kernel gave one pid twice. It can only after handing out about
      // pid_max pids in between: under qemu-user, where each emulated
      // process takes several (the emulator's threads), about 30,000 in
      // this test; or with a busy machine. Each Worker's events matching
      // its own forks (above) holds either way.
      const distinct = new Set(reports.flatMap((r) => r.pids)).size;
      const handedOut = pidsHandedOut() - pidsBefore;
      console.log(`${handedOut} pids handed out during the test`);
      if (handedOut < pidMax() / 2) expect(distinct).toBe(4000);
      else console.log(`${distinct} distinct pids among 4,000 children; ${handedOut} pids handed out meanwhile (pid_max ${pidMax()}), so pids may repeat: not compared`);
      // The Workers released their handles; the server still serves us.
      expect((await server.fork(native.exit7).exited).exitCode).toBe(7);
    } finally {
      for (const worker of workers) worker.terminate();
    }
  }, patience(90000));

  test("a share() token only works in the process that made it", () => {
    expect(() => ForkServer.attach({ kind: "libforks-server", handle: "12345", owner: process.pid + 1, server: 1, clean: false })).toThrow(
      "only works in that process",
    );
    expect(() => ForkServer.attach({} as never)).toThrow("token");
  });

  test("share() tokens: forged, reused or stale ones are refused, never dereferenced", async () => {
    const run = Bun.spawnSync([process.execPath, join(fixtures, "forged-token.ts")], { stdout: "pipe", stderr: "pipe", timeout: 20000 });
    expect(run.signalCode ?? null).toBeNull(); // no SIGSEGV
    expect(run.exitCode).toBe(0);
    const result = JSON.parse(run.stdout.toString());
    for (const [handle, outcome] of Object.entries(result.forged)) expect(`${handle}: ${outcome}`).toBe(`${handle}: INVALID_ARGUMENT`);
    expect(result.again).toBe("INVALID_ARGUMENT"); // attached once only
    expect(result.byHand).toBe("INVALID_ARGUMENT");
    expect(result.exitCode).toBe(7);
    expect(result.afterStop).toBe("INVALID_ARGUMENT");
  });

  test("4 Workers each fork 100 children on their own server", async () => {
    const runs = Array.from({ length: 4 }, () => runWorker(100));
    try {
      const reports = await within(Promise.all(runs.map((r) => r.report)), 25000, "worker reports");
      for (const report of reports) {
        expect(report.error).toBeUndefined();
        expect(report.exitCodes).toEqual(Array(100).fill(7));
        expect(report.eventPids).toEqual(report.pids);
        expect(new Set(report.pids).size).toBe(100);
        expect(report.waitedCode).toBe(7);
      }
      // Four servers, 400 distinct children.
      expect(new Set(reports.map((r) => r.serverPid)).size).toBe(4);
      expect(new Set(reports.flatMap((r) => r.pids)).size).toBe(400);
      expect(reports.map((r) => r.serverPid)).not.toContain(process.pid);
    } finally {
      for (const { worker } of runs) worker.terminate();
    }
  }, patience(30000));

  test("a Worker and the main thread fork at the same time", async () => {
    await using server = ForkServer.start();
    const run = runWorker(50);
    try {
      const mine = Array.from({ length: 50 }, () => server.fork(native.exit7));
      const [report, events] = await within(Promise.all([run.report, Promise.all(mine.map((c) => c.exited))]), 20000, "both");
      expect(report.error).toBeUndefined();
      expect(report.exitCodes).toEqual(Array(50).fill(7));
      expect(events.map((e) => e.exitCode)).toEqual(Array(50).fill(7));
      expect(report.serverPid).not.toBe(server.pid);
    } finally {
      run.worker.terminate();
    }
  }, patience(30000));

  // Before the tests that need fresh doorbells: on failure it leaves none.
  test("100 Workers terminated mid-wait leave no fd, doorbell or process; then the main thread forks and stops", async () => {
    // The readiness thread's own fd lives as long as the process: made
    // before the baseline.
    const warm = new Int32Array(1);
    expect(lib.libforks_doorbell_open(warm)).toBe(0);
    lib.libforks_doorbell_close(warm[0]!);
    const fdsBefore = fdCount();
    const server = ForkServer.start();
    const reports: { serverPid: number; childPid: number }[] = [];
    const entry = pointerOf(native.sleep_long);
    // Ten at a time; every other one forks on the main thread's server.
    for (let round = 0; round < 10; round++) {
      await within(
        Promise.all(
          Array.from({ length: 10 }, async (_, i) => {
            const worker = new Worker(join(fixtures, "waiting-worker.ts"));
            const closed = new Promise((resolve) => worker.addEventListener("close", resolve));
            const report = await new Promise<{ error?: string; serverPid: number; childPid: number }>((resolve, reject) => {
              worker.onmessage = (event) => resolve(event.data);
              worker.onerror = (event) => reject(new Error(`worker error: ${(event as ErrorEvent).message}`));
              worker.postMessage({ entry, token: i % 2 === 0 ? server.share() : undefined });
            });
            expect(report.error).toBeUndefined();
            reports.push(report);
            worker.terminate(); // while it waits for its child
            await closed;
          }),
        ),
        30000,
        `round ${round}`,
      );
    }
    // The main thread still forks, waits and stops.
    expect((await within(server.fork(native.exit7).exited, 5000, "main thread's fork")).exitCode).toBe(7);
    await within(server.stop(), 5000, "stop");
    // Every Worker's server and every child is gone: the Workers' own
    // servers went with their threads, the shared server's children with
    // its stop.
    const pids = reports.flatMap((r) => (r.serverPid === server.pid ? [r.childPid] : [r.serverPid, r.childPid]));
    expect(pids.length).toBe(150);
    expect(await eventually(() => pids.every(processExited), 5000)).toBe(true);
    // No fd left: each Worker's doorbell, exit fds, channels and
    // connection were closed with its thread.
    expect(await eventually(() => fdCount() <= fdsBefore, 3000)).toBe(true);
    // Every doorbell slot is free again (this thread's own is closed once
    // idle, so all 64 may be taken).
    const opened: number[] = [];
    const out = new Int32Array(1);
    while (opened.length < 64 && lib.libforks_doorbell_open(out) === 0) opened.push(out[0]!);
    for (const fd of opened) lib.libforks_doorbell_close(fd);
    expect(opened.length).toBeGreaterThanOrEqual(63);
  }, 120000);

  // Keep last: once it fails, no new Worker in this process can use
  // libforks any more.
  test("70 short-lived Workers in a row (more than the 64 doorbells a process has)", async () => {
    for (let i = 0; i < 70; i++) {
      const worker = new Worker(join(fixtures, "channel-worker.ts"));
      try {
        const answer = await within(
          new Promise<string>((resolve, reject) => {
            worker.onmessage = (event: MessageEvent<string>) => resolve(event.data);
            worker.onerror = (event) => reject(new Error((event as ErrorEvent).message));
            worker.postMessage("go");
          }),
          5000,
          `worker ${i}`,
        );
        expect(`worker ${i}: ${answer}`).toBe(`worker ${i}: ok`);
      } finally {
        worker.terminate();
      }
    }
  }, patience(30000));
});
