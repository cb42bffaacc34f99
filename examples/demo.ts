// libforks demo: run with `bun examples/demo.ts`.
//
// Starts a fork server, forks two native children (one exits with a code,
// one is killed with a signal), spawns a Bun worker and hands it a pipe over
// its channel, prints every exit, and stops the server.

import { cc, FFIType } from "bun:ffi";
import { closeSync } from "node:fs";
import { join } from "node:path";
import { ForkServer, pipe } from "libforks";

// Native entrypoints must exist before the server starts: children are
// copies of this process as it was at start.
const entry = { args: [FFIType.ptr, FFIType.i32], returns: FFIType.void } as const;
const { symbols } = cc({
  source: join(import.meta.dir, "demo-native.c"),
  symbols: { compute: entry, serve_forever: entry },
});

const server = ForkServer.start();
console.log(`fork server started: pid ${server.pid}`);

// 1. A native child that exits with a code.
const computer = server.fork(symbols.compute);
console.log(`forked native child ${computer.pid} (compute)`);
console.log(`  exit: ${await computer.exited}`);

// 2. A native child that runs until it is killed.
const daemon = server.fork(symbols.serve_forever);
console.log(`forked native child ${daemon.pid} (serve_forever), sending SIGKILL`);
daemon.kill("SIGKILL");
console.log(`  exit: ${await daemon.exited}`);

// 3. A Bun program with a channel to us; we hand it a pipe's write end.
const [readEnd, writeEnd] = pipe();
const worker = server.spawn([process.execPath, join(import.meta.dir, "worker.ts")]);
console.log(`spawned Bun worker ${worker.pid}, sending it a pipe over its channel`);
await worker.channel!.send("hello from the parent", { fds: [writeEnd] });
closeSync(writeEnd); // the worker holds its own copy now
const answer = await new Response(Bun.file(readEnd).stream()).text(); // until the worker closes it
closeSync(readEnd);
console.log(`  read from the pipe: ${answer}`);
console.log(`  exit: ${await worker.exited}`);
worker.channel!.close();

// SIGTERM to any child still running, then the server exits.
// (`await using server = ForkServer.start()` does this at the end of a block.)
await server.stop();
console.log(`fork server ${server.pid} stopped`);
