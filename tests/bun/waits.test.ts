// server.wait / waitAll / killAll: waitpid through the server.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ExitEvent, ForkServer } from "../../src/index.ts";
import { expectRejectsLibforks, native, within } from "./helpers.ts";

let server: ForkServer;
beforeAll(() => {
  server = ForkServer.start();
});
afterAll(async () => {
  await server.stop();
});

describe("waits", () => {
  test("wait(pid) gives status and rusage; child.exited still resolves", async () => {
    const child = server.fork(native.exit7);
    const result = await within(server.wait(child.pid), 5000, "wait");
    expect(result).not.toBeNull();
    expect(result!.pid).toBe(child.pid);
    expect(result!.status).toBe(7 << 8);
    expect(result!.event).toBeInstanceOf(ExitEvent);
    expect(result!.event.exitCode).toBe(7);
    expect(result!.event.signal).toBeNull();
    const { userMicros, systemMicros, maxRssKiB } = result!.rusage;
    for (const value of [userMicros, systemMicros, maxRssKiB]) {
      expect(Number.isInteger(value)).toBe(true);
      expect(value).toBeGreaterThanOrEqual(0);
    }
    // A copy of this process touches some memory: its peak RSS is not 0.
    expect(maxRssKiB).toBeGreaterThan(0);
    // Waiting does not consume the exit fd's event.
    const event = await within(child.exited, 5000, "exited");
    expect(event.exitCode).toBe(7);
    expect(event.pid).toBe(child.pid);
  });

  test("wait(pid) on a child that already exited returns at once", async () => {
    const child = server.fork(native.exit0);
    await child.exited;
    const result = await within(server.wait(child.pid), 1000, "wait");
    expect(result!.pid).toBe(child.pid);
    expect(result!.event.exitCode).toBe(0);
  });

  test("wait(pid) on a killed child reports the signal", async () => {
    const child = server.fork(native.sleep_long);
    const waiting = server.wait(child.pid);
    child.kill("SIGKILL");
    const result = await within(waiting, 5000, "wait");
    expect(result!.event.signal).toBe("SIGKILL");
    expect(result!.event.exitCode).toBeNull();
    expect(result!.status & 0x7f).toBe(9);
  });

  test("wait(-1) reports any child, and says which", async () => {
    const child = server.fork(native.exit7);
    const result = await within(server.wait(-1), 5000, "wait(-1)");
    expect(result!.pid).toBe(child.pid);
    expect(result!.event.exitCode).toBe(7);
    await child.exited;
  });

  test("wait(-1) reports each of several children once", async () => {
    const children = [server.fork(native.exit0), server.fork(native.exit7), server.fork(native.return_normally)];
    const pids: number[] = [];
    for (let i = 0; i < 3; i++) pids.push((await within(server.wait(-1), 5000, "wait(-1)"))!.pid);
    expect(pids.sort()).toEqual(children.map((c) => c.pid).sort());
    await expectRejectsLibforks(server.wait(-1, { noHang: true }), "WAIT_ERROR");
  });

  test("noHang resolves null while the child runs, then its status once it exited", async () => {
    const child = server.fork(native.sleep_long);
    expect(await within(server.wait(child.pid, { noHang: true }), 1000, "noHang")).toBeNull();
    expect(await within(server.wait(-1, { noHang: true }), 1000, "noHang -1")).toBeNull();
    child.kill("SIGKILL");
    await child.exited;
    const result = await within(server.wait(child.pid, { noHang: true }), 1000, "noHang after exit");
    expect(result!.event.signal).toBe("SIGKILL");
  });

  test("a second wait for the same pid rejects WAIT_ERROR ECHILD", async () => {
    const child = server.fork(native.exit0);
    await server.wait(child.pid);
    const error = await expectRejectsLibforks(server.wait(child.pid), "WAIT_ERROR");
    expect(error.errnoCode).toBe("ECHILD");
    expect(error.errno).toBe(-10); // negative, as Node's SystemError
    await child.exited;
  });

  test("a pid that is not a child rejects WAIT_ERROR ECHILD; bad pids are INVALID_ARGUMENT", async () => {
    const error = await expectRejectsLibforks(server.wait(process.pid), "WAIT_ERROR");
    expect(error.errnoCode).toBe("ECHILD");
    await expectRejectsLibforks(server.wait(0), "INVALID_ARGUMENT", "pid");
    await expectRejectsLibforks(server.wait(-2), "INVALID_ARGUMENT", "pid");
    await expectRejectsLibforks(server.wait(1.5), "INVALID_ARGUMENT", "pid");
    await expectRejectsLibforks(server.wait(Number.NaN), "INVALID_ARGUMENT", "pid");
  });

  test("two concurrent waits for one pid: one gets the status, the other ECHILD", async () => {
    // A server of its own: a wait left pending would take other tests' exits.
    await using server = ForkServer.start();
    const child = server.fork(native.sleep200ms);
    const results = await within(Promise.allSettled([server.wait(child.pid), server.wait(child.pid)]), 2000, "two waits for one pid");
    const fulfilled = results.filter((r) => r.status === "fulfilled") as PromiseFulfilledResult<unknown>[];
    const rejected = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
    expect(fulfilled.length).toBe(1);
    expect(rejected.length).toBe(1);
    expect(rejected[0]!.reason.code).toBe("ECHILD");
    expect(rejected[0]!.reason.result).toBe("WAIT_ERROR");
    expect(rejected[0]!.reason.errnoCode).toBe("ECHILD");
    await child.exited;
  });

  test("two concurrent wait(-1) with one child: one gets the status, the other ECHILD", async () => {
    await using server = ForkServer.start();
    const child = server.fork(native.sleep200ms);
    const results = await within(Promise.allSettled([server.wait(-1), server.wait(-1)]), 2000, "two wait(-1)");
    expect(results.filter((r) => r.status === "fulfilled").length).toBe(1);
    const rejected = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
    expect(rejected.length).toBe(1);
    expect(rejected[0]!.reason.code).toBe("ECHILD");
    expect(rejected[0]!.reason.result).toBe("WAIT_ERROR");
    expect(rejected[0]!.reason.errnoCode).toBe("ECHILD");
    await child.exited;
  });

  test("waitAll() resolves once no child runs", async () => {
    const children = Array.from({ length: 5 }, () => server.fork(native.sleep200ms));
    const started = performance.now();
    await within(server.waitAll(), 5000, "waitAll");
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThan(150);
    // Every child had exited when waitAll resolved (and exit events follow).
    const events = await within(Promise.all(children.map((c) => c.exited)), 1000, "exited");
    expect(events.every((e) => e.exitCode === 0)).toBe(true);
    // Remembered exits are kept: wait still reports them.
    expect((await server.wait(children[0]!.pid))!.event.exitCode).toBe(0);
    // With nothing running it resolves at once.
    await within(server.waitAll(), 500, "waitAll idle");
  });

  test('killAll("SIGTERM") signals every running child', async () => {
    const children = Array.from({ length: 5 }, () => server.fork(native.sleep_long));
    await server.killAll("SIGTERM");
    const events = await within(Promise.all(children.map((c) => c.exited)), 5000, "exited");
    expect(events.map((e) => e.signal)).toEqual(Array(5).fill("SIGTERM"));
  });

  test("killAll() defaults to SIGTERM and accepts numbers; killAll(0) only checks liveness", async () => {
    const child = server.fork(native.sleep_long);
    await server.killAll(0);
    expect(await server.wait(child.pid, { noHang: true })).toBeNull();
    await server.killAll(9);
    expect((await within(child.exited, 5000, "exited")).signal).toBe("SIGKILL");
    const other = server.fork(native.sleep_long);
    await server.killAll();
    expect((await within(other.exited, 5000, "exited")).signal).toBe("SIGTERM");
  });
});
