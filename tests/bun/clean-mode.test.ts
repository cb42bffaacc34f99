// ForkServer.start({ mode: "clean" }): the server is libforks-server, a
// fresh program; children run programs and { library, symbol } entrypoints,
// and hold none of this process's memory.

import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { join } from "node:path";
import { ForkServer, pipe } from "../../src/index.ts";
import { argvOf, buildSharedLibrary, expectThrowsLibforks, fixtures, native, pointerOf, readAllSync } from "./helpers.ts";

// A marker that exists only in this process's memory, written before any
// server starts: a snapshot server's children copy it, a clean one's not.
const marker = Buffer.from(`LFMARK-${crypto.randomUUID()}-${process.pid}`);
const markerCopy = Buffer.alloc(marker.length);
marker.copy(markerCopy);

const servers: ForkServer[] = [];
afterAll(async () => {
  for (const server of servers) await server.stop();
});

function start(mode: "snapshot" | "clean"): ForkServer {
  const server = ForkServer.start({ mode });
  servers.push(server);
  return server;
}

/** True when `needle` appears in a readable mapping of process `pid`. */
function memoryContains(pid: number, needle: Buffer): boolean {
  const maps = readFileSync(`/proc/${pid}/maps`, "utf8").trim().split("\n");
  const mem = openSync(`/proc/${pid}/mem`, "r");
  try {
    for (const line of maps) {
      const [range, perms] = line.split(" ");
      if (!perms!.startsWith("r")) continue;
      const [start, end] = range!.split("-").map((hex) => Number.parseInt(hex!, 16));
      const size = end! - start!;
      if (size > 1 << 30) continue; // reservations, not data
      const chunk = Buffer.alloc(Math.min(size, 16 << 20));
      for (let offset = 0; offset < size; offset += chunk.length - needle.length) {
        let n = 0;
        try {
          n = readSync(mem, chunk, 0, Math.min(chunk.length, size - offset), start! + offset);
        } catch {
          break; // [vvar] and friends cannot be read
        }
        if (chunk.subarray(0, n).includes(needle)) return true;
        if (n < chunk.length) break;
      }
    }
    return false;
  } finally {
    closeSync(mem);
  }
}

describe("clean mode", () => {
  test("the server is libforks-server, not a copy of Bun", () => {
    const server = start("clean");
    expect(server.mode).toBe("clean");
    expect(argvOf(server.pid)[0]).toBe("libforks-server");
    const status = readFileSync(`/proc/${server.pid}/status`, "utf8");
    const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
    expect(rssKiB).toBeLessThan(16 * 1024);
  });

  test("spawns Bun scripts and programs", async () => {
    const server = start("clean");
    const [readEnd, writeEnd] = pipe();
    const worker = server.spawn([process.execPath, join(fixtures, "pipe-writer.ts")], { stdio: ["ignore", "inherit", "inherit"] });
    await worker.channel!.send("from a clean server", { fds: [writeEnd] });
    closeSync(writeEnd);
    const text = readAllSync(readEnd);
    closeSync(readEnd);
    expect(text).toContain("from a clean server");
    expect((await worker.exited).exitCode).toBe(0);

    const shell = server.spawn(["/bin/sh", "-c", "exit 9"]);
    expect((await shell.exited).exitCode).toBe(9);
  });

  test("runs { library, symbol } entrypoints loaded in the child", async () => {
    const server = start("clean");
    const child = server.fork({ library: buildSharedLibrary(), symbol: "lib_exit42" });
    expect((await child.exited).exitCode).toBe(42);
  });

  test("refuses function pointers of this process, by name", () => {
    const server = start("clean");
    expectThrowsLibforks(() => server.fork(native.exit7), "INVALID_ARGUMENT", "entrypoint");
    expectThrowsLibforks(() => server.fork(pointerOf(native.exit7)), "INVALID_ARGUMENT", "entrypoint");
    expectThrowsLibforks(() => server.fork({ library: null, symbol: "exit7" }), "INVALID_ARGUMENT", "entrypoint.library");
  });

  test("children hold none of this process's memory (a snapshot's do)", async () => {
    expect(markerCopy.equals(marker)).toBe(true);
    const snapshot = start("snapshot");
    const clean = start("clean");
    const copied = snapshot.fork(native.sleep_long);
    const fresh = clean.fork({ library: "libc.so.6", symbol: "pause" });
    await Promise.all([copied.started, fresh.started]);
    try {
      // The positive control proves the scan finds the marker when present.
      expect(memoryContains(copied.pid, marker)).toBe(true);
      expect(memoryContains(fresh.pid, marker)).toBe(false);
      expect(memoryContains(clean.pid, marker)).toBe(false);
    } finally {
      copied.kill("SIGKILL");
      fresh.kill("SIGKILL");
    }
    expect((await fresh.exited).signal).toBe("SIGKILL");
    expect((await copied.exited).signal).toBe("SIGKILL");
  });

  test("waits, killAll and stop work unchanged", async () => {
    const server = ForkServer.start({ mode: "clean" });
    const child = server.spawn(["/bin/sleep", "30"]);
    expect(await server.wait(child.pid, { noHang: true })).toBeNull();
    await server.killAll("SIGTERM");
    const waited = await server.wait(child.pid);
    expect(waited!.event.signal).toBe("SIGTERM");
    expect((await child.exited).signal).toBe("SIGTERM");
    await server.stop();
    expectThrowsLibforks(() => server.spawn(["/bin/true"]), "SERVER_GONE");
  });
});
