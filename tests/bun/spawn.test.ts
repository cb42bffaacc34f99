// server.spawn: programs (Bun scripts included) run in children of the server.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, closeSync, fstatSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CHANNEL_FD_ENV, ForkServer, LibforksError, pipe } from "../../src/index.ts";
import { lib } from "../../src/native.ts";
import {
  buildListFds,
  expectThrowsArgument,
  expectThrowsLibforks,
  fdsOpenedSince,
  fixtures,
  native,
  openFds,
  readAllSync,
  streamText,
  within,
} from "./helpers.ts";

let server: ForkServer;
let listFds: string;
let inheritable: number; // an fd without close-on-exec, held by the server
let scratch: string;

beforeAll(() => {
  listFds = buildListFds();
  scratch = realpathSync(mkdtempSync(join(tmpdir(), "libforks-spawn-")));
  const devNull = openSync("/dev/null", "r");
  inheritable = native.dup_inheritable(devNull);
  closeSync(devNull);
  expect(inheritable).toBeGreaterThan(2);
  server = ForkServer.start();
});
afterAll(async () => {
  await server.stop();
  closeSync(inheritable);
  rmSync(scratch, { recursive: true, force: true });
});

/** Runs listfds; returns its fds (number -> link target) and signal masks. */
async function runListFds(options: Parameters<ForkServer["spawn"]>[1] = {}) {
  const child = server.spawn([listFds], { stdio: ["ignore", "pipe", "inherit"], ...options });
  const [text, event] = await within(Promise.all([streamText(child.stdout), child.exited]), 5000, "listfds");
  expect(event.exitCode).toBe(0);
  const fds = new Map<number, string>();
  let sigign = -1n;
  let sigblk = -1n;
  for (const line of text.trim().split("\n")) {
    const [first, rest] = [line.slice(0, line.indexOf(" ")), line.slice(line.indexOf(" ") + 1)];
    if (first === "sigign") sigign = BigInt(`0x${rest.trim()}`);
    else if (first === "sigblk") sigblk = BigInt(`0x${rest.trim()}`);
    else fds.set(Number(first), rest);
  }
  return { fds, sigign, sigblk, child };
}

const inode = (fd: number) => `${fstatSync(fd).ino}`;

describe("spawn", () => {
  test("a Bun worker gets a pipe over its channel and writes through it", async () => {
    const [readEnd, writeEnd] = pipe();
    const child = server.spawn([process.execPath, join(fixtures, "pipe-writer.ts")]);
    expect(child.channel).toBeDefined();
    await child.channel!.send("hello", { fds: [writeEnd] });
    closeSync(writeEnd); // the worker holds its own copy
    const event = await within(child.exited, 10000, "worker exited");
    expect(event.exitCode).toBe(0);
    // The spawned program keeps the child's pid (execve, no extra fork).
    expect(readAllSync(readEnd)).toBe(`hello from ${child.pid}`);
    closeSync(readEnd);
    child.channel!.close();
  });

  test('stdio "pipe": what is written to stdin comes back on stdout, and end() gives the program end-of-file', async () => {
    const child = server.spawn(["/bin/cat"], { stdio: "pipe", channel: false });
    try {
      expect(child.channel).toBeUndefined();
      child.stdin!.write("line one\n");
      child.stdin!.write(new TextEncoder().encode("line two\n"));
      await child.stdin!.end();
      // cat exits once its stdin reaches end-of-file.
      const [out, err, event] = await within(
        Promise.all([streamText(child.stdout), streamText(child.stderr), child.exited]),
        2000,
        "cat after stdin.end()",
      );
      expect(out).toBe("line one\nline two\n");
      expect(err).toBe("");
      expect(event.exitCode).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  });

  test('stdio "pipe": stdout is read while the program runs', async () => {
    const child = server.spawn(["/bin/sh", "-c", "echo first; read line; echo \"got $line\""], { stdio: "pipe", channel: false });
    try {
      const reader = child.stdout!.getReader();
      const first = await within(reader.read(), 2000, "first line");
      expect(new TextDecoder().decode(first.value)).toBe("first\n");
      child.stdin!.write("reply\n");
      await child.stdin!.flush();
      const second = await within(reader.read(), 2000, "second line");
      expect(new TextDecoder().decode(second.value)).toBe("got reply\n");
      expect((await within(child.exited, 2000, "sh")).exitCode).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  });

  test('stdio "pipe" leaks no fd once the streams are read to the end and the program exited', async () => {
    const run = async () => {
      const child = server.spawn(["/bin/echo", "hi"], { stdio: ["ignore", "pipe", "pipe"], channel: false });
      const [out, err, event] = await within(
        Promise.all([streamText(child.stdout), streamText(child.stderr), child.exited]),
        2000,
        "echo",
      );
      expect(out).toBe("hi\n");
      expect(err).toBe("");
      expect(event.exitCode).toBe(0);
    };
    await run(); // warm-up: lazily opened fds (doorbell, ...)
    const before = openFds();
    for (let i = 0; i < 10; i++) await run();
    await Bun.sleep(50);
    Bun.gc(true);
    expect(fdsOpenedSince(before)).toEqual([]);
  });

  test("stdout of a program that writes a lot (1 MiB) is read whole", async () => {
    const child = server.spawn(["/bin/sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' x"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const [out, event] = await within(Promise.all([streamText(child.stdout), child.exited]), 10000, "head");
    expect(out.length).toBe(1 << 20);
    expect(out).toMatch(/^x+$/);
    expect(event.exitCode).toBe(0);
  });

  test('stdio "ignore": 0, 1 and 2 are /dev/null', async () => {
    const { fds } = await runListFds({ stdio: ["ignore", "pipe", "ignore"], channel: false });
    expect(fds.get(0)).toBe("/dev/null");
    expect(fds.get(2)).toBe("/dev/null");
    expect(fds.get(1)).toMatch(/^pipe:\[\d+\]$/);

    // Reading stdin gives end-of-file, writes to stdout vanish.
    const child = server.spawn(["/bin/sh", "-c", "if read x; then exit 3; else exit 4; fi"], { stdio: "ignore" });
    expect(child.stdout).toBeUndefined();
    expect(child.stdin).toBeUndefined();
    expect((await within(child.exited, 5000, "sh")).exitCode).toBe(4);
  });

  test("stdio as an fd number: the program writes to our file", async () => {
    const path = join(scratch, "out.txt");
    const fd = openSync(path, "w");
    const child = server.spawn(["/bin/sh", "-c", "echo out; echo err >&2"], { stdio: ["ignore", fd, fd], channel: false });
    closeSync(fd);
    expect((await within(child.exited, 5000, "sh")).exitCode).toBe(0);
    expect(readFileSync(path, "utf8")).toBe("out\nerr\n");
  });

  test("env is exactly the given environment (plus the channel's variable)", async () => {
    const run = async (options: Parameters<ForkServer["spawn"]>[1]) => {
      const child = server.spawn(["/usr/bin/env"], { stdio: ["ignore", "pipe", "inherit"], ...options });
      const [text, event] = await within(Promise.all([streamText(child.stdout), child.exited]), 5000, "env");
      expect(event.exitCode).toBe(0);
      return text.trim().split("\n").sort();
    };
    expect(await run({ env: { FOO: "bar baz", EMPTY: "", DROPPED: undefined }, channel: false })).toEqual(["EMPTY=", "FOO=bar baz"]);
    expect(await run({ env: { FOO: "1" } })).toEqual(["FOO=1", `${CHANNEL_FD_ENV}=3`]);
    // Default: this process's environment.
    process.env.LIBFORKS_TEST_MARK = "marked";
    try {
      const lines = await run({ channel: false });
      expect(lines).toContain("LIBFORKS_TEST_MARK=marked");
      expect(lines).toContain(`PATH=${process.env.PATH}`);
    } finally {
      delete process.env.LIBFORKS_TEST_MARK;
    }
  });

  test("cwd is honoured, and a relative program path is resolved against it", async () => {
    const pwd = server.spawn(["/bin/pwd"], { cwd: scratch, stdio: ["ignore", "pipe", "inherit"], channel: false });
    const [text, event] = await within(Promise.all([streamText(pwd.stdout), pwd.exited]), 5000, "pwd");
    expect(event.exitCode).toBe(0);
    expect(text.trim()).toBe(scratch);
    expect(text.trim()).not.toBe(process.cwd());

    const script = join(scratch, "hello.sh");
    writeFileSync(script, "#!/bin/sh\necho \"hello from $(pwd)\"\nexit 6\n");
    chmodSync(script, 0o755);
    const child = server.spawn(["./hello.sh"], { cwd: scratch, stdio: ["ignore", "pipe", "inherit"], channel: false });
    const [out, exit] = await within(Promise.all([streamText(child.stdout), child.exited]), 5000, "hello.sh");
    expect(out).toBe(`hello from ${scratch}\n`);
    expect(exit.exitCode).toBe(6);
  });

  test("a bare program name is searched in the given env's PATH", async () => {
    const dir = mkdtempSync(join(scratch, "bin-"));
    writeFileSync(join(dir, "only-here"), "#!/bin/sh\nexit 9\n");
    chmodSync(join(dir, "only-here"), 0o755);
    const child = server.spawn(["only-here"], { env: { PATH: dir }, stdio: "ignore" });
    expect((await within(child.exited, 5000, "only-here")).exitCode).toBe(9);
    expect(expectThrowsLibforks(() => server.spawn(["only-here"], { stdio: "ignore" }), "ENOENT").result).toBe("EXEC_ERROR");
  });

  test("a missing program throws ENOENT (result EXEC_ERROR) synchronously, and leaks no fd", async () => {
    // Warm-up: fds opened once per process (the doorbell, ...) come first.
    await server.spawn(["/bin/true"], { stdio: "ignore", channel: false }).exited;
    const before = openFds();
    const error = expectThrowsLibforks(() => server.spawn(["/nonexistent/program", "-x"], { stdio: "pipe" }), "ENOENT");
    expect(error.result).toBe("EXEC_ERROR");
    expect(error.errnoCode).toBe("ENOENT");
    expect(error.errno).toBe(-2); // negative, as Node's SystemError
    expect(error.syscall).toBe("spawn /nonexistent/program");
    expect(error.path).toBe("/nonexistent/program");
    expect(error.spawnargs).toEqual(["-x"]);
    expect(error.message).toContain("/nonexistent/program");

    const notFound = expectThrowsLibforks(() => server.spawn(["no-such-program-libforks"]), "ENOENT");
    expect(notFound.result).toBe("EXEC_ERROR");
    expect(notFound.path).toBe("no-such-program-libforks");
    expect(notFound.message).toContain("no-such-program-libforks");

    const badCwd = expectThrowsLibforks(() => server.spawn(["/bin/true"], { cwd: join(scratch, "missing-dir") }), "ENOENT");
    expect(badCwd.result).toBe("EXEC_ERROR");
    expect(badCwd.syscall).toBe("chdir");
    expect(badCwd.path).toBe(join(scratch, "missing-dir"));
    expect(badCwd.message).toContain(join(scratch, "missing-dir"));

    const notExecutable = join(scratch, "not-executable");
    writeFileSync(notExecutable, "#!/bin/sh\n");
    chmodSync(notExecutable, 0o644);
    expect(expectThrowsLibforks(() => server.spawn([notExecutable]), "EACCES").result).toBe("EXEC_ERROR");

    // Give the failed children's exit fds time to be reported and closed.
    await Bun.sleep(100);
    expect(fdsOpenedSince(before)).toEqual([]);
    // The server still works.
    const ok = server.spawn(["/bin/true"], { channel: false });
    expect((await within(ok.exited, 5000, "true")).exitCode).toBe(0);
  });

  test("an fd that is not open, given as stdio or in fds, fails synchronously and leaks no fd", async () => {
    await server.spawn(["/bin/true"], { stdio: "ignore", channel: false }).exited;
    const before = openFds();
    const notOpen = 9999;
    expectThrowsArgument(
      () => server.spawn(["/bin/true"], { stdio: ["ignore", notOpen, "ignore"], channel: false }),
      RangeError,
      "ERR_INVALID_ARG_VALUE",
      "options.stdio[1]",
    );
    expectThrowsArgument(() => server.spawn(["/bin/true"], { fds: { 7: notOpen } }), RangeError, "ERR_INVALID_ARG_VALUE", "options.fds[7]");
    await Bun.sleep(100);
    expect(fdsOpenedSince(before)).toEqual([]);
  });

  test("channel: false: the program does not inherit our own LIBFORKS_CHANNEL_FD", async () => {
    // As in a spawned worker that spawns programs of its own.
    const saved = process.env[CHANNEL_FD_ENV];
    process.env[CHANNEL_FD_ENV] = "3";
    try {
      const child = server.spawn(["/usr/bin/env"], { stdio: ["ignore", "pipe", "inherit"], channel: false });
      const [text, event] = await within(Promise.all([streamText(child.stdout), child.exited]), 5000, "env");
      expect(event.exitCode).toBe(0);
      expect(text).toContain("PATH=");
      // fd 3 is not a channel in that program: nothing may say it is.
      expect(text.split("\n").filter((line) => line.startsWith(`${CHANNEL_FD_ENV}=`))).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env[CHANNEL_FD_ENV];
      else process.env[CHANNEL_FD_ENV] = saved;
    }
  });

  test("exit code 255 and death by SIGSEGV are decoded", async () => {
    const exit255 = await within(server.spawn(["/bin/sh", "-c", "exit 255"], { channel: false }).exited, 5000, "sh");
    expect(exit255.exitCode).toBe(255);
    expect(exit255.signal).toBeNull();
    const segv = await within(server.spawn(["/bin/sh", "-c", "kill -SEGV $$"], { channel: false }).exited, 5000, "sh");
    expect(segv.exitCode).toBeNull();
    expect(segv.signal).toBe("SIGSEGV");
    expect(segv.signalNumber).toBe(11);
  });

  test("the program holds exactly fds 0, 1, 2 and its channel", async () => {
    const { fds } = await runListFds();
    expect([...fds.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2, 3]);
    expect(fds.get(1)).toMatch(/^pipe:\[\d+\]$/);
    expect(fds.get(3)).toMatch(/^socket:\[\d+\]$/);
    // Not the inheritable fd the server itself holds.
    expect(fds.has(inheritable)).toBe(false);
  });

  test("channel: false leaves exactly 0, 1, 2", async () => {
    const { fds } = await runListFds({ channel: false });
    expect([...fds.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2]);
  });

  test("fds: { 5: fd } makes fd the program's fd 5; the channel stays at 3", async () => {
    const [readEnd, writeEnd] = pipe();
    const { fds } = await runListFds({ fds: { 5: writeEnd } });
    expect([...fds.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 5]);
    expect(fds.get(5)).toBe(`pipe:[${inode(writeEnd)}]`);
    expect(fds.get(3)).toMatch(/^socket:/);
    closeSync(readEnd);
    closeSync(writeEnd);
  });

  test("fds: { 3: fd } moves the channel to 4 and says so in the environment", async () => {
    const [readEnd, writeEnd] = pipe();
    const { fds } = await runListFds({ fds: { 3: writeEnd } });
    expect([...fds.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4]);
    expect(fds.get(3)).toBe(`pipe:[${inode(writeEnd)}]`);
    expect(fds.get(4)).toMatch(/^socket:/);
    const env = server.spawn(["/bin/sh", "-c", `echo $${CHANNEL_FD_ENV}`], { fds: { 3: writeEnd }, stdio: ["ignore", "pipe", "inherit"] });
    expect((await streamText(env.stdout)).trim()).toBe("4");
    await env.exited;
    closeSync(readEnd);
    closeSync(writeEnd);
  });

  test("a program written to through an fd mapped with fds: { 5: fd }", async () => {
    const [readEnd, writeEnd] = pipe();
    const child = server.spawn(["/bin/sh", "-c", "echo through five >&5"], { fds: { 5: writeEnd }, stdio: "ignore", channel: false });
    closeSync(writeEnd);
    expect((await within(child.exited, 5000, "sh")).exitCode).toBe(0);
    expect(readAllSync(readEnd)).toBe("through five\n");
    closeSync(readEnd);
  });

  test("SIGPIPE is at its default disposition in a spawned program, though Bun ignores it", async () => {
    const SIGPIPE_BIT = 1n << 12n; // signal 13
    const own = readFileSync("/proc/self/status", "utf8").match(/^SigIgn:\s*([0-9a-f]+)$/m)![1]!;
    expect(BigInt(`0x${own}`) & SIGPIPE_BIT).toBe(SIGPIPE_BIT);
    const { sigign, sigblk } = await runListFds();
    expect(sigign).toBeGreaterThanOrEqual(0n);
    expect(sigign & SIGPIPE_BIT).toBe(0n);
    expect(sigign).toBe(0n); // nothing ignored at all
    expect(sigblk).toBe(0n); // nothing blocked
  });

  test("a spawned program writing to a closed pipe dies of SIGPIPE", async () => {
    const [readEnd, writeEnd] = pipe();
    closeSync(readEnd);
    const child = server.spawn(["/bin/sh", "-c", "sleep 0.05; echo x; exit 0"], { stdio: ["ignore", writeEnd, "ignore"], channel: false });
    closeSync(writeEnd);
    const event = await within(child.exited, 5000, "sh");
    // The shell's echo builtin gets SIGPIPE, which kills the shell.
    expect(event.signal).toBe("SIGPIPE");
  });

  test("a spawned program can be killed", async () => {
    const child = server.spawn(["/bin/sleep", "30"], { channel: false });
    child.kill("SIGKILL");
    const event = await within(child.exited, 5000, "sleep");
    expect(event.signal).toBe("SIGKILL");
    expect(event.pid).toBe(child.pid);
  });

  test("a Bun worker's exit code is reported", async () => {
    const child = server.spawn([process.execPath, "-e", "process.exit(17)"], { channel: false });
    expect((await within(child.exited, 10000, "bun -e")).exitCode).toBe(17);
  });

  test("a failed queued exec spec closes the control socket once and forks nothing", async () => {
    // Fault injection: the first send of a spec fails, as sendmsg can. A
    // spec too large to travel with the request is sent on the socket.
    const big = { env: { BIG: "x".repeat(64 * 1024) } };
    const real = lib.libforks_send_exec_spec;
    let calls = 0;
    (lib as { libforks_send_exec_spec: unknown }).libforks_send_exec_spec = (...args: Parameters<typeof real>) => {
      calls++;
      return calls === 1 ? -2 /* WRITE_ERROR */ : real(...args);
    };
    let sentinel = -1;
    try {
      expect(() => server.spawn(["/bin/true"], big)).toThrow("cannot send the exec spec");
      // The number the control socket had is free again: whatever takes
      // it now must stay open (a second close would hit it).
      sentinel = openSync("/dev/null", "r");
      await Bun.sleep(50);
      expect(fstatSync(sentinel).isCharacterDevice()).toBe(true);
    } finally {
      (lib as { libforks_send_exec_spec: unknown }).libforks_send_exec_spec = real;
      if (sentinel >= 0) closeSync(sentinel);
    }
    expect(calls).toBe(1);
    // Nothing was forked for it, and spawning works again.
    expect((await within(server.spawn(["/bin/true"], big).exited, 5000, "next spawn")).exitCode).toBe(0);
  });

  test("a spawn request that cannot be sent closes the control socket once and forks nothing", async () => {
    const real = lib.libforks_spawn_async;
    let calls = 0;
    (lib as { libforks_spawn_async: unknown }).libforks_spawn_async = (...args: Parameters<typeof real>) => {
      calls++;
      return calls === 1 ? -2 /* WRITE_ERROR */ : real(...args);
    };
    let sentinel = -1;
    try {
      expect(() => server.spawn(["/bin/true"])).toThrow("cannot fork");
      sentinel = openSync("/dev/null", "r");
      await Bun.sleep(50);
      expect(fstatSync(sentinel).isCharacterDevice()).toBe(true);
    } finally {
      (lib as { libforks_spawn_async: unknown }).libforks_spawn_async = real;
      if (sentinel >= 0) closeSync(sentinel);
    }
    expect(calls).toBe(1);
    expect((await within(server.spawn(["/bin/true"]).exited, 5000, "next spawn")).exitCode).toBe(0);
  });
});
