// The readiness doorbell of this event loop: a pipe (plus a watch set)
// that the native readiness thread writes when a watched fd is ready.
// Waits in a row share one; an idle process closes it, so it can exit.

import { expect, test } from "bun:test";
import { join } from "node:path";
import { Channel, socketPair } from "../../src/index.ts";
import { fdsOpenedSince, fixtures, openFds, within } from "./helpers.ts";

/** Pipes this process opened since `before` (link targets, "pipe:[inode]"). */
function pipesSince(before: Map<number, string>): string[] {
  return fdsOpenedSince(before)
    .map((entry) => entry.split(" ")[1]!)
    .filter((target) => target.startsWith("pipe:"));
}

test("a ping-pong of 50 waits on a channel uses one doorbell; it closes once idle", async () => {
  // Readers left lingering by earlier tests in this process stop first.
  await Bun.sleep(100);
  const [a, b] = socketPair();
  const left = new Channel(a);
  const right = new Channel(b);
  const before = openFds();
  // Pipes open while the first receive waits: the doorbell (and Bun's
  // copy of its fd) among them. No later wait may add one.
  let first: Set<string> | null = null;
  const added = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const received = left.receive();
    // A macrotask later the receive found nothing and waits on the doorbell.
    await Bun.sleep(0);
    const open = pipesSince(new Map());
    if (first === null) first = new Set(open);
    for (const target of open) if (!first.has(target)) added.add(target);
    await right.send(`ping ${i}`);
    expect(new TextDecoder().decode((await received)!.data)).toBe(`ping ${i}`);
    // The peer's turn: nothing waits for a while.
    await Bun.sleep(1);
  }
  // Reopened per wait, the doorbell would be a new pipe each time.
  expect([...added]).toEqual([]);
  left.close();
  right.close();
  await within(
    (async () => {
      while (pipesSince(before).length > 0) await Bun.sleep(5);
    })(),
    2000,
    "the idle doorbell closing",
  );
});

test("a process whose last wait ended exits promptly: the lingering reader does not hold it", async () => {
  const child = Bun.spawn([process.execPath, join(fixtures, "channel-one-wait.ts")], { stdout: "pipe", stderr: "inherit" });
  expect(await within(child.exited, 10_000, "the fixture's exit")).toBe(0);
  expect(await new Response(child.stdout).text()).toBe("received\n");
});
