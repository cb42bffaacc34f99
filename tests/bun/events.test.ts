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
