// The one place that finds and loads the native library, and its symbol
// table. Everything else imports `native` from here.

import { dlopen, FFIType, suffix } from "bun:ffi";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { isMusl } from "./libc.ts";

// `with { type: "file" }` makes `bun build --compile` embed each library;
// at run time the import is the file's path (a /$bunfs/ path inside a
// compiled executable, which dlopen accepts).
import linuxX64 from "../lib/linux-x64/libforks.so" with { type: "file" };
import linuxArm64 from "../lib/linux-arm64/libforks.so" with { type: "file" };
import linuxX64Musl from "../lib/linux-x64-musl/libforks.so" with { type: "file" };
import linuxArm64Musl from "../lib/linux-arm64-musl/libforks.so" with { type: "file" };
import darwinX64 from "../lib/darwin-x64/libforks.dylib" with { type: "file" };
import darwinArm64 from "../lib/darwin-arm64/libforks.dylib" with { type: "file" };

import serverLinuxX64 from "../lib/linux-x64/libforks-server" with { type: "file" };
import serverLinuxArm64 from "../lib/linux-arm64/libforks-server" with { type: "file" };
import serverLinuxX64Musl from "../lib/linux-x64-musl/libforks-server" with { type: "file" };
import serverLinuxArm64Musl from "../lib/linux-arm64-musl/libforks-server" with { type: "file" };
import serverDarwinX64 from "../lib/darwin-x64/libforks-server" with { type: "file" };
import serverDarwinArm64 from "../lib/darwin-arm64/libforks-server" with { type: "file" };

const servers: Record<string, string> = {
  "linux-x64": serverLinuxX64,
  "linux-arm64": serverLinuxArm64,
  "linux-x64-musl": serverLinuxX64Musl,
  "linux-arm64-musl": serverLinuxArm64Musl,
  "darwin-x64": serverDarwinX64,
  "darwin-arm64": serverDarwinArm64,
};

const prebuilt: Record<string, string> = {
  "linux-x64": linuxX64,
  "linux-arm64": linuxArm64,
  "linux-x64-musl": linuxX64Musl,
  "linux-arm64-musl": linuxArm64Musl,
  "darwin-x64": darwinX64,
  "darwin-arm64": darwinArm64,
};

/** The platform key of this process: "linux-x64", "linux-arm64-musl", ... */
export function platformKey(): string {
  const base = `${process.platform}-${process.arch}`;
  return isMusl() ? `${base}-musl` : base;
}

/** Path of the library to load: LIBFORKS_PATH if set, else the prebuilt
 * one for this platform. Throws a clear error on an unsupported platform. */
export function libraryPath(): string {
  const override = process.env.LIBFORKS_PATH;
  if (override) {
    if (!existsSync(override)) {
      throw new Error(`libforks: LIBFORKS_PATH points to ${override}, which does not exist`);
    }
    return override;
  }
  const key = platformKey();
  const path = prebuilt[key];
  if (!path) {
    throw new Error(
      `libforks: no prebuilt library for ${key} (supported: ${Object.keys(prebuilt).join(", ")}); ` +
        `build one with 'zig build' and set LIBFORKS_PATH to its ${suffix} file`,
    );
  }
  return path;
}

/** Path of libforks-server, the program a clean server runs: with
 * LIBFORKS_PATH set, the libforks-server beside that library (one override
 * for both, so they always come from the same build); else the prebuilt
 * one for this platform. Inside a `bun build --compile` executable this is
 * an embedded /$bunfs/ path, which the kernel cannot execute (see conn.ts). */
export function serverExecutablePath(): string {
  const override = process.env.LIBFORKS_PATH;
  if (override) {
    const beside = join(dirname(override), "libforks-server");
    if (!existsSync(beside)) {
      throw new Error(`libforks: LIBFORKS_PATH is ${override}, but ${beside} (the clean server) does not exist`);
    }
    return beside;
  }
  const key = platformKey();
  const path = servers[key];
  if (!path) throw new Error(`libforks: no prebuilt libforks-server for ${key}`);
  return path;
}

const i32 = FFIType.i32;
const u64 = FFIType.u64;
const ptr = FFIType.ptr;
const cstring = FFIType.cstring;
const bool = FFIType.bool;
const usize = FFIType.u64; // size_t on the 64-bit targets
const voidType = FFIType.void;

// libforks_ServerConn is a struct holding one pointer, passed by value: on
// x86-64 SysV and AArch64 that is passed exactly like the pointer itself.
const symbols = {
  libforks_start: { args: [ptr], returns: i32 },
  libforks_start_ex: { args: [ptr, ptr], returns: i32 },
  libforks_memfd: { args: [ptr], returns: i32 },
  libforks_get_server_pid: { args: [ptr], returns: i32 },
  libforks_kill_all: { args: [ptr, i32], returns: i32 },
  libforks_kill_all_async: { args: [ptr, i32, ptr], returns: i32 },
  libforks_free_conn: { args: [ptr], returns: voidType },
  libforks_conn_share: { args: [ptr, ptr], returns: i32 },
  libforks_fork: { args: [ptr, ptr, ptr, ptr, ptr], returns: i32 },
  libforks_fork_symbol: { args: [ptr, ptr, ptr, ptr, ptr, ptr], returns: i32 },
  libforks_fork_async: { args: [ptr, ptr, ptr], returns: i32 },
  libforks_conn_fd: { args: [ptr], returns: i32 },
  libforks_wait_async: { args: [ptr, i32, i32, ptr], returns: i32 },
  libforks_wait_all_async: { args: [ptr, ptr], returns: i32 },
  libforks_stop_async: { args: [ptr, bool, bool, ptr], returns: i32 },
  libforks_stop_finish: { args: [ptr], returns: i32 },
  libforks_reply_read: { args: [i32, ptr], returns: i32 },
  libforks_read_socket_fds: { args: [i32, ptr, usize, ptr, usize], returns: i32 },
  libforks_write_socket_fds: { args: [i32, ptr, usize, ptr, usize], returns: i32 },
  libforks_socketpair: { args: [ptr], returns: i32 },
  libforks_pipe: { args: [ptr], returns: i32 },
  libforks_exec_entrypoint: { args: [ptr, i32], returns: voidType },
  libforks_send_exec_spec: { args: [i32, ptr, ptr, ptr, ptr, ptr, ptr, usize], returns: i32 },
  libforks_read_exec_result: { args: [i32, ptr], returns: i32 },
  libforks_doorbell_open: { args: [ptr], returns: i32 },
  libforks_doorbell_close: { args: [i32], returns: i32 },
  libforks_watch: { args: [i32, i32, i32, u64], returns: i32 },
  libforks_unwatch: { args: [i32, i32], returns: i32 },
  libforks_result_string: { args: [i32], returns: cstring },
  libforks_last_errno: { args: [], returns: i32 },
  libforks_set_nonblocking: { args: [i32, bool], returns: i32 },
  libforks_version: { args: [], returns: cstring },
} as const;

function load() {
  const path = libraryPath();
  try {
    return dlopen(path, symbols);
  } catch (error) {
    throw new Error(`libforks: cannot load ${path}: ${(error as Error).message}`);
  }
}

export const native = load();
export const lib = native.symbols;
