// A Bun program spawned by demo.ts. It receives one message on its channel
// to the parent, with the write end of a pipe, and answers through the pipe.
import { closeSync, writeSync } from "node:fs";
import { connectToParent } from "libforks";

const channel = connectToParent();
const message = await channel.receive();
if (!message || message.fds.length !== 1) {
  console.error("worker: expected one message with one fd");
  process.exit(1);
}
const [pipeFd] = message.fds as [number];
const said = new TextDecoder().decode(message.data);
writeSync(pipeFd, `worker ${process.pid} got "${said}" and wrote this through the pipe`);
closeSync(pipeFd);
channel.close();
