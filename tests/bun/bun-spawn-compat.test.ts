// server.spawn against Bun.spawn: one program written for Bun.spawn runs
// with each, side by side, and what it observes must be the same. Then the
// options and Child members a Bun.spawn user reaches for, one by one.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ForkServer, LibforksError } from "../../src/index.ts";
import { expectThrowsArgument, openFds, fdsOpenedSince, within } from "./helpers.ts";

let server: ForkServer;
let scratch: string;

beforeAll(() => {
  server = ForkServer.start();
  scratch = mkdtempSync(join(tmpdir(), "libforks-compat-"));
});

afterAll(async () => {
  await server.stop();
  rmSync(scratch, { recursive: true, force: true });
});

// The subset of Bun.spawn's signature the program uses; both Bun.spawn and
// server.spawn are called through it exactly as written.
type Spawn = (argv: string[], options: Record<string, unknown>) => {
  readonly stdout: unknown;
  readonly exited: Promise<unknown>;
  readonly exitCode: number | null;
  readonly signalCode: string | number | null;
  readonly killed: boolean;
  resourceUsage(): unknown;
};

/** Bun's ResourceUsage members (getters on its prototype, so listed here). */
const USAGE_KEYS = {
  contextSwitches: ["voluntary", "involuntary"],
  cpuTime: ["user", "system", "total"],
  maxRSS: null,
  messages: ["sent", "received"],
  ops: ["in", "out"],
  shmSize: null,
  signalCount: null,
  swapCount: null,
} as const;

/** The usage's members replaced by their types: what must match when the
 * numbers themselves (CPU time, RSS) differ between two runs. */
function shape(usage: unknown): unknown {
  const record = usage as Record<string, Record<string, unknown>>;
  return Object.fromEntries(
    Object.entries(USAGE_KEYS).map(([key, inner]) => [
      key,
      inner === null ? typeof record[key] : Object.fromEntries(inner.map((name) => [name, typeof record[key]?.[name]])),
    ]),
  );
}

/** A program written for Bun.spawn. */
async function program(spawn: Spawn) {
  const seen: Record<string, unknown> = {};

  let exitArgs: unknown[] = [];
  const cat = spawn(["cat"], {
    stdin: new Blob(["hello from a Blob\n"]),
    stdout: "pipe",
    onExit(child: unknown, exitCode: number | null, signalCode: string | null, error?: Error) {
      exitArgs = [child, exitCode, signalCode, error];
    },
  });
  seen.catBefore = { exitCode: cat.exitCode, signalCode: cat.signalCode, killed: cat.killed, usage: cat.resourceUsage() };
  seen.catOut = await new Response(cat.stdout as ReadableStream).text();
  await cat.exited;
  await Bun.sleep(10); // onExit runs after exited in Bun
  seen.cat = { exitCode: cat.exitCode, signalCode: cat.signalCode, killed: cat.killed };
  seen.catOnExit = [exitArgs[0] === cat, exitArgs[1], exitArgs[2], exitArgs[3]];
  const usage = cat.resourceUsage() as { cpuTime: { total: bigint }; maxRSS: number };
  seen.usageShape = shape(usage);
  seen.usageSane = usage.maxRSS > 100_000 && usage.cpuTime.total >= 0n;

  const started = performance.now();
  const slow = spawn(["sleep", "10"], { timeout: 150, killSignal: "SIGKILL" });
  await slow.exited;
  seen.timeout = { exitCode: slow.exitCode, signalCode: slow.signalCode, killed: slow.killed, soon: performance.now() - started < 5000 };

  const controller = new AbortController();
  const aborted = spawn(["sleep", "10"], { signal: controller.signal });
  setTimeout(() => controller.abort(), 50);
  await aborted.exited;
  seen.signal = { exitCode: aborted.exitCode, signalCode: aborted.signalCode, killed: aborted.killed };

  const three = spawn(["sh", "-c", "echo out; exit 3"], {});
  seen.threeOut = await new Response(three.stdout as ReadableStream).text();
  await three.exited;
  seen.three = { exitCode: three.exitCode, signalCode: three.signalCode, killed: three.killed };

  try {
    spawn(["sleep", "10"], { signal: AbortSignal.abort("no need") });
    seen.preAborted = "started";
  } catch (error) {
    seen.preAborted = [(error as Error).name, (error as { cause?: unknown }).cause];
  }
  try {
    spawn(["no-such-program-libforks-compat"], {});
    seen.missing = "started";
  } catch (error) {
    seen.missing = (error as { code?: string }).code;
  }
  return seen;
}

describe("a Bun.spawn program, unchanged", () => {
  test("observes the same with Bun.spawn and with server.spawn", async () => {
    const withBun = await program((argv, options) => Bun.spawn(argv, options as never) as never);
    const withUs = await program((argv, options) => server.spawn(argv, options as never) as never);
    expect(withUs).toEqual(withBun);
    // And what both observed is what the program was written to expect.
    expect(withUs.catOut).toBe("hello from a Blob\n");
    expect(withUs.cat).toEqual({ exitCode: 0, signalCode: null, killed: true });
    expect(withUs.catOnExit).toEqual([true, 0, null, undefined]);
    expect(withUs.catBefore).toEqual({ exitCode: null, signalCode: null, killed: false, usage: undefined });
    expect(withUs.usageSane).toBe(true);
    expect(withUs.timeout).toEqual({ exitCode: null, signalCode: "SIGKILL", killed: true, soon: true });
    expect(withUs.signal).toEqual({ exitCode: null, signalCode: "SIGTERM", killed: true });
    expect(withUs.three).toEqual({ exitCode: 3, signalCode: null, killed: true });
    expect(withUs.threeOut).toBe("out\n");
    expect(withUs.preAborted).toEqual(["AbortError", "no need"]);
    expect(withUs.missing).toBe("ENOENT");
  }, 30_000);
});

describe("server.spawn options, as Bun.spawn's", () => {
  test("an unknown option is an error naming it, with a suggestion", () => {
    const error = expectThrowsArgument(() => server.spawn(["/bin/true"], { stdoutt: "pipe" } as never), RangeError, "ERR_INVALID_ARG_VALUE", "stdoutt");
    expect(error.message).toContain("did you mean stdout?");
    const bunOnly = expectThrowsArgument(() => server.spawn(["/bin/true"], { ipc() {} } as never), RangeError, "ERR_INVALID_ARG_VALUE", "options.ipc");
    expect(bunOnly.message).toContain("child.channel");
    expectThrowsArgument(() => server.spawn(["/bin/true"], { detached: true } as never), RangeError, "ERR_INVALID_ARG_VALUE", "options.detached");
  });

  test("bad types and values: TypeError / RangeError naming the option", () => {
    expectThrowsArgument(() => server.spawn(["/bin/true"], { cwd: 5 } as never), TypeError, "ERR_INVALID_ARG_TYPE", "options.cwd");
    expectThrowsArgument(() => server.spawn(["/bin/true"], { timeout: -1 }), RangeError, "ERR_INVALID_ARG_VALUE", "options.timeout");
    expectThrowsArgument(() => server.spawn(["/bin/true"], { timeout: "1" } as never), TypeError, "ERR_INVALID_ARG_TYPE", "options.timeout");
    expectThrowsArgument(() => server.spawn(["/bin/true"], { stdout: "bogus" } as never), RangeError, "ERR_INVALID_ARG_VALUE", "options.stdout");
    expectThrowsArgument(() => server.spawn(["/bin/true"], { stdout: {} } as never), TypeError, "ERR_INVALID_ARG_TYPE", "options.stdout");
    expectThrowsArgument(() => server.spawn(["/bin/true"], { signal: {} } as never), TypeError, "ERR_INVALID_ARG_TYPE", "options.signal");
    expectThrowsArgument(() => server.spawn(["/bin/true"], { onExit: 1 } as never), TypeError, "ERR_INVALID_ARG_TYPE", "options.onExit");
    expectThrowsArgument(() => server.spawn(["/bin/true"], { maxBuffer: -5 }), RangeError, "ERR_INVALID_ARG_VALUE", "options.maxBuffer");
    expectThrowsArgument(() => server.spawn("ls" as never), TypeError, "ERR_INVALID_ARG_TYPE", "argv");
    expectThrowsArgument(() => server.spawn([]), RangeError, "ERR_INVALID_ARG_VALUE", "argv");
  });

  test("defaults are Bun.spawn's: stdin /dev/null, stdout a pipe, stderr inherited", async () => {
    const child = server.spawn(["sh", "-c", "readlink /proc/self/fd/0; cat; echo done"]);
    expect(child.stdin).toBeUndefined();
    expect(child.stderr).toBeUndefined();
    expect(await new Response(child.stdout).text()).toBe("/dev/null\ndone\n");
    expect((await within(child.exited, 5000, "exited")).exitCode).toBe(0);
  });

  test("a try/catch for ENOENT works as with Bun.spawn", () => {
    let code: string | undefined;
    try {
      server.spawn(["nope"]);
    } catch (e) {
      code = (e as { code?: string }).code;
      expect(e).toBeInstanceOf(LibforksError);
      expect((e as LibforksError).result).toBe("EXEC_ERROR");
      expect((e as LibforksError).errno).toBe(-2);
    }
    expect(code).toBe("ENOENT");
  });

  test("stdin from Uint8Array, Response, ReadableStream, Bun.file; stdout to Bun.file", async () => {
    const bytes = server.spawn(["cat"], { stdin: new TextEncoder().encode("bytes") });
    expect(await new Response(bytes.stdout).text()).toBe("bytes");
    const response = server.spawn(["cat"], { stdin: new Response("response") });
    expect(await new Response(response.stdout).text()).toBe("response");
    const stream = server.spawn(["cat"], {
      stdin: new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode("str"));
          controller.enqueue(new TextEncoder().encode("eam"));
          controller.close();
        },
      }),
    });
    expect(await new Response(stream.stdout).text()).toBe("stream");
    const input = join(scratch, "in.txt");
    const output = join(scratch, "out.txt");
    writeFileSync(input, "from a file\n");
    const file = server.spawn(["cat"], { stdin: Bun.file(input), stdout: Bun.file(output) });
    expect(file.stdout).toBeUndefined();
    await within(file.exited, 5000, "exited");
    expect(readFileSync(output, "utf8")).toBe("from a file\n");
    // Larger than a pipe's buffer: written as the program reads.
    const big = new Uint8Array(1024 * 1024).fill(65);
    const large = server.spawn(["wc", "-c"], { stdin: new Blob([big]) });
    expect((await new Response(large.stdout).text()).trim()).toBe(String(big.length));
  });

  test("an unread stdout pipe neither blocks the program nor leaks its fd", async () => {
    await server.spawn(["/bin/true"], { channel: false }).exited;
    const before = openFds();
    const child = server.spawn(["sh", "-c", "head -c 300000 /dev/zero"], { channel: false });
    expect((await within(child.exited, 10_000, "exited")).exitCode).toBe(0);
    await Bun.sleep(100);
    expect(fdsOpenedSince(before)).toEqual([]);
  });

  test("maxBuffer kills the program with killSignal and stops reading its output", async () => {
    // sh forks yes, which outlives sh's SIGKILL and keeps writing: the
    // pipe must be closed (yes then dies of SIGPIPE), not read forever.
    const child = server.spawn(["sh", "-c", "yes; true"], { maxBuffer: 1000, killSignal: "SIGKILL" });
    const text = await within(new Response(child.stdout).text(), 10_000, "stdout ends");
    await within(child.exited, 10_000, "exited");
    expect(child.signalCode).toBe("SIGKILL");
    expect(text.length).toBeGreaterThan(1000);
    expect(text.length).toBeLessThanOrEqual(1024 * 1024);
    expect(text.startsWith("y\ny\n")).toBe(true);
  });

  test("argv0, cwd and env", async () => {
    // Bun prints them, not sh: where /bin/sh is busybox (as in the musl and
    // arm64 test roots) argv[0] chooses the applet, so "renamed" runs none.
    const script = "console.log(process.argv0, process.cwd(), process.env.FOO, 'GONE' in process.env)";
    const child = server.spawn([process.execPath, "-e", script], { argv0: "renamed", cwd: scratch, env: { FOO: "bar", GONE: undefined } });
    expect(await new Response(child.stdout).text()).toBe(`renamed ${realpathSync(scratch)} bar false\n`);
  });

  test("stdio with more than three entries: a socket at 3, nothing where ignored", async () => {
    const child = server.spawn(["sh", "-c", "readlink /proc/self/fd/3; readlink /proc/self/fd/4 || echo none"], {
      stdio: ["ignore", "pipe", "ignore", "pipe", "ignore"],
      channel: false,
    });
    const out = await new Response(child.stdout).text();
    expect(out).toMatch(/^socket:\[\d+\]\nnone\n$/);
    expect(child.stdio.length).toBe(5);
    expect(typeof child.stdio[3]).toBe("number");
    expect(child.stdio[4]).toBeNull();
  });

  test("unref() covers the exit, the channel and the stdout pipe: the process may exit", async () => {
    const run = Bun.spawn([process.execPath, join(import.meta.dir, "fixtures", "unref-child.ts")], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await within(Promise.all([new Response(run.stdout).text(), new Response(run.stderr).text(), run.exited]), 10_000, "unref-child.ts");
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(out).toMatch(/^unref'd \d+\n$/);
  }, 15_000);

  test("output read across unref() and ref() loses nothing", async () => {
    const child = server.spawn(["sh", "-c", "echo a; sleep 0.2; echo b; sleep 0.2; echo c"], { channel: false });
    const reader = child.stdout!.getReader();
    const first = await within(reader.read(), 5000, "first chunk");
    expect(new TextDecoder().decode(first.value)).toBe("a\n");
    // unref() moves the pipe from Bun's reader to the doorbell; ref()
    // keeps it there, ref'd (an unref'd doorbell wait is only served while
    // a ref'd one keeps the doorbell read).
    child.unref();
    child.ref();
    let rest = "";
    while (true) {
      const { value, done } = await within(reader.read(), 5000, "rest");
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest).toBe("b\nc\n");
    expect((await within(child.exited, 5000, "exited")).exitCode).toBe(0);
  });

  test("an unnamed signal is reported by number", async () => {
    // Bun kills itself, not sh: under qemu-user the arm64 server reads a
    // wait status through the emulator, which numbers real-time signals
    // its own way (it keeps some host ones for itself); a native x86-64 sh
    // killed by host signal 40 was reported as 36. A program emulated like
    // the server gets and reports the program's own number.
    const child = server.spawn([process.execPath, "-e", "process.kill(process.pid, 40)"]);
    await within(child.exited, 5000, "exited");
    expect(child.signalCode).toBe(40);
  });

  test("await using kills the child and waits for its exit", async () => {
    let pid = 0;
    let exited: Promise<unknown>;
    {
      await using child = server.spawn(["sleep", "10"]);
      pid = child.pid;
      exited = child.exited;
    }
    expect(Bun.peek.status(exited!)).toBe("fulfilled");
    expect(pid).toBeGreaterThan(0);
  });

  test("inspect shows pid and state", async () => {
    const child = server.spawn(["/bin/true"]);
    await child.exited;
    expect(Bun.inspect(child)).toBe(`Child { pid: ${child.pid}, state: "exited with 0", argv: ["/bin/true"] }`);
    expect(Object.prototype.toString.call(child)).toBe("[object Child]");
    expect(Bun.inspect(server)).toContain(`pid: ${server.pid}`);
    expect(Bun.inspect(server)).toContain('mode: "snapshot"');
    expect(Object.prototype.toString.call(server)).toBe("[object ForkServer]");
  });

  test("server.children() lists the running children", async () => {
    const child = server.spawn(["sleep", "10"]);
    const listed = server.children().find((entry) => entry.pid === child.pid);
    expect(listed?.argv).toEqual(["sleep", "10"]);
    expect(listed?.startTime).toBeInstanceOf(Date);
    child.kill();
    await child.exited;
    expect(server.children().some((entry) => entry.pid === child.pid)).toBe(false);
  });
});
