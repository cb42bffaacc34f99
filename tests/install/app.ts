// A user's program, type-checked strictly against the installed package
// and run from source, as a bundle and as a compiled executable by
// scripts/check-install.sh. It is its own worker: with a name from
// workerName() it runs writer.ts's code instead of the main program.
import { closeSync } from "node:fs";
import {
  ForkServer,
  LibforksError,
  nativeVersion,
  pipe,
  platformKey,
  workerName,
  type ExitEvent,
  type SpawnOptions,
  type WorkerOptions,
} from "libforks";
import { runWriter } from "./writer.ts";

const name = workerName();
if (name !== null) {
  await runWriter(name);
} else {
  await main();
}

async function main(): Promise<void> {
  console.log(`libforks ${nativeVersion} on ${platformKey()}`);

  const quiet: SpawnOptions = { channel: false };
  {
    await using server = ForkServer.start();
    const event: ExitEvent = await server.spawn(["/bin/sh", "-c", "exit 3"], quiet).exited;
    console.log(`snapshot: sh exited with ${event.exitCode}`);
  }
  {
    await using server = ForkServer.start({ mode: "clean" });
    const event = await server.spawn(["/bin/sh", "-c", "exit 4"], quiet).exited;
    console.log(`clean: sh exited with ${event.exitCode}`);

    // Three Bun workers of this same program, each handed a pipe over its
    // channel; what each writes through it is read here.
    const texts = await Promise.all(
      ["writer-1", "writer-2", "writer-3"].map(async (worker) => {
        const options: WorkerOptions = { args: [worker.toUpperCase()] };
        const child = server.spawnWorker(worker, options);
        const [readEnd, writeEnd] = pipe();
        await child.channel?.send("write through this pipe", { fds: [writeEnd] });
        closeSync(writeEnd);
        const text = await new Response(Bun.file(readEnd).stream()).text();
        closeSync(readEnd);
        const exit = await child.exited;
        return `${worker}: ${text} (exit ${exit.exitCode})`;
      }),
    );
    for (const text of texts) console.log(text);
  }

  try {
    ForkServer.start({ mode: "fast" as "clean" });
  } catch (error) {
    // A bad argument is Node-shaped: a RangeError with code ERR_INVALID_ARG_VALUE.
    if (error instanceof RangeError) console.log(`bad mode: ${(error as RangeError & { code?: string }).code}`);
    else if (error instanceof LibforksError) console.log(`bad mode, as a LibforksError: ${error.code}`);
    else throw error;
  }
  console.log("ok");
}
