// Bad input gets named errors: a TypeError (ERR_INVALID_ARG_TYPE) or
// RangeError (ERR_INVALID_ARG_VALUE) naming the argument (what the helpers
// check for "INVALID_ARGUMENT"), LOAD_ERROR for libraries and symbols that
// cannot be loaded.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync } from "node:fs";
import { Channel, ForkServer, LibforksError, pipe, recvFds, socketPair } from "../../src/index.ts";
import { buildSharedLibrary, expectRejectsLibforks, expectThrowsArgument, expectThrowsLibforks, fdCount, native, within } from "./helpers.ts";

let server: ForkServer;
beforeAll(() => {
  server = ForkServer.start();
});
afterAll(async () => {
  await server.stop();
});

// The fork/spawn calls below must fail before anything is created.
const bad = <T>(fn: () => T) => fn as () => unknown;

describe("INVALID_ARGUMENT names the argument", () => {
  test("LibforksError is an Error with a code", () => {
    const error = expectThrowsLibforks(() => server.fork(undefined as never), "INVALID_ARGUMENT", "entrypoint");
    expect(error).toBeInstanceOf(Error);
    expect(error.errno).toBeUndefined();
    expect(error.stack).toContain("errors.test.ts");
  });

  test("fork: bad entrypoints", () => {
    expectThrowsLibforks(bad(() => server.fork(undefined as never)), "INVALID_ARGUMENT", "entrypoint");
    expectThrowsLibforks(bad(() => server.fork(null as never)), "INVALID_ARGUMENT", "entrypoint");
    expectThrowsLibforks(bad(() => server.fork(0)), "INVALID_ARGUMENT", "entrypoint");
    expectThrowsLibforks(bad(() => server.fork(-5)), "INVALID_ARGUMENT", "entrypoint");
    expectThrowsLibforks(bad(() => server.fork(1.5)), "INVALID_ARGUMENT", "entrypoint");
    expectThrowsLibforks(bad(() => server.fork(0n)), "INVALID_ARGUMENT", "entrypoint");
    expectThrowsLibforks(bad(() => server.fork("exit7" as never)), "INVALID_ARGUMENT", "entrypoint");
    expectThrowsLibforks(bad(() => server.fork({} as never)), "INVALID_ARGUMENT", "entrypoint");
    expectThrowsLibforks(bad(() => server.fork({ ptr: 0 })), "INVALID_ARGUMENT", "entrypoint.ptr");
    expectThrowsLibforks(bad(() => server.fork({ ptr: "x" } as never)), "INVALID_ARGUMENT", "entrypoint.ptr");
    expectThrowsLibforks(bad(() => server.fork({ symbol: 5 } as never)), "INVALID_ARGUMENT", "entrypoint.symbol");
    expectThrowsLibforks(bad(() => server.fork({ library: null, symbol: "" })), "INVALID_ARGUMENT", "entrypoint.symbol");
    expectThrowsLibforks(bad(() => server.fork({ library: 7, symbol: "x" } as never)), "INVALID_ARGUMENT", "entrypoint.library");
    expectThrowsLibforks(bad(() => server.fork({ library: "", symbol: "x" })), "INVALID_ARGUMENT", "entrypoint.library");
  });

  test("fork: bad options", () => {
    expectThrowsLibforks(bad(() => server.fork(native.exit0, null as never)), "INVALID_ARGUMENT", "options");
    expectThrowsLibforks(bad(() => server.fork(native.exit0, { socket: "yes" } as never)), "INVALID_ARGUMENT", "options.socket");
    expectThrowsLibforks(bad(() => server.fork(native.exit0, { fds: 3 } as never)), "INVALID_ARGUMENT", "options.fds");
    expectThrowsLibforks(bad(() => server.fork(native.exit0, { fds: [-1] })), "INVALID_ARGUMENT", "options.fds[0]");
    expectThrowsLibforks(bad(() => server.fork(native.exit0, { fds: [0, 1.5] })), "INVALID_ARGUMENT", "options.fds[1]");
    expectThrowsLibforks(bad(() => server.fork(native.exit0, { fds: ["1"] } as never)), "INVALID_ARGUMENT", "options.fds[0]");
    expectThrowsLibforks(bad(() => server.fork(native.exit0, { fds: Array(254).fill(0) })), "INVALID_ARGUMENT", "options.fds");
  });

  test("a rejected fork creates no child and leaks no fd", async () => {
    const before = fdCount();
    expectThrowsLibforks(bad(() => server.fork(native.exit0, { fds: [-1] })), "INVALID_ARGUMENT");
    expectThrowsLibforks(bad(() => server.fork({ symbol: 5 } as never)), "INVALID_ARGUMENT");
    expect(fdCount()).toBe(before);
    // No child was created: nothing to wait for.
    await expectRejectsLibforks(server.wait(-1, { noHang: true }), "WAIT_ERROR");
  });

  test("argument errors are Node's: TypeError for a wrong type, RangeError for a wrong value", async () => {
    expectThrowsArgument(() => server.fork(undefined as never), TypeError, "ERR_INVALID_ARG_TYPE", "entrypoint");
    expectThrowsArgument(() => server.fork(0), RangeError, "ERR_INVALID_ARG_VALUE", "entrypoint");
    expectThrowsArgument(() => server.fork(native.exit0, { socket: "yes" } as never), TypeError, "ERR_INVALID_ARG_TYPE", "options.socket");
    expectThrowsArgument(() => ForkServer.start({ mode: "fast" } as never), RangeError, "ERR_INVALID_ARG_VALUE", "options.mode");
    const child = server.fork(native.sleep_long);
    try {
      expectThrowsArgument(() => child.kill("SIGNOPE" as never), TypeError, "ERR_INVALID_ARG_TYPE", "signal");
      expectThrowsArgument(() => child.kill(12345), RangeError, "ERR_INVALID_ARG_VALUE", "signal");
    } finally {
      child.kill("SIGKILL");
    }
    await child.exited;
    let rejected: unknown = null;
    await server.wait(0).catch((error) => (rejected = error));
    expect(rejected).toBeInstanceOf(RangeError);
    expectThrowsArgument(() => recvFds("3" as never), TypeError, "ERR_INVALID_ARG_TYPE", "fd");
    expectThrowsArgument(() => recvFds(-1), RangeError, "ERR_INVALID_ARG_VALUE", "fd");
  });

  test("spawn: bad argv", () => {
    expectThrowsArgument(bad(() => server.spawn([])), RangeError, "ERR_INVALID_ARG_VALUE", "argv");
    expectThrowsArgument(bad(() => server.spawn(undefined as never)), TypeError, "ERR_INVALID_ARG_TYPE", "argv");
    expectThrowsArgument(bad(() => server.spawn("/bin/true" as never)), TypeError, "ERR_INVALID_ARG_TYPE", "argv");
    expectThrowsArgument(bad(() => server.spawn(["/bin/echo", 5 as never])), TypeError, "ERR_INVALID_ARG_TYPE", "argv[1]");
    expectThrowsArgument(bad(() => server.spawn(["/bin/echo", "a\0b"])), RangeError, "ERR_INVALID_ARG_VALUE", "argv[1]");
  });

  test("spawn: bad options", () => {
    expectThrowsArgument(bad(() => server.spawn(["x"], { stdio: "bogus" as never })), RangeError, "ERR_INVALID_ARG_VALUE", "options.stdio");
    expectThrowsArgument(bad(() => server.spawn(["x"], { stdio: ["inherit", "bogus", "inherit"] as never })), RangeError, "ERR_INVALID_ARG_VALUE", "options.stdio[1]");
    // A short stdio array is Bun.spawn's: missing entries keep their defaults.
    expect(server.spawn(["/bin/true"], { stdio: ["inherit", "inherit"], channel: false }).stdout).toBeUndefined();
    expectThrowsArgument(bad(() => server.spawn(["x"], { stdio: -1 })), RangeError, "ERR_INVALID_ARG_VALUE", "options.stdio");
    expectThrowsArgument(bad(() => server.spawn(["x"], { stdio: 2.5 })), RangeError, "ERR_INVALID_ARG_VALUE", "options.stdio");
    expectThrowsArgument(bad(() => server.spawn(["x"], { fds: { 5: -1 } })), RangeError, "ERR_INVALID_ARG_VALUE", "options.fds[5]");
    expectThrowsArgument(bad(() => server.spawn(["x"], { fds: { 5: 1.5 } })), RangeError, "ERR_INVALID_ARG_VALUE", "options.fds[5]");
    expectThrowsArgument(bad(() => server.spawn(["x"], { fds: { 1: 0 } })), RangeError, "ERR_INVALID_ARG_VALUE", "options.fds[1]");
    expectThrowsArgument(bad(() => server.spawn(["x"], { fds: { [-3]: 0 } })), RangeError, "ERR_INVALID_ARG_VALUE", "options.fds[-3]");
    expectThrowsArgument(bad(() => server.spawn(["x"], { fds: [4] as never })), TypeError, "ERR_INVALID_ARG_TYPE", "options.fds");
    expectThrowsArgument(bad(() => server.spawn(["x"], { env: { A: 5 } as never })), TypeError, "ERR_INVALID_ARG_TYPE", "options.env.A");
    expectThrowsArgument(bad(() => server.spawn(["x"], { env: { "A=B": "c" } })), RangeError, "ERR_INVALID_ARG_VALUE", "options.env.A=B");
    expectThrowsArgument(bad(() => server.spawn(["x"], { env: "PATH=/bin" as never })), TypeError, "ERR_INVALID_ARG_TYPE", "options.env");
    expectThrowsArgument(bad(() => server.spawn(["x"], { cwd: "" })), RangeError, "ERR_INVALID_ARG_VALUE", "options.cwd");
    expectThrowsArgument(bad(() => server.spawn(["x"], { cwd: 5 as never })), TypeError, "ERR_INVALID_ARG_TYPE", "options.cwd");
    expectThrowsArgument(bad(() => server.spawn(["x"], { channel: "no" as never })), TypeError, "ERR_INVALID_ARG_TYPE", "options.channel");
    expectThrowsArgument(bad(() => server.spawn(["x"], null as never)), TypeError, "ERR_INVALID_ARG_TYPE", "options");
  });

  test('kill / killAll: unknown signal "SIGNOPE"', async () => {
    const child = server.fork(native.sleep_long);
    try {
      expectThrowsLibforks(() => child.kill("SIGNOPE" as never), "INVALID_ARGUMENT", "signal");
      expectThrowsLibforks(() => child.kill("SIGNOPE" as never), "INVALID_ARGUMENT", "SIGNOPE");
      expectThrowsLibforks(() => child.kill(12345), "INVALID_ARGUMENT", "signal");
      expectThrowsLibforks(() => child.kill(-1), "INVALID_ARGUMENT", "signal");
      expectThrowsLibforks(() => child.kill({} as never), "INVALID_ARGUMENT", "signal");
      await expectRejectsLibforks(server.killAll("SIGNOPE"), "INVALID_ARGUMENT", "signal");
      await expectRejectsLibforks(server.killAll(99999), "INVALID_ARGUMENT", "signal");
      // The child was not signalled by any of these.
      expect(await server.wait(child.pid, { noHang: true })).toBeNull();
    } finally {
      child.kill("SIGKILL");
    }
    expect((await within(child.exited, 2000, "exited")).signal).toBe("SIGKILL");
    // Still checked once the child is known to have exited.
    expectThrowsLibforks(() => child.kill("SIGNOPE" as never), "INVALID_ARGUMENT", "signal");
  });

  test("ForkServer.start: bad options", () => {
    expectThrowsLibforks(bad(() => ForkServer.start(null as never)), "INVALID_ARGUMENT", "options");
    expectThrowsLibforks(bad(() => ForkServer.start({ mode: "bogus" as never })), "INVALID_ARGUMENT", "options.mode");
  });

  test("wait: bad pid", async () => {
    await expectRejectsLibforks(server.wait("12" as never), "INVALID_ARGUMENT", "pid");
  });

  test("Channel and raw fd helpers: bad fds and data", async () => {
    expectThrowsLibforks(() => new Channel(-1), "INVALID_ARGUMENT", "fd");
    const [a, b] = socketPair();
    const channel = new Channel(a);
    // send() rejects, never throws: a caller that only awaits it sees the error.
    await expectRejectsLibforks(channel.send(5 as never), "INVALID_ARGUMENT", "data");
    await expectRejectsLibforks(channel.send("x", { fds: [-1] }), "INVALID_ARGUMENT", "options.fds[0]");
    await expectRejectsLibforks(channel.send("x", { fds: [2.5] }), "INVALID_ARGUMENT", "options.fds[0]");
    await expectRejectsLibforks(channel.send("x", null as never), "INVALID_ARGUMENT", "options");
    expectThrowsLibforks(bad(() => recvFds(b, 0)), "INVALID_ARGUMENT", "maxBytes");
    expectThrowsLibforks(bad(() => recvFds(b, 10, 300)), "INVALID_ARGUMENT", "maxFds");
    channel.close();
    closeSync(b);
    // A pipe is not a socket: a channel on it fails to send, with a code.
    const [r, w] = pipe();
    const onPipe = new Channel(w);
    const error = await expectRejectsLibforks(onPipe.send("x"), "WRITE_ERROR");
    expect(error.errnoCode).toBe("ENOTSOCK");
    onPipe.close();
    closeSync(r);
  });
});

describe("LOAD_ERROR for what cannot be loaded", () => {
  test("a missing library", () => {
    const error = expectThrowsLibforks(() => server.fork({ library: "/nonexistent/libnothing.so", symbol: "entry" }), "LOAD_ERROR");
    expect(error.message).toContain("/nonexistent/libnothing.so");
  });

  test("a missing symbol in a real library", () => {
    const library = buildSharedLibrary();
    const error = expectThrowsLibforks(() => server.fork({ library, symbol: "no_such_entry" }), "LOAD_ERROR");
    expect(error.message).toContain("no_such_entry");
  });

  test("a missing symbol of a library an earlier fork used is still refused", async () => {
    // The first fork's check is remembered; another symbol is checked anew.
    const ok = server.fork({ library: "libc.so.6", symbol: "_exit" });
    await within(ok.exited, 5000, "exited");
    expectThrowsLibforks(() => server.fork({ library: "libc.so.6", symbol: "no_such_libc_entry" }), "LOAD_ERROR", "no_such_libc_entry");
  });

  test("a missing symbol in the server's image (library: null)", () => {
    expectThrowsLibforks(() => server.fork({ library: null, symbol: "no_such_entry_anywhere" }), "LOAD_ERROR", "no_such_entry_anywhere");
  });

  test("a file that is not a library", () => {
    expectThrowsLibforks(() => server.fork({ library: "/etc/hostname", symbol: "x" }), "LOAD_ERROR");
  });

  test("after load errors, the server still forks", async () => {
    expect(() => server.fork({ library: "/nonexistent/x.so", symbol: "x" })).toThrow(LibforksError);
    expect((await within(server.fork(native.exit7).exited, 2000, "exited")).exitCode).toBe(7);
  });
});
