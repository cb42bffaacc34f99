// An HTTP worker spawned by prefork-server.ts. It receives a listening
// socket over its channel and serves HTTP on it, next to its siblings that
// hold the same socket (the kernel hands each connection to one of them).
// It stops when the parent closes the channel.
import http from "node:http";
import net from "node:net";
import { connectToParent } from "libforks";

const channel = connectToParent();
const message = await channel.receive();
if (!message || message.fds.length !== 1) {
  console.error("http-worker: expected a listening socket");
  process.exit(1);
}
const [listenFd] = message.fds as [number];

let served = 0;
const app = http.createServer((request, response) => {
  served++;
  response.setHeader("content-type", "text/plain");
  response.end(`hello from worker ${process.pid} (request ${served} here, ${request.url})\n`);
});
// Bun's node:http ignores listen({ fd }), node:net honours it: accept with
// net and hand each connection to the HTTP server.
const listener = net.createServer((socket) => app.emit("connection", socket));
listener.listen({ fd: listenFd });
await channel.send("ready");

// The parent closes the channel to stop us.
for await (const _ of channel) {
  // no other messages expected
}
listener.close();
app.close();
console.log(`  worker ${process.pid}: channel closed after ${served} requests, exiting`);
process.exit(0);
