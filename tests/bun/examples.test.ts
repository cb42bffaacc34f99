// The examples run and print what they should.

import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { patience, runProgram } from "./helpers.ts";

const root = join(import.meta.dir, "..", "..");

const run = (argv: string[]) => runProgram(argv, { cwd: root });

describe("examples", () => {
  test("demo.ts", async () => {
    const { code, out, err } = await run([process.execPath, "examples/demo.ts"]);
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(out).toMatch(/^fork server started: pid \d+$/m);
    expect(out).toMatch(/exit: pid \d+ exited with 42$/m);
    expect(out).toMatch(/exit: pid \d+ killed by SIGKILL$/m);
    const worker = /spawned Bun worker (\d+)/.exec(out)?.[1];
    expect(out).toContain(`read from the pipe: worker ${worker} got "hello from the parent" and wrote this through the pipe`);
    expect(out).toContain(`exit: pid ${worker} exited with 0`);
    expect(out).toMatch(/^fork server \d+ stopped$/m);
  }, patience(30000));

  test("prefork-server.ts", async () => {
    const { code, out, err } = await run([process.execPath, "examples/prefork-server.ts"]);
    expect(err).toBe("");
    expect(code).toBe(0);
    const workers = [...out.matchAll(/^worker (\d+): ready$/gm)].map((m) => m[1]);
    expect(workers.length).toBe(2);
    const answers = [...out.matchAll(/^GET \/request-(\d) -> 200 hello from worker (\d+) /gm)];
    expect(answers.map((m) => m[1])).toEqual(["1", "2", "3", "4", "5", "6", "7", "8"]);
    for (const m of answers) expect(workers).toContain(m[2]);
    for (const pid of workers) expect(out).toContain(`exit: pid ${pid} exited with 0`);
    expect(out).toMatch(/stopped\n$/);
  }, patience(30000));

  test("compiled/build.sh: the package works inside a bun build --compile executable", async () => {
    const { code, out, err } = await run(["sh", "examples/compiled/build.sh"]);
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(out).toContain("snapshot: sh exited with 3");
    expect(out).toContain("clean: sh exited with 4");
    expect(out).toContain("compiled executable works");
  }, patience(30000));
});
