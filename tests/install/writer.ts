// The worker's code: receives a pipe over the channel to its parent and
// writes one line through it.
import { closeSync } from "node:fs";
import { connectToParent, type Message } from "libforks";

export async function runWriter(name: string): Promise<void> {
  const channel = connectToParent();
  const message: Message | null = await channel.receive();
  const fd = message?.fds[0];
  if (fd === undefined) throw new Error(`${name}: no pipe came over the channel`);
  await Bun.write(Bun.file(fd), `${name} (argv ${process.argv.slice(2).join(" ")}) wrote this through its pipe`);
  closeSync(fd);
  channel.close();
}
