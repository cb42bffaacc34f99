// LIBFORKS_DEBUG / NODE_DEBUG=libforks tracing, and what a JSCallback
// entrypoint gets.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { JSCallback, FFIType } from "bun:ffi";
import { join } from "node:path";
import { ForkServer } from "../../src/index.ts";
import { expectThrowsLibforks, fixtures } from "./helpers.ts";

async function traced(env: Record<string, string>): Promise<{ stdout: string; stderr: string }> {
  const base = { ...process.env };
  delete base.LIBFORKS_DEBUG;
  delete base.NODE_DEBUG;
  const run = Bun.spawn([process.execPath, join(fixtures, "debug-trace.ts")], { env: { ...base, ...env }, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr] = await Promise.all([new Response(run.stdout).text(), new Response(run.stderr).text()]);
  expect(await run.exited).toBe(0);
  return { stdout, stderr };
}

describe("debug tracing", () => {
  test("LIBFORKS_DEBUG=1 traces start, spawn, exit, errors and stop with pids and times", async () => {
    const { stdout, stderr } = await traced({ LIBFORKS_DEBUG: "1" });
    expect(stdout).toBe("done\n");
    const lines = stderr.split("\n").filter((line) => line.startsWith("LIBFORKS "));
    const events = lines.map((line) => line.split(" ")[3]);
    expect(events).toEqual(["start", "spawn", "exit", "spawn", "stop"]);
    expect(lines[0]).toMatch(/^LIBFORKS \d+ [\d.]+ms start server=\d+ mode=snapshot ms=[\d.]+$/);
    expect(lines[1]).toMatch(/ spawn pid=\d+ argv=\["\/bin\/sh","-c","exit 4"\] ms=[\d.]+$/);
    expect(lines[2]).toMatch(/ exit pid=\d+ exitCode=4 ms=[\d.]+$/);
    expect(lines[3]).toContain("spawn failed");
    expect(lines[3]).toContain("no-such-program-libforks-debug");
  }, 30_000);

  test("NODE_DEBUG=libforks does too; without either, nothing is written", async () => {
    expect((await traced({ NODE_DEBUG: "net,libforks" })).stderr).toContain(" spawn pid=");
    expect((await traced({})).stderr).not.toContain("LIBFORKS");
    expect((await traced({ LIBFORKS_DEBUG: "0" })).stderr).not.toContain("LIBFORKS");
  }, 30_000);
});

describe("a JSCallback entrypoint", () => {
  let server: ForkServer;
  beforeAll(() => {
    server = ForkServer.start();
  });
  afterAll(async () => {
    await server.stop();
  });

  test("is refused: its child would run JavaScript in a copied runtime", () => {
    const callback = new JSCallback(() => {}, { args: [FFIType.ptr, FFIType.i32], returns: FFIType.void });
    try {
      expectThrowsLibforks(() => server.fork(callback as never), "INVALID_ARGUMENT", "JSCallback");
      expect(server.children()).toEqual([]);
    } finally {
      callback.close();
    }
  });
});
