// server.fork: native children from function pointers and { library, symbol }.

import { cc, FFIType, ptr } from "bun:ffi";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, openSync } from "node:fs";
import { join } from "node:path";
import { ExitEvent, ForkServer, pipe, type LibforksError } from "../../src/index.ts";
import { buildSharedLibrary, expectThrowsLibforks, fixtures, native, patience, pointerOf, readAllSync, within } from "./helpers.ts";

let server: ForkServer;
beforeAll(() => {
  server = ForkServer.start();
});
afterAll(async () => {
  await server.stop();
});

describe("fork", () => {
  test("an entry that exits 7: exitCode 7, signal null", async () => {
    const child = server.fork(native.exit7);
    expect(child.pid).toBeGreaterThan(0);
    expect(child.pid).not.toBe(process.pid);
    expect(child.pid).not.toBe(server.pid);
    expect(child.exit).toBeNull();
    const event = await within(child.exited, 5000, "exited");
    expect(event).toBeInstanceOf(ExitEvent);
    expect(event.pid).toBe(child.pid);
    expect(event.exitCode).toBe(7);
    expect(event.signal).toBeNull();
    expect(event.signalNumber).toBeNull();
    expect(event.success).toBe(false);
    expect(event.status).toBe(7 << 8);
    expect(child.exitCode).toBe(7);
    expect(child.exit).toBe(event);
    expect(String(event)).toBe(`pid ${child.pid} exited with 7`);
  });

  test("the entrypoint may be a bun:ffi symbol, its .ptr, or the pointer as a number or bigint", async () => {
    const pointer = pointerOf(native.exit7);
    const children = [
      server.fork(native.exit7),
      server.fork({ ptr: pointer }),
      server.fork(pointer),
      server.fork(BigInt(pointer)),
    ];
    const events = await within(Promise.all(children.map((c) => c.exited)), 5000, "exited");
    expect(events.map((e) => e.exitCode)).toEqual([7, 7, 7, 7]);
    expect(new Set(children.map((c) => c.pid)).size).toBe(4);
  });

  test("an entry that returns exits 0", async () => {
    const event = await within(server.fork(native.return_normally).exited, 5000, "exited");
    expect(event.exitCode).toBe(0);
    expect(event.success).toBe(true);
  });

  test('kill("SIGKILL"): signal "SIGKILL", exitCode null', async () => {
    const child = server.fork(native.sleep_long);
    child.kill("SIGKILL");
    const event = await within(child.exited, 5000, "exited");
    expect(event.pid).toBe(child.pid);
    expect(event.signal).toBe("SIGKILL");
    expect(event.signalNumber).toBe(9);
    expect(event.exitCode).toBeNull();
    expect(event.success).toBe(false);
    expect(child.exitCode).toBeNull();
    expect(String(event)).toBe(`pid ${child.pid} killed by SIGKILL`);
  });

  test("kill() defaults to SIGTERM; numbers and short names are accepted", async () => {
    const a = server.fork(native.sleep_long);
    const b = server.fork(native.sleep_long);
    const c = server.fork(native.sleep_long);
    a.kill();
    b.kill(10); // SIGUSR1
    c.kill("INT" as never); // short names work at run time; the type asks for NodeJS.Signals
    const [ea, eb, ec] = await within(Promise.all([a.exited, b.exited, c.exited]), 5000, "exited");
    expect(ea.signal).toBe("SIGTERM");
    expect(eb.signal).toBe("SIGUSR1");
    expect(ec.signal).toBe("SIGINT");
  });

  test("kill() after the exit is known does nothing", async () => {
    const child = server.fork(native.exit0);
    await child.exited;
    expect(() => child.kill("SIGKILL")).not.toThrow();
    expect(child.exitCode).toBe(0);
  });

  test("{ library, symbol }: a shared library built now is loaded in the child", async () => {
    const library = buildSharedLibrary();
    const child = server.fork({ library, symbol: "lib_exit42" });
    const event = await within(child.exited, 5000, "exited");
    expect(event.exitCode).toBe(42);
  });

  test("{ library, symbol } with socket: true gives the entry a socket fd", async () => {
    const library = buildSharedLibrary();
    const withSocket = server.fork({ library, symbol: "lib_socket_check" }, { socket: true });
    const without = server.fork({ library, symbol: "lib_socket_check" });
    expect(withSocket.channel).toBeDefined();
    expect(without.channel).toBeUndefined();
    expect((await within(withSocket.exited, 5000, "exited")).exitCode).toBe(43);
    expect((await within(without.exited, 5000, "exited")).exitCode).toBe(44);
    withSocket.channel!.close();
  });

  test("fds option: the entry reads the fds message and writes through the passed pipes", async () => {
    const [read1, write1] = pipe();
    const [read2, write2] = pipe();
    const child = server.fork(native.write_to_passed_fds, { fds: [write1, write2] });
    expect(child.channel).toBeDefined();
    // Ours are ours: closing them leaves the child's copies open.
    closeSync(write1);
    closeSync(write2);
    const event = await within(child.exited, 5000, "exited");
    expect(event.exitCode).toBe(0);
    expect(readAllSync(read1)).toBe("fds=2");
    expect(readAllSync(read2)).toBe("fds=2");
    closeSync(read1);
    closeSync(read2);
    child.channel!.close();
  });

  test("children of a snapshot of Bun malloc, printf and dlopen (forked with _Fork where the C library has it)", async () => {
    const library = openSync(buildSharedLibrary(), "r");
    const outputs: number[] = [];
    const children = [];
    for (let i = 0; i < 50; i++) {
      const [readEnd, writeEnd] = pipe();
      const child = server.fork(native.libc_in_child, { fds: [library, writeEnd] });
      closeSync(writeEnd);
      outputs.push(readEnd);
      children.push(child);
    }
    const events = await within(Promise.all(children.map((c) => c.exited)), 20_000, "exited");
    expect(events.map((e) => e.exitCode)).toEqual(children.map(() => 0));
    const lines = outputs.map((fd) => readAllSync(fd));
    expect(lines).toEqual(children.map((c) => `ok ${c.pid} lib_exit42\n`));
    for (const fd of [library, ...outputs]) closeSync(fd);
    for (const child of children) child.channel!.close();
  });

  test("fds option: a child that exits without reading them never makes fork() throw", async () => {
    // The fds message must be queued on the socket before the child can be
    // gone; sent after the fork request, it meets EPIPE when the child was
    // quicker. Most visible on a clean server, where forks are cheap.
    await using clean = ForkServer.start({ mode: "clean" });
    const library = buildSharedLibrary();
    const [readEnd, writeEnd] = pipe();
    const failures: string[] = [];
    const children = [];
    try {
      for (const [target, entry] of [
        [clean, { library, symbol: "lib_exit0" }],
        [server, native.exit0],
      ] as const) {
        for (let i = 0; i < 600; i++) {
          try {
            children.push(target.fork(entry, { fds: [writeEnd] }));
          } catch (error) {
            failures.push(`${(error as LibforksError).code} ${(error as LibforksError).errnoCode}`);
          }
          if (i % 50 === 49) await Bun.sleep(0);
        }
      }
      const events = await within(Promise.all(children.map((c) => c.exited)), 20000, "exits");
      expect(events.every((e) => e.exitCode === 0)).toBe(true);
      expect(failures).toEqual([]);
    } finally {
      for (const child of children) child.channel?.close();
      closeSync(readEnd);
      closeSync(writeEnd);
    }
  }, patience(30000));

  test("a child speaks the Channel wire format: it exits with the code it was sent", async () => {
    const child = server.fork(native.exit_with_received_code, { socket: true });
    await child.channel!.send(Uint8Array.of(33));
    expect((await within(child.exited, 5000, "exited")).exitCode).toBe(33);
    child.channel!.close();
  });

  test("children are copies of the process at start: code compiled after start is refused, not run", async () => {
    const late = cc({
      source: join(fixtures, "late.c"),
      symbols: { late_exit5: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.void } },
    }).symbols;
    // The pointer leads nowhere in the server's snapshot: refused at the
    // call instead of a child that dies of SIGSEGV.
    expectThrowsLibforks(() => server.fork(late.late_exit5), "INVALID_ARGUMENT", "entrypoint");
    // A server started now has it.
    await using fresh = ForkServer.start();
    expect((await within(fresh.fork(late.late_exit5).exited, 5000, "exited")).exitCode).toBe(5);
  });

  test("an entrypoint number outside code mapped at start is refused by name, not run", () => {
    const data = new Uint8Array(64);
    expectThrowsLibforks(() => server.fork(4096), "INVALID_ARGUMENT", "entrypoint");
    expectThrowsLibforks(() => server.fork(Number(ptr(data))), "INVALID_ARGUMENT", "entrypoint");
    expectThrowsLibforks(() => server.fork({ ptr: 0x7fff_0000_0000 }), "INVALID_ARGUMENT", "entrypoint.ptr");
    expectThrowsLibforks(() => server.fork(4096n), "INVALID_ARGUMENT", "entrypoint");
  });
});
