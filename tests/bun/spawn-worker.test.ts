// server.spawnWorker(): Bun workers that are this same program, run again
// with LIBFORKS_WORKER set and dispatched on workerName(); guarded against
// a main module that forgets to dispatch. (From a compiled executable:
// scripts/check-install.sh.)

import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { ForkServer, LibforksError, MAX_WORKER_DEPTH, WORKER_ENV, workerName } from "../../src/index.ts";
import { fixtures, runProgram } from "./helpers.ts";

const run = runProgram;

/** Runs `body` with process.env changed as `env` says, then restores it. */
async function withEnv(env: Record<string, string | undefined>, body: () => unknown): Promise<void> {
  const saved = Object.fromEntries(Object.keys(env).map((key) => [key, process.env[key]]));
  const assign = (values: Record<string, string | undefined>) => {
    for (const [key, value] of Object.entries(values)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  };
  assign(env);
  try {
    await body();
  } finally {
    assign(saved);
  }
}

describe("spawnWorker", () => {
  test("three workers of this program, each passed a pipe over its channel, write through it (snapshot and clean)", async () => {
    for (const mode of ["snapshot", "clean"]) {
      const { code, out, err } = await run([process.execPath, join(fixtures, "workers-app.ts"), mode]);
      expect(err).toBe("");
      expect(code).toBe(0);
      const pids = new Set<string>();
      for (const i of [1, 2, 3]) {
        const match = new RegExp(`^writer-${i} pid (\\d+) argv \\["arg-${i}"\\] exit 0$`, "m").exec(out);
        expect(match).not.toBeNull();
        pids.add(match![1]!);
      }
      expect(pids.size).toBe(3);
    }
  }, 60000);

  test("a main module that does not dispatch on workerName(): its worker refuses to start another (no fork bomb)", async () => {
    const { code, out, err } = await run([process.execPath, join(fixtures, "no-dispatch.ts")]);
    expect(err).toBe("");
    expect(code).toBe(0);
    const result = JSON.parse(out) as { exitCode: number; stderr: string };
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain("WORKER_NOT_DISPATCHED");
    expect(result.stderr).toContain('this process is worker "forgotten"');
  }, 30000);

  test("workerName() is null in the main program and the name in a worker", async () => {
    expect(workerName()).toBeNull();
    await withEnv({ [WORKER_ENV]: "writer" }, () => expect(workerName()).toBe("writer"));
  });

  test(`workers nest at most ${MAX_WORKER_DEPTH} levels: LIMIT_ERROR beyond`, async () => {
    await using server = ForkServer.start();
    await withEnv({ LIBFORKS_WORKER_DEPTH: String(MAX_WORKER_DEPTH) }, () => {
      expect(() => server.spawnWorker("deep")).toThrow(LibforksError);
      try {
        server.spawnWorker("deep");
      } catch (error) {
        expect((error as LibforksError).code).toBe("LIMIT_ERROR");
      }
    });
  });

  test("bad arguments are named", async () => {
    await using server = ForkServer.start();
    const code = (body: () => unknown) => {
      try {
        body();
      } catch (error) {
        return `${(error as LibforksError).code}: ${(error as Error).message}`;
      }
      return "no error";
    };
    expect(code(() => server.spawnWorker(""))).toStartWith("ERR_INVALID_ARG_VALUE: name must be a non-empty string");
    expect(code(() => server.spawnWorker(7 as unknown as string))).toStartWith("ERR_INVALID_ARG_TYPE: name must be");
    expect(code(() => server.spawnWorker("w", { args: "x" as unknown as string[] }))).toStartWith("ERR_INVALID_ARG_TYPE: options.args must be an array");
    expect(code(() => server.spawnWorker("w", { args: [1 as unknown as string] }))).toStartWith("ERR_INVALID_ARG_TYPE: options.args[0] must be a string");
  });

  test("spawn() does not pass LIBFORKS_WORKER on: a program is a worker only through spawnWorker()", async () => {
    await using server = ForkServer.start();
    await withEnv({ [WORKER_ENV]: "inherited", LIBFORKS_WORKER_DEPTH: "1" }, async () => {
      workerName();
      const child = server.spawn(["/bin/sh", "-c", 'echo "[$LIBFORKS_WORKER][$LIBFORKS_WORKER_DEPTH]"'], { stdio: ["inherit", "pipe", "inherit"], channel: false });
      expect((await new Response(child.stdout!).text()).trim()).toBe("[][]");
      expect((await child.exited).exitCode).toBe(0);
    });
  });
});
