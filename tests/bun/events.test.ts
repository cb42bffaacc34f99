// The event stream: one pipe per connection and event loop carries every
// fork's answer and exit. A loop that does not read for a while loses
// nothing (the server keeps what does not fit and pauses the requests),
// a pid read synchronously comes from the same stream, and an idle
// process still exits by itself.

import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { ForkServer } from "../../src/index.ts";
import { native, runProgram, within } from "./helpers.ts";

describe("event stream", () => {
  test("2,000 forks in one synchronous loop: every answer and exit arrives once", async () => {
    await using server = ForkServer.start();
    // The stream holds 256 records: far more than that waits in the
    // server, and the forks past its budget wait here, until this loop reads.
    const children = Array.from({ length: 2000 }, () => server.fork(native.exit7));
    const exits = await within(Promise.all(children.map((child) => child.exited)), 60000, "2,000 exits");
    expect(exits.every((exit) => exit.exitCode === 7)).toBe(true);
    const pids = new Set(exits.map((exit) => exit.pid));
    expect(pids.size).toBe(2000);
    expect(children.every((child, i) => child.pid === exits[i]!.pid)).toBe(true);
  }, 90000);

  test("stop() while this thread reads nothing: every exit queued behind the full stream arrives", async () => {
    const server = ForkServer.start({ mode: "clean" });
    // 600 exits are 150 KiB of records, more than the stream's pipe holds:
    // most of them wait in the server while this thread sleeps, and the
    // server must not end before they were written.
    const children = Array.from({ length: 600 }, () => server.fork({ library: "libc.so.6", symbol: "pause" }));
    await within(Promise.all(children.map((child) => child.started)), 30000, "600 starts");
    const stopped = server.stop();
    Bun.sleepSync(1000);
    await within(stopped, 30000, "stop()");
    const settled = await Promise.allSettled(children.map((child) => child.exited));
    const lost = settled.filter((s) => s.status === "rejected");
    expect(lost.map((s) => String((s as PromiseRejectedResult).reason)).slice(0, 1)).toEqual([]);
    expect(settled.every((s) => s.status === "fulfilled" && s.value.signal === "SIGTERM")).toBe(true);
  }, 60000);

  test("stop() with every child unref'd still reads their exits to the end", async () => {
    const server = ForkServer.start({ mode: "clean" });
    const children = Array.from({ length: 600 }, () => server.fork({ library: "libc.so.6", symbol: "pause" }));
    await within(Promise.all(children.map((child) => child.started)), 30000, "600 starts");
    for (const child of children) child.unref();
    // Long enough for the idle stream to stop its reader.
    await Bun.sleep(300);
    await within(server.stop(), 30000, "stop()");
    const settled = await Promise.allSettled(children.map((child) => child.exited));
    expect(settled.filter((s) => s.status === "rejected").length).toBe(0);
  }, 60000);

  test("a pid read at once, between waits, is the one its exit reports", async () => {
    await using server = ForkServer.start({ mode: "clean" });
    for (let i = 0; i < 200; i++) {
      const child = server.fork({ library: "libc.so.6", symbol: "_exit" });
      const pid = child.pid; // read from the stream here, while its reader runs
      const other = server.fork({ library: "libc.so.6", symbol: "_exit" });
      expect((await child.exited).pid).toBe(pid);
      expect((await other.exited).pid).toBe(other.pid);
    }
  }, 60000);

  test("spawn: a program started from the request alone, with its argv and env", async () => {
    await using server = ForkServer.start();
    for (let i = 0; i < 50; i++) {
      const child = server.spawn(["/bin/sh", "-c", "echo $0 $X; exit 3", "zero"], { env: { X: String(i) }, channel: false });
      expect(await new Response(child.stdout).text()).toBe(`zero ${i}\n`);
      expect((await child.exited).exitCode).toBe(3);
    }
  }, 60000);

  test("a fork or spawn whose request could not be sent leaves nothing awaited: the process exits", async () => {
    const { code, out } = await runProgram([process.execPath, join(import.meta.dir, "fixtures", "events-failed-send.ts")]);
    expect(out).toContain("spawn: cannot fork");
    expect(out).toContain("fork: cannot fork");
    expect(code).toBe(0);
  }, 30000);

  test("an idle process with an unref'd child exits by itself", async () => {
    const program = join(import.meta.dir, "fixtures", "events-idle.ts");
    const started = performance.now();
    const { code, out } = await runProgram([process.execPath, program]);
    expect(out).toContain("forked");
    expect(code).toBe(0);
    expect(performance.now() - started).toBeLessThan(20000);
  }, 30000);
});
