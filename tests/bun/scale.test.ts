// Scale: 1,000 concurrent children without stalling the event loop or
// adding threads, and 5,000 fork/exit cycles without leaking fds.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, readdirSync, readFileSync } from "node:fs";
import { ForkServer, pipe, type Child, type Entrypoint } from "../../src/index.ts";
import { buildSharedLibrary, fdCount, fdsOpenedSince, native, openFds, patience, threadCount, within } from "./helpers.ts";

let server: ForkServer;
beforeAll(() => {
  server = ForkServer.start();
});
afterAll(async () => {
  await server.stop();
});

/** [ns on a CPU, ns runnable but waiting for a CPU] of the calling thread
 * (/proc/thread-self/schedstat). */
function schedStat(): [number, number] {
  const [onCpu, waiting] = readFileSync("/proc/thread-self/schedstat", "utf8").split(" ").map(Number);
  return [onCpu!, waiting!];
}

/** Number of processes whose parent is `pid`. */
function childrenOf(pid: number): number {
  let count = 0;
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) count++;
    } catch {
      // exited meanwhile
    }
  }
  return count;
}

/** Samples event-loop lag (how late a 5 ms interval fires) and the thread
 * count until stopped. The lag is also measured net of the time the thread
 * was runnable but had no CPU: on a loaded machine the scheduler, not this
 * process, causes that part. */
function startLagMonitor() {
  const started = performance.now();
  let last = started;
  let [lastCpu, lastWait] = schedStat();
  let maxLag = 0;
  let maxOwnLag = 0;
  let worst = "";
  let maxThreads = threadCount();
  let ticks = 0;
  let paused = false;
  const timer = setInterval(() => {
    if (paused) return;
    const now = performance.now();
    const [cpu, wait] = schedStat();
    const lag = now - last - 5;
    const waited = (wait - lastWait) / 1e6;
    maxLag = Math.max(maxLag, lag);
    if (lag - waited > maxOwnLag) {
      maxOwnLag = lag - waited;
      worst = `${lag.toFixed(1)} ms late at +${(last - started).toFixed(0)} ms: ${((cpu - lastCpu) / 1e6).toFixed(1)} ms on a CPU, ${waited.toFixed(1)} ms waiting for one`;
    }
    last = now;
    lastCpu = cpu;
    lastWait = wait;
    ticks++;
    if (ticks % 4 === 0) maxThreads = Math.max(maxThreads, threadCount());
  }, 5);
  return {
    /** Stops sampling while the test does slow synchronous work of its own. */
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
      last = performance.now();
      [lastCpu, lastWait] = schedStat();
    },
    stop() {
      clearInterval(timer);
      return { maxLag, maxOwnLag, worst, maxThreads, ticks };
    },
  };
}

describe("scale", () => {
  test("1,000 concurrent children all resolve; the event loop keeps running", async () => {
    // Warm up (doorbell, its thread) so only what 1,000 children add counts.
    await server.fork(native.exit0).exited;
    // A full collection first: Bun starts its HeapHelper threads at its
    // first GC, which would otherwise count as threads we added.
    Bun.gc(true);
    const threadsBefore = threadCount();
    const [release, releaseWrite] = pipe();
    const monitor = startLagMonitor();
    const started = performance.now();
    const children: Child[] = [];
    try {
      for (let batch = 0; batch < 20; batch++) {
        for (let i = 0; i < 50; i++) children.push(server.fork(native.wait_for_release, { fds: [release] }));
        await Bun.sleep(0);
      }
      const forked = performance.now() - started;
      await within(Promise.all(children.map((c) => c.started)), 20000, "1,000 forks");
      const running = performance.now() - started;
      // All 1,000 are alive at once (reading /proc is slow: not measured).
      monitor.pause();
      expect(childrenOf(server.pid)).toBeGreaterThanOrEqual(1000);
      expect(children.some((c) => c.exit !== null)).toBe(false);
      monitor.resume();
      closeSync(releaseWrite); // they all exit now
      const events = await within(Promise.all(children.map((c) => c.exited)), 20000, "1,000 exits");
      const elapsed = performance.now() - started;
      const { maxLag, maxOwnLag, worst, maxThreads, ticks } = monitor.stop();
      const threadsAfter = threadCount();

      expect(events.length).toBe(1000);
      expect(events.every((e) => e.exitCode === 0 && e.signal === null)).toBe(true);
      expect(new Set(events.map((e) => e.pid)).size).toBe(1000);
      expect(new Set(children.map((c) => c.pid))).toEqual(new Set(events.map((e) => e.pid)));
      console.log(
        `1,000 children: fork calls took ${forked.toFixed(0)} ms, all running after ${running.toFixed(0)} ms, ` +
          `all exited after ${elapsed.toFixed(0)} ms; max event-loop lag ${maxLag.toFixed(1)} ms ` +
          `(${maxOwnLag.toFixed(1)} ms not counting waits for a CPU) over ${ticks} ticks; ` +
          `threads ${threadsBefore} -> max ${maxThreads} -> ${threadsAfter}; worst tick: ${worst}`,
      );
      expect(ticks).toBeGreaterThan(10);
      // The lag figure is judged in bench/ (case 4); here the bound only
      // catches a call that blocks the loop (each fork or exit handled
      // synchronously would stall it for seconds), not a slow machine.
      // Five times longer under qemu-user, as every such limit: the
      // emulator itself stops all threads of a process for some of its
      // own work, time that counts as neither running nor waiting for a
      // CPU (2.2 s once in a linux-arm64 run).
      expect(maxOwnLag).toBeLessThan(patience(1000));
      expect(maxThreads - threadsBefore).toBeLessThanOrEqual(4);
      expect(threadsAfter - threadsBefore).toBeLessThanOrEqual(4);
    } finally {
      monitor.stop();
      closeSync(release);
      try {
        closeSync(releaseWrite);
      } catch {}
      for (const child of children) child.channel?.close();
    }
  }, patience(60000));

  test("5,000 fork/exit cycles leave the fd count at its baseline", async () => {
    // 1,000 on the snapshot server, 4,000 on a clean one: a fork of a copy of
    // this process costs ~1-2 ms (its page tables), a clean server's far
    // less, and what is checked here, this process's fds, is the same.
    await using clean = ForkServer.start({ mode: "clean" });
    const library = buildSharedLibrary();
    await server.fork(native.exit0).exited; // warm-up
    await clean.fork({ library, symbol: "lib_exit0" }).exited;
    const baseline = fdCount();
    const before = openFds();
    const started = performance.now();
    const [spareRead, spareWrite] = pipe();
    let exited = 0;
    for (let round = 0; round < 20; round++) {
      const children: Child[] = [];
      for (let i = 0; i < 250; i++) {
        const snapshot = round < 4;
        const target = snapshot ? server : clean;
        const entry: Entrypoint = snapshot ? native.exit0 : { library, symbol: "lib_exit0" };
        // Mixed kinds: plain, with a socket, with fds passed (to an entry that
        // reads them: see fork.test.ts for one that does not).
        if (i % 10 === 1) children.push(target.fork(entry, { socket: true }));
        else if (i % 10 === 2) {
          const reader: Entrypoint = snapshot ? native.read_fds_exit0 : { library, symbol: "lib_read_fds_exit0" };
          children.push(target.fork(reader, { fds: [spareRead, spareWrite] }));
        } else children.push(target.fork(entry));
        if (i % 50 === 49) await Bun.sleep(0);
      }
      const events = await within(Promise.all(children.map((c) => c.exited)), 20000, `round ${round}`);
      exited += events.filter((e) => e.exitCode === 0).length;
      for (const child of children) child.channel?.close();
    }
    expect(exited).toBe(5000);
    closeSync(spareRead);
    closeSync(spareWrite);
    await Bun.sleep(20);
    expect(fdsOpenedSince(before)).toEqual([]);
    expect(fdCount()).toBeLessThanOrEqual(baseline);
    console.log(`5,000 fork/exit cycles in ${(performance.now() - started).toFixed(0)} ms; fds ${baseline} -> ${fdCount()}`);
  }, patience(60000));
});
