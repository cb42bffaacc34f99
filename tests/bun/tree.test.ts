// The tree, not the list: a SIGKILLed owner leaves nothing of what its
// children started; kill() goes through the server, so it never reaches
// a pid reused by another process; kill({ tree: true }) takes a child's
// descendants. Processes of a test's tree carry a unique marker in their
// environment, so nothing here counts processes it did not start.

import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ForkServer } from "../../src/index.ts";
import { darwinPaths, eventually, firstLine, fixtures, notOnDarwin, parentPid, processExited, within } from "./helpers.ts";

function marked(mark: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/environ`, "latin1").split("\0").includes(`LIBFORKS_TEST_MARK=${mark}`)) found.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Darwin paths: macOS supervises the direct children only, so what they
 * started outlives them there. The test ends it. */
async function endMarked(mark: string): Promise<void> {
  for (const pid of marked(mark)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
  expect(await eventually(() => marked(mark).length === 0, 5000)).toBe(true);
}

const isRoot = process.getuid?.() === 0;
const linux = process.platform === "linux";

describe.skipIf(!linux)("tree supervision", () => {
  test("a SIGKILLed owner leaves nothing of the tree within 1 s: a shell's sleeps, a setsid daemon, a Bun program's own Bun.spawn child (10 rounds)", async () => {
    for (let round = 0; round < 10; round++) {
      const mark = `bun-tree-${process.pid}-${round}-${Date.now()}`;
      const owner = Bun.spawn([process.execPath, join(fixtures, "tree-owner.ts"), mark], { stdout: "pipe", stderr: "inherit" });
      let server = 0;
      let direct: number[] = [];
      try {
        const line = await firstLine(owner.stdout, 10000, "owner output");
        server = (JSON.parse(line) as { server: number }).server;
        // sh and its 2 sleeps; the setsid daemon and the sleep sh execs
        // after its subshell left it; bun and its own sleep.
        expect(await eventually(() => marked(mark).length === 7, 10000)).toBe(true);
        direct = marked(mark).filter((pid) => parentPid(pid) === server);
      } finally {
        owner.kill("SIGKILL");
        await owner.exited;
      }
      if (darwinPaths) {
        // The server's own children: the first shell, the second one's
        // exec'd sleep, bun. They and the server go; what they started
        // stays (macOS has no subreaper, PR_SET_PDEATHSIG or cgroup).
        if (round === 0) notOnDarwin("the owner's grandchildren and the setsid daemon (macOS supervises the direct children)");
        expect(direct.length).toBe(3);
        expect(await eventually(() => direct.every(processExited), 1000)).toBe(true);
        expect(await eventually(() => processExited(server), 1000)).toBe(true);
        expect(marked(mark).length).toBe(4);
        await endMarked(mark);
        continue;
      }
      const gone = await eventually(() => marked(mark).length === 0, 1000);
      if (!gone) console.error("left:", marked(mark));
      expect(gone).toBe(true);
      expect(await eventually(() => processExited(server), 1000)).toBe(true);
    }
  }, 120000);

  test("kill({ tree: true }) takes the child's descendants, not another child's", async () => {
    const mark = `bun-kill-tree-${process.pid}-${Date.now()}`;
    const other = `${mark}-other`;
    await using server = ForkServer.start();
    const shell = server.spawn(["/bin/sh", "-c", "sleep 1001 & sleep 1002; echo"], {
      env: { PATH: "/usr/bin:/bin", LIBFORKS_TEST_MARK: mark },
      channel: false,
    });
    const bystander = server.spawn(["/bin/sh", "-c", "sleep 1003; echo"], {
      env: { PATH: "/usr/bin:/bin", LIBFORKS_TEST_MARK: other },
      channel: false,
    });
    expect(await eventually(() => marked(mark).length === 3 && marked(other).length === 2, 5000)).toBe(true);
    await shell.kill("SIGKILL", { tree: true });
    if (darwinPaths) {
      // The child alone is signalled: its two sleeps stay.
      notOnDarwin("the child's descendants (macOS signals the direct child)");
      expect((await shell.exited).signal).toBe("SIGKILL");
      expect(marked(mark).length).toBe(2);
      await endMarked(mark);
    } else {
      expect(await eventually(() => marked(mark).length === 0, 1000)).toBe(true);
      expect((await shell.exited).signal).toBe("SIGKILL");
    }
    expect(marked(other).length).toBe(2);
    expect(() => shell.kill("SIGKILL", { tree: "yes" as unknown as boolean })).toThrow("options.tree");
    // Already reaped: resolves, sends nothing.
    await shell.kill("SIGKILL");
    await bystander.kill("SIGTERM", { tree: true });
    if (darwinPaths) {
      expect((await bystander.exited).signal).toBe("SIGTERM");
      await endMarked(other);
    } else {
      expect(await eventually(() => marked(other).length === 0, 1000)).toBe(true);
    }
  });

  test.skipIf(!isRoot)("child.kill() never signals a pid the kernel gave to another process (as PID 1 of a new pid namespace, where stop() must also reap the server)", async () => {
    const run = Bun.spawn(["unshare", "--pid", "--fork", "--mount-proc", process.execPath, join(fixtures, "reused-pid.ts")], {
      stdout: "pipe",
      stderr: "inherit",
    });
    const output = await within(new Response(run.stdout).text(), 60000, "reused-pid.ts");
    expect(await run.exited).toBe(0);
    const result = JSON.parse(output.trim().split("\n").pop()!) as {
      setup: boolean;
      strangerAlive: boolean;
      zombies: number;
      zombiePids: string[];
      server: number;
    };
    expect(result.setup).toBe(true);
    expect(result.strangerAlive).toBe(true);
    if (darwinPaths) {
      // macOS has no pid namespace: a program is never PID 1 there, and
      // the server, double-forked, is launchd's to reap; the darwin build
      // reaps no server (zig/tree.zig, reapServer). Nothing else is left.
      notOnDarwin("stop() reaping a server re-parented to its PID 1 caller (no pid namespaces on macOS)");
      expect(result.zombiePids).toEqual([String(result.server)]);
    } else {
      expect(result.zombies).toBe(0);
    }
  }, 90000);
});
