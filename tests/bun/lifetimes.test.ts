// Fd lifetimes: what a Child holds is closed once the child's exit and
// end-of-file make it useless, and what garbage collection finds
// unreachable is closed too, so code that never calls close() leaks
// nothing.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Channel, ForkServer, socketPair } from "../../src/index.ts";
import { closeSync, readlinkSync } from "node:fs";
import { eventually, fdsOpenedSince, native, openFds, streamText, within } from "./helpers.ts";

let server: ForkServer;
beforeAll(async () => {
  server = ForkServer.start();
  // The readiness thread's own fd lives as long as the process: open it
  // before the baselines; and a spawn opens the one /dev/null per thread
  // that "ignore" stdio entries share.
  await server.fork(native.exit0).exited;
  await server.spawn(["/bin/true"], { channel: false }).exited;
});
afterAll(async () => {
  await server.stop();
});

describe("fd lifetimes", () => {
  test("500 default spawns whose channels nobody closes leave no fd once they exited", async () => {
    const before = openFds();
    const children = [];
    for (let i = 0; i < 500; i++) children.push(server.spawn(["/bin/true"]));
    expect(children.every((child) => child.channel !== undefined)).toBe(true);
    await within(Promise.all(children.map((child) => child.exited)), 30000, "exits");
    await eventually(() => fdsOpenedSince(before).length === 0, 3000);
    expect(fdsOpenedSince(before)).toEqual([]);
  }, 60000);

  test("stdio pipes nobody reads or ends are closed after the program exits", async () => {
    const before = openFds();
    const children = [];
    for (let i = 0; i < 100; i++) {
      children.push(server.spawn(["/bin/sh", "-c", "echo out; echo err >&2"], { stdio: "pipe", channel: false }));
    }
    await within(Promise.all(children.map((child) => child.exited)), 30000, "exits");
    await eventually(() => fdsOpenedSince(before).length === 0, 3000);
    expect(fdsOpenedSince(before)).toEqual([]);
    // What they wrote is still there for a late reader.
    expect(await streamText(children[0]!.stdout)).toBe("out\n");
    expect(await streamText(children[0]!.stderr)).toBe("err\n");
  }, 60000);

  test("after the child exits, its channel hands out what it sent, then null, and is closed", async () => {
    const child = server.fork(native.send_pipe_to_parent, { socket: true });
    await within(child.exited, 5000, "exited");
    const channel = child.channel!;
    expect(channel.closed).toBe(true);
    const message = await within(channel.receive(), 2000, "message");
    expect(new TextDecoder().decode(message!.data)).toBe("native-pipe");
    expect(message!.fds.length).toBe(1);
    closeSync(message!.fds[0]!);
    expect(await channel.receive()).toBeNull();
    const error = await channel.send("late").catch((e: { code: string }) => e);
    expect((error as { code: string }).code).toBe("CHANNEL_CLOSED");
  });

  test("a Channel that becomes unreachable without close() is closed by garbage collection", async () => {
    // Counted by the sockets' identities (socket:[inode]), not by how many
    // fds the process has: other fds of this process may close or open
    // meanwhile (an earlier test's objects being collected too).
    const channelSockets = new Set<string>();
    const ours: number[] = [];
    (() => {
      for (let i = 0; i < 200; i++) {
        const [a, b] = socketPair();
        channelSockets.add(readlinkSync(`/proc/self/fd/${a}`));
        new Channel(a);
        ours.push(b);
      }
    })();
    for (const fd of ours) closeSync(fd);
    const stillOpen = () => [...openFds().values()].filter((target) => channelSockets.has(target)).length;
    expect(channelSockets.size).toBe(200);
    expect(stillOpen()).toBe(200);
    const collected = await eventually(() => {
      Bun.gc(true);
      return stillOpen() === 0;
    }, 5000);
    expect(collected).toBe(true);
  });
});
