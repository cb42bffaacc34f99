// Channel: messages with fds, between two ends in this process, with a Bun
// worker, and with native children speaking the wire format.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, fstatSync, openSync, readSync, writeSync } from "node:fs";
import { join } from "node:path";
import { CHANNEL_FD_ENV, Channel, ForkServer, LibforksError, MAX_FDS, connectToParent, pipe, recvFds, sendFds, socketPair } from "../../src/index.ts";
import { MAX_QUEUED_SENDS } from "../../src/channel.ts";
import {
  expectRejectsLibforks,
  expectThrowsLibforks,
  fdCount,
  fdsOpenedSince,
  fixtures,
  native,
  openFds,
  readAllSync,
  within,
} from "./helpers.ts";

let server: ForkServer;
beforeAll(() => {
  server = ForkServer.start();
});
afterAll(async () => {
  await server.stop();
});

function channelPair(): [Channel, Channel] {
  const [a, b] = socketPair();
  return [new Channel(a), new Channel(b)];
}

const text = (data: Uint8Array) => new TextDecoder().decode(data);

/** Deterministic pseudo-random bytes. */
function bytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Reads what is in a pipe right now (the write end must be closed). */
function drain(fd: number): string {
  const result = readAllSync(fd);
  closeSync(fd);
  return result;
}

describe("Channel within this process", () => {
  test("strings and binary data arrive intact, with message boundaries", async () => {
    const [a, b] = channelPair();
    const binary = Uint8Array.of(0, 1, 2, 255, 254, 0, 10);
    await a.send("héllo ✓");
    await a.send(binary);
    // An ArrayBuffer is accepted at run time (the error message names it),
    // though the type does not say so.
    await a.send(binary.buffer.slice(1, 3) as unknown as Uint8Array);
    await a.send("");
    const m1 = await b.receive();
    const m2 = await b.receive();
    const m3 = await b.receive();
    const m4 = await b.receive();
    expect(text(m1!.data)).toBe("héllo ✓");
    expect(m1!.fds).toEqual([]);
    expect(m2!.data).toEqual(binary);
    expect(m3!.data).toEqual(Uint8Array.of(1, 2));
    expect(m4!.data.length).toBe(0);
    a.close();
    b.close();
  });

  test("a 300 KiB message (several parts) arrives whole", async () => {
    const [a, b] = channelPair();
    try {
      const big = bytes(300 * 1024 + 7, 1);
      const [, message] = await within(Promise.all([a.send(big), b.receive()]), 2000, "300 KiB");
      expect(message!.data.length).toBe(big.length);
      expect(Buffer.compare(message!.data, big)).toBe(0);
    } finally {
      a.close();
      b.close();
    }
  });

  test("a send waiting for room still completes when a receive on the same channel starts waiting", async () => {
    const [a, b] = channelPair();
    try {
      const sent = a.send(bytes(1024 * 1024, 4)); // fills the socket: waits until writable
      await Bun.sleep(20);
      const incoming = a.receive(); // waits until readable, on the same fd
      await Bun.sleep(20);
      const message = await within(b.receive(), 2000, "b.receive() of 1 MiB");
      expect(message!.data.length).toBe(1024 * 1024);
      await within(sent, 2000, "a.send()");
      await b.send("reply");
      expect(text((await within(incoming, 2000, "a.receive()"))!.data)).toBe("reply");
    } finally {
      a.close();
      b.close();
    }
  });

  test("300 KiB messages both ways at once", async () => {
    const [a, b] = channelPair();
    try {
      const big1 = bytes(300 * 1024 + 7, 1);
      const big2 = bytes(256 * 1024, 2);
      const [, , fromA, fromB] = await within(
        Promise.all([a.send(big1), b.send(big2), b.receive(), a.receive()]),
        2000,
        "big messages both ways",
      );
      expect(Buffer.compare(fromA!.data, big1)).toBe(0);
      expect(Buffer.compare(fromB!.data, big2)).toBe(0);
    } finally {
      a.close();
      b.close();
    }
  });

  test("a 2 MiB message sent before anyone receives (the socket fills up)", async () => {
    const [a, b] = channelPair();
    const big = bytes(2 * 1024 * 1024, 3);
    const sent = a.send(big);
    await Bun.sleep(20); // the sender is now waiting for room
    const message = await within(b.receive(), 5000, "2 MiB");
    await within(sent, 5000, "send");
    expect(message!.data.length).toBe(big.length);
    expect(Buffer.compare(message!.data, big)).toBe(0);
    a.close();
    b.close();
  });

  test("2,000 sends not awaited arrive in call order, with big ones in between", async () => {
    const [a, b] = channelPair();
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 2000; i++) {
      if (i % 500 === 250) sends.push(a.send(bytes(100 * 1024, i)));
      else sends.push(a.send(`message ${i}`));
    }
    const received: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const message = await within(b.receive(), 5000, `message ${i}`);
      received.push(message!.data.length > 1000 ? `big ${Buffer.compare(message!.data, bytes(100 * 1024, i)) === 0}` : text(message!.data));
    }
    await Promise.all(sends);
    const expected = Array.from({ length: 2000 }, (_, i) => (i % 500 === 250 ? "big true" : `message ${i}`));
    expect(received).toEqual(expected);
    a.close();
    b.close();
  });

  test("concurrent receive() calls settle in order", async () => {
    const [a, b] = channelPair();
    const receives = [b.receive(), b.receive(), b.receive()];
    await a.send("1");
    await a.send("2");
    await a.send("3");
    const messages = await within(Promise.all(receives), 2000, "receives");
    expect(messages.map((m) => text(m!.data))).toEqual(["1", "2", "3"]);
    a.close();
    b.close();
  });

  test("fds travel with a message; the sender's copies stay open", async () => {
    const [a, b] = channelPair();
    const [r1, w1] = pipe();
    const [r2, w2] = pipe();
    await a.send("two pipes", { fds: [w1, w2] });
    const message = await b.receive();
    expect(text(message!.data)).toBe("two pipes");
    expect(message!.fds.length).toBe(2);
    const [x1, x2] = message!.fds as [number, number];
    expect(x1).not.toBe(w1);
    expect(fstatSync(x1).ino).toBe(fstatSync(w1).ino);
    expect(fstatSync(x2).ino).toBe(fstatSync(w2).ino);
    writeSync(x1, "one");
    writeSync(x2, "two");
    writeSync(w1, "!");
    for (const fd of [x1, x2, w1, w2]) closeSync(fd);
    expect(drain(r1)).toBe("one!");
    expect(drain(r2)).toBe("two");
    a.close();
    b.close();
  });

  test("fds travel with a multi-part message", async () => {
    const [a, b] = channelPair();
    const [r, w] = pipe();
    const big = bytes(150 * 1024, 9);
    const [, message] = await Promise.all([a.send(big, { fds: [w] }), b.receive()]);
    expect(Buffer.compare(message!.data, big)).toBe(0);
    expect(message!.fds.length).toBe(1);
    writeSync(message!.fds[0]!, "ok");
    closeSync(message!.fds[0]!);
    closeSync(w);
    expect(drain(r)).toBe("ok");
    a.close();
    b.close();
  });

  test(`${MAX_FDS} fds in one message`, async () => {
    const [a, b] = channelPair();
    const [r, w] = pipe();
    const before = fdCount();
    await a.send("many", { fds: Array(MAX_FDS).fill(w) });
    const message = await b.receive();
    expect(message!.fds.length).toBe(MAX_FDS);
    expect(new Set(message!.fds).size).toBe(MAX_FDS);
    for (const fd of message!.fds) closeSync(fd);
    expect(fdCount()).toBe(before);
    expect(() => a.send("too many", { fds: Array(MAX_FDS + 1).fill(w) })).toThrow(RangeError);
    closeSync(r);
    closeSync(w);
    a.close();
    b.close();
  });

  test("async iteration ends at end-of-file when the peer closes", async () => {
    const [a, b] = channelPair();
    await a.send("1");
    await a.send("2");
    await a.send("3");
    a.close();
    const seen: string[] = [];
    for await (const message of b) seen.push(text(message.data));
    expect(seen).toEqual(["1", "2", "3"]);
    expect(await b.receive()).toBeNull();
    b.close();
  });

  test("a receive waiting when the peer closes resolves null", async () => {
    const [a, b] = channelPair();
    const pending = b.receive();
    await Bun.sleep(10);
    a.close();
    expect(await within(pending, 2000, "receive")).toBeNull();
    b.close();
  });

  test("every receive after the peer's end-of-file resolves null, not only the first", async () => {
    const [a, b] = channelPair();
    await a.send("last");
    a.close();
    expect(text((await within(b.receive(), 2000, "message"))!.data)).toBe("last");
    for (let i = 0; i < 3; i++) expect(await within(b.receive(), 2000, `receive ${i} after end-of-file`)).toBeNull();
    b.close();
  });

  // macOS: the peer's queue is full, so the end-of-file message cannot go
  // at close(); the close's ECONNRESET ends the peer once it has read the
  // queue (channel-hangup.ts).
  test("a peer whose queue is full at close() reads what was sent, then null", async () => {
    const [a, b] = channelPair();
    const body = "x".repeat(1000);
    let rejected = 0;
    for (let i = 0; i < 2000; i++) a.send(`${i} ${body}`).catch(() => rejected++);
    await Bun.sleep(0);
    a.close();
    await Bun.sleep(0);
    let received = 0;
    while (true) {
      const message = await within(b.receive(), 10000, `message ${received} or end-of-file`);
      if (message === null) break;
      expect(text(message.data)).toBe(`${received} ${body}`);
      received++;
    }
    console.log(`${received} messages in the socket at close(), ${rejected} sends still queued (rejected CHANNEL_CLOSED)`);
    expect(received).toBeGreaterThan(0);
    expect(received + rejected).toBe(2000);
    b.close();
  });

  test("a process that exits with its channel open: a receive waiting on the other end resolves null", async () => {
    const [mine, theirs] = socketPair();
    const channel = new Channel(mine);
    const child = Bun.spawn([process.execPath, join(fixtures, "exit-open-channel.ts")], { stdio: ["ignore", "inherit", "inherit", theirs] });
    closeSync(theirs);
    expect(text((await within(channel.receive(), 10000, "the child's message"))!.data)).toBe("open");
    const ended = channel.receive();
    expect(await within(child.exited, 10000, "the child's exit")).toBe(0);
    expect(await within(ended, 5000, "end-of-file")).toBeNull();
    channel.close();
  });

  test("receive() and send() after close() reject CHANNEL_CLOSED; close() is idempotent", async () => {
    const [a, b] = channelPair();
    expect(b.closed).toBe(false);
    expect(b.fd).toBeGreaterThan(2);
    b.close();
    b.close();
    expect(b.closed).toBe(true);
    expect(b.fd).toBe(-1);
    await expectRejectsLibforks(b.receive(), "CHANNEL_CLOSED");
    await expectRejectsLibforks(b.send("x"), "CHANNEL_CLOSED");
    a.close();
  });

  test("a receive waiting when close() is called rejects CHANNEL_CLOSED", async () => {
    const [a, b] = channelPair();
    const pending = b.receive();
    await Bun.sleep(10);
    b.close();
    await expectRejectsLibforks(within(pending, 2000, "receive"), "CHANNEL_CLOSED");
    a.close();
  });

  test("send() to a closed peer rejects CHANNEL_CLOSED (EPIPE), without SIGPIPE", async () => {
    const [a, b] = channelPair();
    b.close();
    const error = await expectRejectsLibforks(a.send("nobody"), "CHANNEL_CLOSED");
    expect(error.errnoCode).toBe("EPIPE");
    a.close();
  });

  test("a raw message that is not a channel message is a PROTOCOL_ERROR", async () => {
    const [a, b] = socketPair();
    const channel = new Channel(b);
    sendFds(a, Uint8Array.of(1, 2));
    await expectRejectsLibforks(channel.receive(), "PROTOCOL_ERROR");
    closeSync(a);
    channel.close();
  });

  test("sendFds / recvFds: one raw message with fds", () => {
    const [a, b] = socketPair();
    const [r, w] = pipe();
    sendFds(a, "raw", [w]);
    const message = recvFds(b);
    expect(text(message.data)).toBe("raw");
    expect(message.fds.length).toBe(1);
    writeSync(message.fds[0]!, "via raw");
    closeSync(message.fds[0]!);
    closeSync(w);
    expect(drain(r)).toBe("via raw");
    sendFds(a, "no fds");
    expect(recvFds(b, 100, 0)).toEqual({ data: new TextEncoder().encode("no fds"), fds: [] });
    closeSync(a);
    expect(recvFds(b).data.length).toBe(0); // end-of-file
    closeSync(b);
    expect(expectThrowsLibforks(() => sendFds(a, "x"), "WRITE_ERROR").errnoCode).toBe("EBADF");
    expectThrowsLibforks(() => sendFds(-1, "x"), "INVALID_ARGUMENT", "fd");
    expectThrowsLibforks(() => sendFds(b, ""), "INVALID_ARGUMENT", "data");
  });
});

describe("Channel.send takes its arguments at the call", () => {
  /** `received` is the pipe's write end: what is written to it comes out
   * of `readEnd`. Closes both. */
  function expectSamePipe(received: number, readEnd: number) {
    expect(fstatSync(received).isFIFO()).toBe(true);
    writeSync(received, "through the pipe");
    closeSync(received);
    const buffer = Buffer.alloc(64);
    expect(buffer.toString("utf8", 0, readSync(readEnd, buffer))).toBe("through the pipe");
    closeSync(readEnd);
  }

  /** Sends pipe `p`'s write end, then at once closes it and opens
   * /dev/null, which takes the same number: what arrives must be the pipe. */
  async function sendThenReuse(a: Channel, b: Channel): Promise<void> {
    const [readEnd, writeEnd] = pipe();
    const sent = a.send("pipe", { fds: [writeEnd] });
    closeSync(writeEnd);
    const reused = openSync("/dev/null", "w");
    expect(reused).toBe(writeEnd);
    const message = await within(b.receive(), 5000, "message");
    await within(sent, 5000, "send");
    expect(message!.fds.length).toBe(1);
    const received = message!.fds[0]!;
    expectSamePipe(received, readEnd);
    closeSync(reused);
  }

  test("closing and reusing an fd number right after send() still sends the file named", async () => {
    const [a, b] = channelPair();
    await sendThenReuse(a, b);
    a.close();
    b.close();
  });

  test("the same while the send waits for room (the socket is full)", async () => {
    const [a, b] = channelPair();
    const filler = a.send(new Uint8Array(4 * 1024 * 1024)); // waits for the reader
    const [readEnd, writeEnd] = pipe();
    const sent = a.send("pipe", { fds: [writeEnd] }); // queued behind it
    closeSync(writeEnd);
    const reused = openSync("/dev/null", "w");
    expect(reused).toBe(writeEnd);
    expect((await within(b.receive(), 5000, "filler"))!.data.length).toBe(4 * 1024 * 1024);
    const message = await within(b.receive(), 5000, "message");
    await within(Promise.all([filler, sent]), 5000, "sends");
    const received = message!.fds[0]!;
    expectSamePipe(received, readEnd);
    closeSync(reused);
    a.close();
    b.close();
  });

  test("a buffer reused right after send() while the send waits: the data sent is what it held at the call", async () => {
    const [a, b] = channelPair();
    const filler = a.send(new Uint8Array(4 * 1024 * 1024)); // waits for the reader
    const buffer = new TextEncoder().encode("before");
    const sent = a.send(buffer);
    buffer.set(new TextEncoder().encode("AFTER!"));
    expect((await within(b.receive(), 5000, "filler"))!.data.length).toBe(4 * 1024 * 1024);
    expect(text((await within(b.receive(), 5000, "message"))!.data)).toBe("before");
    await within(Promise.all([filler, sent]), 5000, "sends");
    a.close();
    b.close();
  });

  test("a closed fd is refused at the call, naming it; nothing is sent", async () => {
    const [a, b] = channelPair();
    const [readEnd, writeEnd] = pipe();
    closeSync(writeEnd);
    const before = openFds();
    await expectRejectsLibforks(a.send("x", { fds: [readEnd, writeEnd] }), "INVALID_ARGUMENT", "options.fds[1]");
    expectThrowsLibforks(() => sendFds(a.fd, "x", [writeEnd]), "INVALID_ARGUMENT", "fds[0]");
    expect(fdsOpenedSince(before)).toEqual([]);
    await a.send("after");
    expect(text((await b.receive())!.data)).toBe("after");
    closeSync(readEnd);
    a.close();
    b.close();
  });

  test("fork(entry, { fds }) with a closed fd throws naming it, instead of sending one of ours", () => {
    const [readEnd, writeEnd] = pipe();
    closeSync(writeEnd);
    const before = openFds();
    expectThrowsLibforks(() => server.fork(native.read_fds_exit0, { fds: [readEnd, writeEnd] }), "INVALID_ARGUMENT", "options.fds[1]");
    expect(fdsOpenedSince(before)).toEqual([]);
    closeSync(readEnd);
  });

  test("100,000 sends to a peer that never reads: a bounded queue, not a growing heap", async () => {
    const [a, b] = channelPair();
    Bun.gc(true);
    const heapBefore = process.memoryUsage().heapUsed;
    let inSocket = 0;
    let refused = 0;
    let otherErrors = 0;
    for (let i = 0; i < 100_000; i++) {
      a.send(`message number ${i}`).then(
        () => inSocket++,
        (error: LibforksError) => {
          if (error.code === "LIMIT_ERROR") refused++;
          else otherErrors++;
        },
      );
    }
    await Bun.sleep(0);
    Bun.gc(true);
    const grown = process.memoryUsage().heapUsed - heapBefore;
    console.log(`heap +${(grown / 1024 / 1024).toFixed(1)} MiB after 100,000 sends; ${inSocket} in the socket, ${refused} refused with LIMIT_ERROR`);
    expect(otherErrors).toBe(0);
    // Accepted: what the socket's buffer holds (a few hundred of these on
    // Linux, several thousand small datagrams on macOS) and MAX_QUEUED_SENDS
    // waiting; every other send is refused at once.
    expect(inSocket).toBeGreaterThan(0);
    expect(inSocket).toBeLessThan(20_000);
    expect(refused).toBe(100_000 - inSocket - MAX_QUEUED_SENDS);
    expect(grown).toBeLessThan(16 * 1024 * 1024);
    // What was accepted arrives, in order, once the peer reads.
    const accepted = 100_000 - refused;
    for (let i = 0; i < accepted; i++) expect(text((await within(b.receive(), 5000, `message ${i}`))!.data)).toBe(`message number ${i}`);
    a.close();
    b.close();
  }, 60000);
});

describe("raw helpers and connectToParent", () => {
  test("recvFds: a message longer than maxBytes is READ_ERROR EMSGSIZE, its fds closed", () => {
    const [a, b] = socketPair();
    const [r, w] = pipe();
    const before = openFds();
    sendFds(a, "0123456789", [w]);
    const error = expectThrowsLibforks(() => recvFds(b, 4), "READ_ERROR");
    expect(error.errnoCode).toBe("EMSGSIZE");
    expect(fdsOpenedSince(before)).toEqual([]);
    for (const fd of [a, b, r, w]) closeSync(fd);
  });

  test("connectToParent() outside a spawned program throws CHANNEL_CLOSED naming the variable", () => {
    const saved = process.env[CHANNEL_FD_ENV];
    delete process.env[CHANNEL_FD_ENV];
    try {
      expectThrowsLibforks(() => connectToParent(), "CHANNEL_CLOSED", CHANNEL_FD_ENV);
    } finally {
      if (saved !== undefined) process.env[CHANNEL_FD_ENV] = saved;
    }
  });
});

describe("Channel with a spawned Bun worker", () => {
  test("messages are echoed; fds go there and come back", async () => {
    const child = server.spawn([process.execPath, join(fixtures, "echo-worker.ts")]);
    const channel = child.channel!;
    try {
      await channel.send("ping");
      expect(text((await within(channel.receive(), 10000, "echo"))!.data)).toBe("ping");

      const big = bytes(210 * 1024, 5);
      await channel.send(big);
      const echoed = await within(channel.receive(), 5000, "big echo");
      expect(Buffer.compare(echoed!.data, big)).toBe(0);

      // An fd there and back: we get a fresh fd of our pipe.
      const [r, w] = pipe();
      await channel.send("pipe", { fds: [w] });
      const back = await within(channel.receive(), 5000, "fd echo");
      expect(back!.fds.length).toBe(1);
      expect(fstatSync(back!.fds[0]!).ino).toBe(fstatSync(w).ino);
      writeSync(back!.fds[0]!, "round trip");
      closeSync(back!.fds[0]!);
      closeSync(w);
      await channel.send("sync"); // the worker has closed its copy once it answers
      await channel.receive();
      expect(drain(r)).toBe("round trip");

      // An fd made by the worker.
      await channel.send("pipe please");
      const made = await within(channel.receive(), 5000, "worker pipe");
      expect(text(made!.data)).toBe("here");
      expect(made!.fds.length).toBe(1);
      expect(drain(made!.fds[0]!)).toBe("from the worker");

      // Many in flight at once keep their order.
      const sends = Array.from({ length: 200 }, (_, i) => channel.send(`n${i}`));
      const answers: string[] = [];
      for (let i = 0; i < 200; i++) answers.push(text((await within(channel.receive(), 5000, "ordered"))!.data));
      await Promise.all(sends);
      expect(answers).toEqual(Array.from({ length: 200 }, (_, i) => `n${i}`));
    } finally {
      channel.close(); // the worker sees end-of-file and exits 0
    }
    expect((await within(child.exited, 5000, "worker exit")).exitCode).toBe(0);
  });
});

describe("Channel with native children", () => {
  test("a native echo: data and fds come back", async () => {
    const child = server.fork(native.channel_echo, { socket: true });
    const channel = child.channel!;
    const [r, w] = pipe();
    await channel.send("native ping", { fds: [w] });
    const back = await within(channel.receive(), 5000, "native echo");
    expect(text(back!.data)).toBe("native ping");
    expect(back!.fds.length).toBe(1);
    writeSync(back!.fds[0]!, "via native");
    closeSync(back!.fds[0]!);
    closeSync(w);
    // A multi-part message is echoed part by part and reassembled here.
    const big = bytes(200 * 1024 + 3, 11);
    const [, echoed] = await Promise.all([channel.send(big), channel.receive()]);
    expect(Buffer.compare(echoed!.data, big)).toBe(0);
    channel.close();
    expect((await within(child.exited, 5000, "exit")).exitCode).toBe(0);
    expect(drain(r)).toBe("via native");
  });

  test("a native child sends us a pipe it made", async () => {
    const child = server.fork(native.send_pipe_to_parent, { socket: true });
    const message = await within(child.channel!.receive(), 5000, "native pipe");
    expect(text(message!.data)).toBe("native-pipe");
    expect(message!.fds.length).toBe(1);
    const buffer = Buffer.alloc(64);
    const n = readSync(message!.fds[0]!, buffer);
    expect(buffer.subarray(0, n).toString()).toBe("from native");
    closeSync(message!.fds[0]!);
    expect((await child.exited).exitCode).toBe(0);
    // The child exited: its end is closed.
    expect(await within(child.channel!.receive(), 2000, "eof")).toBeNull();
    child.channel!.close();
  });
});
