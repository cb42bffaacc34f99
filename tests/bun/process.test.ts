// The host process: it exits by itself when nothing is left to wait for,
// unref() lets it exit while a child runs, and the server then cleans up.

import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { eventually, fixtures, patience, processExited, within } from "./helpers.ts";

async function runIdle(mode: string): Promise<{ code: number | null; ms: number; out: string }> {
  const started = performance.now();
  const proc = Bun.spawn([process.execPath, join(fixtures, "idle.ts"), mode], { stdout: "pipe", stderr: "inherit" });
  try {
    const code = await within(proc.exited, 5000, `idle.ts ${mode} exits`);
    return { code, ms: performance.now() - started, out: await new Response(proc.stdout).text() };
  } finally {
    proc.kill("SIGKILL");
  }
}

describe("host process", () => {
  test("a process whose children have exited exits by itself, server left running", async () => {
    const { code, out } = await runIdle("exited-child");
    expect(code).toBe(0);
    expect(out).toBe("done\n");
  });

  test("a running child keeps the process alive until it exits", async () => {
    const { code, ms, out } = await runIdle("running");
    expect(code).toBe(0);
    expect(out).toBe("done\n");
    expect(ms).toBeGreaterThanOrEqual(250);
  });

  test("child.unref() lets the process exit; the server then kills the child", async () => {
    const { code, ms, out } = await runIdle("unref");
    expect(code).toBe(0);
    const pid = Number(/child (\d+)/.exec(out)?.[1]);
    expect(pid).toBeGreaterThan(0);
    expect(out.endsWith("done\n")).toBe(true);
    expect(ms).toBeLessThan(patience(3000)); // not the child's 30 s
    // The owner is gone: SIGTERM from the server ends the sleep at once.
    expect(await eventually(() => processExited(pid), 3000)).toBe(true);
  });
});
