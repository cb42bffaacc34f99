// Server life: stop, stopServerOnly, await using, a server killed from
// outside, an owner killed from outside, many servers at once.

import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { ForkServer } from "../../src/index.ts";
import { lib } from "../../src/native.ts";
import {
  eventually,
  expectRejectsLibforks,
  expectThrowsLibforks,
  firstLine,
  fixtures,
  native,
  processExited,
  processGone,
  processState,
  within,
} from "./helpers.ts";

describe("lifecycle", () => {
  test("stop(): the server and its children are gone when it resolves", async () => {
    const server = ForkServer.start();
    const serverPid = server.pid;
    expect(serverPid).toBeGreaterThan(0);
    expect(serverPid).not.toBe(process.pid);
    expect(processGone(serverPid)).toBe(false);
    expect(server.stopped).toBe(false);
    const children = [server.fork(native.sleep_long), server.fork(native.sleep_long), server.spawn(["/bin/sleep", "30"], { channel: false })];
    for (const child of children) expect(processGone(child.pid)).toBe(false);

    await within(server.stop(), 3000, "stop");
    expect(server.stopped).toBe(true);
    // The server exits. It was re-parented to init, which reaps it when it
    // gets to it (every ~2 s on some machines): until then it is a zombie,
    // and kill(pid, 0) still succeeds. (That it has exited the moment stop()
    // resolves is the next test's business.)
    expect(await eventually(() => processExited(serverPid), 1000)).toBe(true);
    expect(await eventually(() => processGone(serverPid), 5000)).toBe(true);
    expect(() => process.kill(serverPid, 0)).toThrow(expect.objectContaining({ code: "ESRCH" }));
    // The children were reaped by the server before it exited.
    for (const child of children) expect(processGone(child.pid)).toBe(true);
    const events = await within(Promise.all(children.map((c) => c.exited)), 1000, "exited");
    expect(events.map((e) => e.signal)).toEqual(["SIGTERM", "SIGTERM", "SIGTERM"]);
  });

  test("the server process has exited when stop() resolves (100 start/stop cycles)", async () => {
    const late: string[] = [];
    for (let i = 0; i < 100; i++) {
      const server = ForkServer.start();
      if (i % 2 === 1) server.fork(native.sleep_long); // with a child to terminate, or without
      await within(server.stop(), 3000, "stop");
      if (!processExited(server.pid)) late.push(`cycle ${i}: server ${server.pid} still ${processState(server.pid)}`);
    }
    expect(late).toEqual([]);
  });

  test("stop() sends SIGKILL 500 ms later to a child that ignores SIGTERM", async () => {
    const server = ForkServer.start();
    const stubborn = server.fork(native.ignore_sigterm, { socket: true });
    await within(stubborn.channel!.receive(), 5000, "SIG_IGN installed");
    const started = performance.now();
    await within(server.stop(), 3000, "stop");
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(400);
    expect(elapsed).toBeLessThan(2000);
    expect((await within(stubborn.exited, 1000, "exited")).signal).toBe("SIGKILL");
    expect(processGone(stubborn.pid)).toBe(true);
  });

  test("stop({ wait: false }) resolves at once; exits are still reported", async () => {
    const server = ForkServer.start();
    const serverPid = server.pid;
    const stubborn = server.fork(native.ignore_sigterm, { socket: true });
    const plain = server.fork(native.sleep_long);
    await within(stubborn.channel!.receive(), 5000, "SIG_IGN installed");
    const started = performance.now();
    await within(server.stop({ wait: false }), 1000, "stop");
    expect(performance.now() - started).toBeLessThan(300);
    expect(server.stopped).toBe(true);
    expect((await within(plain.exited, 2000, "plain")).signal).toBe("SIGTERM");
    expect((await within(stubborn.exited, 2000, "stubborn")).signal).toBe("SIGKILL");
    // The server exits once no child is left.
    expect(await eventually(() => processExited(serverPid), 1000)).toBe(true);
  });

  test("stop() answers a pending wait", async () => {
    const server = ForkServer.start();
    const child = server.fork(native.sleep_long);
    const waiting = server.wait(child.pid).then(
      (result) => ({ result, error: null }),
      (error) => ({ result: null, error }),
    );
    await Bun.sleep(20);
    await within(server.stop(), 3000, "stop");
    const outcome = await within(waiting, 1000, "pending wait");
    // Either the status (the child died of SIGTERM before the server left)
    // or SERVER_GONE, but an answer.
    if (outcome.error) expect(outcome.error.code).toBe("SERVER_GONE");
    else expect(outcome.result!.event.signal).toBe("SIGTERM");
  });

  test("stopServerOnly(): the child keeps running, its exited rejects SERVER_GONE; the server stays as its reaper", async () => {
    const server = ForkServer.start();
    const serverPid = server.pid;
    const child = server.fork(native.sleep_long);
    try {
      await within(server.stopServerOnly(), 3000, "stopServerOnly");
      expect(server.stopped).toBe(true);
      await expectRejectsLibforks(within(child.exited, 2000, "exited"), "SERVER_GONE", `${child.pid}`);
      expect(processGone(child.pid)).toBe(false);
      await Bun.sleep(100);
      expect(processExited(child.pid)).toBe(false);
      expect(processExited(serverPid)).toBe(false);
      expect(child.exit).toBeNull();
    } finally {
      process.kill(child.pid, "SIGKILL");
    }
    // Reaped by the server, which then exits.
    expect(await eventually(() => processGone(child.pid), 1000)).toBe(true);
    expect(await eventually(() => processExited(serverPid), 1000)).toBe(true);
  });

  test("after stop, every call fails with SERVER_GONE; stop() again resolves", async () => {
    const server = ForkServer.start();
    const child = server.fork(native.exit0);
    expect((await child.exited).exitCode).toBe(0);
    await server.stop();
    expectThrowsLibforks(() => server.fork(native.exit0), "SERVER_GONE");
    expectThrowsLibforks(() => server.fork({ library: "/nonexistent.so", symbol: "x" }), "SERVER_GONE");
    expectThrowsLibforks(() => server.spawn(["/bin/true"]), "SERVER_GONE");
    await expectRejectsLibforks(server.killAll(), "SERVER_GONE");
    await expectRejectsLibforks(server.wait(child.pid), "SERVER_GONE");
    await expectRejectsLibforks(server.wait(-1, { noHang: true }), "SERVER_GONE");
    await expectRejectsLibforks(server.waitAll(), "SERVER_GONE");
    await within(server.stop(), 1000, "second stop");
    await within(server.stopServerOnly(), 1000, "stopServerOnly after stop");
  });

  test("await using stops the server at the end of the block", async () => {
    let serverPid = 0;
    let childPid = 0;
    let escaped: ForkServer | null = null;
    {
      await using server = ForkServer.start();
      serverPid = server.pid;
      childPid = server.fork(native.sleep_long).pid;
      escaped = server;
      expect(processGone(serverPid)).toBe(false);
    }
    expect(escaped!.stopped).toBe(true);
    expect(processGone(childPid)).toBe(true);
    expect(await eventually(() => processExited(serverPid), 1000)).toBe(true);
  });

  test("a server SIGKILLed from outside: fork throws SERVER_GONE, running children's exited rejects", async () => {
    const server = ForkServer.start();
    const serverPid = server.pid;
    const running = server.fork(native.sleep_long);
    const waiting = server.wait(running.pid);
    waiting.catch(() => {});
    try {
      process.kill(serverPid, "SIGKILL");
      expect(await eventually(() => processExited(serverPid), 2000)).toBe(true);
      await expectRejectsLibforks(within(running.exited, 2000, "exited"), "SERVER_GONE");
      await expectRejectsLibforks(within(waiting, 2000, "pending wait"), "SERVER_GONE");
      expectThrowsLibforks(() => server.fork(native.exit0), "SERVER_GONE");
      expectThrowsLibforks(() => server.spawn(["/bin/true"]), "SERVER_GONE");
      await expectRejectsLibforks(server.killAll(), "SERVER_GONE");
      await expectRejectsLibforks(server.wait(-1), "SERVER_GONE");
      await expectRejectsLibforks(server.waitAll(), "SERVER_GONE");
      // Stopping a dead server is not an error.
      await within(server.stop(), 2000, "stop");
    } finally {
      try {
        process.kill(running.pid, "SIGKILL");
      } catch {}
    }
  });

  test("when the owner process is SIGKILLed, the server kills its children and exits", async () => {
    const owner = Bun.spawn([process.execPath, join(fixtures, "owner.ts")], { stdout: "pipe", stderr: "inherit" });
    const line = await firstLine(owner.stdout, 10000, "owner output");
    const { server, children } = JSON.parse(line) as { server: number; children: number[] };
    expect(children.length).toBe(2);
    for (const pid of [server, ...children]) expect(processGone(pid)).toBe(false);
    owner.kill("SIGKILL");
    await owner.exited;
    expect(await eventually(() => [server, ...children].every(processExited), 3000)).toBe(true);
  });

  test("10 servers at once, each with its own children", async () => {
    const servers = Array.from({ length: 10 }, () => ForkServer.start());
    try {
      expect(new Set(servers.map((s) => s.pid)).size).toBe(10);
      const children = servers.map((server, i) => {
        const child = server.fork(native.exit_with_received_code, { socket: true });
        void child.channel!.send(Uint8Array.of(i + 1));
        return child;
      });
      const events = await within(Promise.all(children.map((c) => c.exited)), 5000, "exited");
      expect(events.map((e) => e.exitCode)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
      // Each server knows its own child only.
      const results = await Promise.all(servers.map((server, i) => server.wait(children[i]!.pid)));
      expect(results.map((r) => r!.event.exitCode)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
      await expectRejectsLibforks(servers[0]!.wait(children[1]!.pid), "WAIT_ERROR");
      for (const child of children) child.channel!.close();
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
    for (const server of servers) expect(await eventually(() => processExited(server.pid), 1000)).toBe(true);
  });

  test("a stop() that failed leaves the server running and can be retried", async () => {
    const server = ForkServer.start();
    // Fault injection: the stop request cannot be sent (its reply pipe
    // cannot be made), as with EMFILE.
    const real = lib.libforks_stop_async;
    (lib as { libforks_stop_async: unknown }).libforks_stop_async = () => -9; /* PIPE_CREATION_ERROR */
    try {
      await expectRejectsLibforks(server.stop(), "PIPE_CREATION_ERROR");
    } finally {
      (lib as { libforks_stop_async: unknown }).libforks_stop_async = real;
    }
    expect(server.stopped).toBe(false);
    expect((await within(server.fork(native.exit7).exited, 5000, "fork after the failed stop")).exitCode).toBe(7);
    await within(server.stop(), 5000, "second stop");
    expect(server.stopped).toBe(true);
    expect(await eventually(() => processExited(server.pid), 2000)).toBe(true);
  });
});
