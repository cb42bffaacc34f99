// Prefork HTTP server: run with `bun examples/prefork-server.ts`.
//
// The parent opens one listening TCP socket on 127.0.0.1 (a random port),
// spawns 2 Bun workers (examples/http-worker.ts) through a fork server and
// hands each the socket over its channel. Both serve HTTP on it. The parent
// makes a few requests, prints which worker answered each, then stops.

import { cc, FFIType, ptr } from "bun:ffi";
import { closeSync } from "node:fs";
import { join } from "node:path";
import { ForkServer } from "libforks";

const { symbols } = cc({
  source: join(import.meta.dir, "listen.c"),
  symbols: { listen_loopback: { args: [FFIType.ptr], returns: FFIType.i32 } },
});
const portOut = new Int32Array(1);
const listenFd = symbols.listen_loopback(ptr(portOut));
if (listenFd < 0) throw new Error("cannot listen on 127.0.0.1");
const port = portOut[0]!;
console.log(`listening socket: fd ${listenFd}, http://127.0.0.1:${port}/`);

const server = ForkServer.start();
const workers = [0, 1].map(() => server.spawn([process.execPath, join(import.meta.dir, "http-worker.ts")]));
for (const worker of workers) {
  await worker.channel!.send("listen", { fds: [listenFd] });
  const ready = await worker.channel!.receive();
  console.log(`worker ${worker.pid}: ${ready ? new TextDecoder().decode(ready.data) : "gone"}`);
}
closeSync(listenFd); // the workers hold it now

const answeredBy = new Map<number, number>();
for (let i = 1; i <= 8; i++) {
  // A new connection each time, so the kernel may pick either worker.
  const response = await fetch(`http://127.0.0.1:${port}/request-${i}`, { headers: { connection: "close" } });
  const text = (await response.text()).trim();
  const pid = Number(/worker (\d+)/.exec(text)?.[1]);
  answeredBy.set(pid, (answeredBy.get(pid) ?? 0) + 1);
  console.log(`GET /request-${i} -> ${response.status} ${text}`);
}
console.log(`answers per worker: ${[...answeredBy].map(([pid, n]) => `${pid}: ${n}`).join(", ")}`);

// Closing a worker's channel asks it to stop.
for (const worker of workers) worker.channel!.close();
for (const worker of workers) console.log(`exit: ${await worker.exited}`);
await server.stop();
console.log("stopped");
