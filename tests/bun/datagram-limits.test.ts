// A channel that meets a full receiver. On Linux a full SOCK_SEQPACKET
// socket says EAGAIN and polls writable once there is room; on macOS a
// datagram for a full receiver is refused with ENOBUFS and the socket
// always polls writable. The darwin-paths suite (tests/darwin-paths/run.sh)
// runs this file against the darwin-paths build with XNU's limits
// emulated, where the second case is what happens.

import { expect, test } from "bun:test";
import { Channel, socketPair } from "../../src/index.ts";

test("a send larger than the receiver's buffer waits for the reader, without spinning", async () => {
  const [a, b] = socketPair();
  const sender = new Channel(a);
  const receiver = new Channel(b);
  try {
    const payload = new Uint8Array(4 * 1024 * 1024);
    for (let i = 0; i < payload.length; i += 4096) payload[i] = (i / 4096) & 0xff;
    const sent = sender.send(payload);
    // The receiver reads nothing for 300 ms: the sender must wait, and
    // waiting must cost next to no CPU time.
    const before = process.cpuUsage();
    await Bun.sleep(300);
    const used = process.cpuUsage(before);
    const cpuMs = (used.user + used.system) / 1000;
    const message = await receiver.receive();
    await sent;
    expect(message).not.toBeNull();
    expect(message!.data.length).toBe(payload.length);
    expect(Buffer.compare(Buffer.from(message!.data), Buffer.from(payload))).toBe(0);
    expect(cpuMs).toBeLessThan(150);
  } finally {
    sender.close();
    receiver.close();
  }
});
