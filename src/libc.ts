// Which C library this process runs on, for choosing the prebuilt library:
// a musl program cannot load a glibc-linked library, nor the reverse.

import { closeSync, existsSync, openSync, readFileSync, readSync } from "node:fs";

const PT_INTERP = 3;

function readAt(fd: number, length: number, position: number): Buffer {
  const buffer = Buffer.alloc(length);
  const got = readSync(fd, buffer, 0, length, position);
  return buffer.subarray(0, got);
}

/** The program interpreter (PT_INTERP) recorded in a 64-bit little-endian
 * ELF executable, e.g. "/lib/ld-musl-x86_64.so.1"; null when the file is
 * not one or has none (a static program). */
export function elfInterpreter(path: string): string | null {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return null;
  }
  try {
    const header = readAt(fd, 64, 0);
    if (header.length < 64 || header.readUInt32BE(0) !== 0x7f454c46) return null;
    if (header[4] !== 2 || header[5] !== 1) return null; // ELFCLASS64, ELFDATA2LSB
    const tableOffset = Number(header.readBigUInt64LE(0x20));
    const entrySize = header.readUInt16LE(0x36);
    const count = header.readUInt16LE(0x38);
    if (entrySize < 56 || count === 0 || count > 4096) return null;
    const table = readAt(fd, entrySize * count, tableOffset);
    for (let i = 0; (i + 1) * entrySize <= table.length; i++) {
      const entry = table.subarray(i * entrySize);
      if (entry.readUInt32LE(0) !== PT_INTERP) continue;
      const offset = Number(entry.readBigUInt64LE(8));
      const size = Number(entry.readBigUInt64LE(32));
      if (size === 0 || size > 4096) return null;
      const text = readAt(fd, size, offset).toString("latin1");
      const end = text.indexOf("\0");
      return end < 0 ? text : text.slice(0, end);
    }
    return null;
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/** musl's dynamic loader is /lib/ld-musl-<arch>.so.1 (Alpine also links
 * programs against it as libc.musl-<arch>.so.1); glibc's is ld-linux-*. */
export function isMuslInterpreter(interpreter: string): boolean {
  const name = interpreter.slice(interpreter.lastIndexOf("/") + 1);
  return name.startsWith("ld-musl-") || name.startsWith("libc.musl-");
}

/** True when this process runs on musl libc. The interpreter named in
 * Bun's own executable decides: it holds whether the loader is a file
 * (Alpine) or a symlink to libc.so (Debian's musl, where /proc/self/maps
 * shows only "libc.so"). Static or unreadable executables fall back to
 * the mapped files and /etc/alpine-release. */
export function isMusl(): boolean {
  if (process.platform !== "linux") return false;
  const interpreter = elfInterpreter(process.execPath);
  if (interpreter !== null) return isMuslInterpreter(interpreter);
  try {
    const maps = readFileSync("/proc/self/maps", "utf8");
    return maps.includes("/ld-musl-") || maps.includes("/libc.musl-");
  } catch {
    return existsSync("/etc/alpine-release");
  }
}
