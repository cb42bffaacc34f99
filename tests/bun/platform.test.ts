// Which prebuilt library the package picks. The C library is read from the
// program interpreter (PT_INTERP) of Bun's executable, which names musl's
// loader even where that loader is a symlink to libc.so and /proc/self/maps
// shows no "ld-musl-" (Debian's musl package). LIBFORKS_PATH is the one
// override: the clean server comes from beside that library.

import { describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { elfInterpreter, isMusl, isMuslInterpreter } from "../../src/libc.ts";
import { ForkServer, libraryPath, platformKey } from "../../src/index.ts";

/** A minimal 64-bit little-endian ELF header with one PT_INTERP entry. */
function elfWithInterpreter(interpreter: string | null): Buffer {
  const text = interpreter === null ? Buffer.alloc(0) : Buffer.from(`${interpreter}\0`, "latin1");
  const file = Buffer.alloc(64 + 56 + text.length);
  file.writeUInt32BE(0x7f454c46, 0);
  file[4] = 2; // ELFCLASS64
  file[5] = 1; // little-endian
  file[6] = 1;
  file.writeUInt16LE(3, 16); // ET_DYN
  file.writeBigUInt64LE(64n, 0x20); // e_phoff
  file.writeUInt16LE(64, 0x34);
  file.writeUInt16LE(56, 0x36); // e_phentsize
  file.writeUInt16LE(1, 0x38); // e_phnum
  file.writeUInt32LE(interpreter === null ? 1 : 3, 64); // PT_LOAD or PT_INTERP
  file.writeBigUInt64LE(120n, 64 + 8); // p_offset
  file.writeBigUInt64LE(BigInt(text.length), 64 + 32); // p_filesz
  text.copy(file, 120);
  return file;
}

describe("libc detection", () => {
  const dir = mkdtempSync(join(tmpdir(), "libforks-libc-"));
  const write = (name: string, bytes: Buffer) => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };

  test("reads the interpreter an ELF executable names", () => {
    try {
      expect(elfInterpreter(write("musl", elfWithInterpreter("/lib/ld-musl-aarch64.so.1")))).toBe("/lib/ld-musl-aarch64.so.1");
      expect(elfInterpreter(write("glibc", elfWithInterpreter("/lib64/ld-linux-x86-64.so.2")))).toBe("/lib64/ld-linux-x86-64.so.2");
      expect(elfInterpreter(write("static", elfWithInterpreter(null)))).toBeNull();
      expect(elfInterpreter(write("text", Buffer.from("#!/bin/sh\necho not an ELF file at all, long enough to be read\n")))).toBeNull();
      expect(elfInterpreter(write("short", Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1])))).toBeNull();
      expect(elfInterpreter(join(dir, "missing"))).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("musl's loader names, and only those, are musl", () => {
    expect(isMuslInterpreter("/lib/ld-musl-x86_64.so.1")).toBe(true);
    expect(isMuslInterpreter("/lib/ld-musl-aarch64.so.1")).toBe(true);
    expect(isMuslInterpreter("/lib/libc.musl-x86_64.so.1")).toBe(true);
    expect(isMuslInterpreter("/lib64/ld-linux-x86-64.so.2")).toBe(false);
    expect(isMuslInterpreter("/lib/ld-linux-aarch64.so.1")).toBe(false);
    expect(isMuslInterpreter("/opt/musl/lib/ld-linux-x86-64.so.2")).toBe(false);
  });

  test.skipIf(process.platform !== "linux")("this process: the key follows Bun's own interpreter, and that library loaded", () => {
    const interpreter = elfInterpreter(process.execPath);
    expect(interpreter).not.toBeNull();
    expect(isMusl()).toBe(isMuslInterpreter(interpreter!));
    expect(platformKey()).toBe(`linux-${process.arch}${isMusl() ? "-musl" : ""}`);
    if (!process.env.LIBFORKS_PATH) expect(libraryPath()).toContain(`/lib/${platformKey()}/`);
  });
});

describe("LIBFORKS_PATH", () => {
  test("a clean server runs the libforks-server beside the overriding library, and only that", async () => {
    const dir = mkdtempSync(join(tmpdir(), "libforks-override-"));
    const saved = process.env.LIBFORKS_PATH;
    try {
      const original = libraryPath();
      const library = join(dir, "libforks.so");
      copyFileSync(original, library);
      process.env.LIBFORKS_PATH = library;
      expect(() => ForkServer.start({ mode: "clean" })).toThrow(`${join(dir, "libforks-server")} (the clean server) does not exist`);
      copyFileSync(join(dirname(original), "libforks-server"), join(dir, "libforks-server"));
      await using server = ForkServer.start({ mode: "clean" });
      const event = await server.spawn(["/bin/sh", "-c", "exit 3"], { channel: false }).exited;
      expect(event.exitCode).toBe(3);
    } finally {
      if (saved === undefined) delete process.env.LIBFORKS_PATH;
      else process.env.LIBFORKS_PATH = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
