// Channels of values: serialization "json" and "advanced" between a
// parent and a spawned Bun worker, fds attached to any message both ways,
// 10,000 messages in order.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, fstatSync, readSync, writeSync } from "node:fs";
import { join } from "node:path";
import { ForkServer, SerializedChannel, pipe, socketPair } from "../../src/index.ts";
import { expectRejectsLibforks, fixtures, within } from "./helpers.ts";

let server: ForkServer;
beforeAll(() => {
  server = ForkServer.start();
});
afterAll(async () => {
  await server.stop();
});

const COUNT = 10_000;

function drain(fd: number): string {
  const buffer = Buffer.alloc(256);
  const n = readSync(fd, buffer);
  closeSync(fd);
  return buffer.subarray(0, n).toString();
}

for (const serialization of ["json", "advanced"] as const) {
  describe(`serialization: "${serialization}" with a spawned Bun worker`, () => {
    test(`${COUNT.toLocaleString("en")} messages with fds both ways arrive in order`, async () => {
      const child = server.spawn([process.execPath, join(fixtures, "structured-echo-worker.ts"), serialization], { serialization });
      // child.channel is typed Channel; with serialization it is this subclass.
      const channel = child.channel as SerializedChannel;
      expect(channel).toBeInstanceOf(SerializedChannel);
      const [readEnd, writeEnd] = pipe();
      const ino = fstatSync(writeEnd).ino;
      try {
        const value = (i: number) =>
          serialization === "json"
            ? { i, text: `message ${i}`, list: [i, i + 1], nested: { even: i % 2 === 0 } }
            : { i, big: BigInt(i) * 10n ** 20n, when: new Date(i), map: new Map([[i, `v${i}`]]), bytes: new Uint8Array([i & 255]) };
        // Every 100th message carries our pipe's write end; every 1,000th
        // asks the worker to attach a pipe of its own to the answer. Sends
        // go in windows, each awaited: a channel queues at most
        // MAX_QUEUED_SENDS unsent messages (its backpressure).
        const WINDOW = 1000;
        const sends: Promise<void>[] = [];
        for (let i = 0; i < COUNT; i++) {
          if (i % WINDOW === 0) {
            for (let j = i; j < Math.min(i + WINDOW, COUNT); j++) {
              const message = { ...value(j), made: j % 1000 === 0 };
              sends.push(channel.send(message, { fds: j % 100 === 0 ? [writeEnd] : [] }));
            }
          }
          const answer = await within(channel.receive(), 20_000, `answer ${i}`);
          const { echo, seq } = answer!.data as { echo: Record<string, unknown>; seq: number };
          expect(seq).toBe(i);
          expect(echo).toEqual({ ...value(i), made: i % 1000 === 0 });
          const expectedFds = (i % 100 === 0 ? 1 : 0) + (i % 1000 === 0 ? 1 : 0);
          expect(answer!.fds.length).toBe(expectedFds);
          if (i % 100 === 0) {
            // Our own pipe, back from the worker: write through it.
            expect(fstatSync(answer!.fds[0]!).ino).toBe(ino);
            if (i === 0) writeSync(answer!.fds[0]!, "through the echo");
            closeSync(answer!.fds[0]!);
          }
          if (i % 1000 === 0) expect(drain(answer!.fds[expectedFds - 1]!)).toBe(`made ${i}`);
        }
        await Promise.all(sends);
        closeSync(writeEnd);
        expect(drain(readEnd)).toBe("through the echo");
      } finally {
        channel.close();
      }
      expect((await within(child.exited, 10_000, "worker exit")).exitCode).toBe(0);
    }, 120_000);
  });
}

describe("SerializedChannel", () => {
  test("a message that does not decode rejects PROTOCOL_ERROR and closes its fds", async () => {
    const [a, b] = socketPair();
    const raw = new SerializedChannel(a, "json");
    const { Channel } = await import("../../src/index.ts");
    const bytes = new Channel(b);
    const [r, w] = pipe();
    await bytes.send("{not json", { fds: [w] });
    await expectRejectsLibforks(raw.receive(), "PROTOCOL_ERROR", "JSON");
    closeSync(w);
    // The received copy of w was closed: the pipe reads end-of-file.
    expect(readSync(r, Buffer.alloc(1))).toBe(0);
    closeSync(r);
    raw.close();
    bytes.close();
  });

  test("json refuses what JSON cannot carry; advanced carries Map, BigInt, cycles", async () => {
    const [a, b] = socketPair();
    const json = new SerializedChannel(a, "json");
    await expect(json.send(undefined)).rejects.toThrow(/JSON/);
    json.close();
    closeSync(b);
    const [c, d] = socketPair();
    const left = new SerializedChannel(c, "advanced");
    const right = new SerializedChannel(d, "advanced");
    const cyclic: Record<string, unknown> = { n: 1n, m: new Map([["k", new Set([1])]]) };
    cyclic.self = cyclic;
    await left.send(cyclic);
    const got = (await right.receive())!.data as typeof cyclic;
    expect(got.n).toBe(1n);
    expect(got.self).toBe(got);
    expect((got.m as Map<string, Set<number>>).get("k")!.has(1)).toBe(true);
    left.close();
    right.close();
  });

  test("Symbol.dispose closes; an ArrayBufferView is sent as its bytes", async () => {
    const [a, b] = socketPair();
    const { Channel } = await import("../../src/index.ts");
    const receiver = new Channel(b);
    {
      using sender = new Channel(a);
      await sender.send(new Uint16Array([1, 2]));
      await sender.send(new DataView(new Uint8Array([9, 8, 7]).buffer, 1, 2));
    }
    expect([...(await receiver.receive())!.data]).toEqual([1, 0, 2, 0]);
    expect([...(await receiver.receive())!.data]).toEqual([8, 7]);
    expect(await receiver.receive()).toBeNull(); // closed by dispose
    receiver.close();
  });
});
