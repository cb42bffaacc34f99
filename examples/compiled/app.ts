// A program built into a single executable with `bun build --compile` (see
// build.sh). The native library (and libforks-server) are embedded in it:
// this proves they load and work from the executable, wherever it runs.
import { closeSync } from "node:fs";
import { ForkServer, nativeVersion, pipe } from "libforks";

console.log(`libforks ${nativeVersion}`);

// A snapshot server (a copy of this process): run programs through it.
{
  await using server = ForkServer.start();
  const child = server.spawn(["/bin/sh", "-c", "exit 3"], { channel: false });
  const event = await child.exited;
  console.log(`snapshot: sh exited with ${event.exitCode}`);

  // Hand a pipe to a program as its fd 5 and read what it writes there.
  const [readEnd, writeEnd] = pipe();
  const echo = server.spawn(["/bin/sh", "-c", "echo through fd 5 >&5"], { fds: { 5: writeEnd }, channel: false });
  closeSync(writeEnd);
  const text = await new Response(Bun.file(readEnd).stream()).text();
  closeSync(readEnd);
  console.log(`snapshot: read "${text.trim()}" (exit ${(await echo.exited).exitCode})`);
}

// A clean server: the embedded libforks-server program, run from a memfd.
{
  await using server = ForkServer.start({ mode: "clean" });
  const event = await server.spawn(["/bin/sh", "-c", "exit 4"], { channel: false }).exited;
  console.log(`clean: sh exited with ${event.exitCode}`);
}
console.log("ok");
