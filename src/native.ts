// The one place that finds and loads the native library, and its symbol
// table. Everything else imports `native` from here.

import { dlopen, FFIType, ptr as pointerTo, read, suffix } from "bun:ffi";
import { accessSync, closeSync, constants as fsConstants, existsSync, readFileSync, writeSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { LibforksError, errnoName } from "./errors.ts";
import { isMusl } from "./libc.ts";
import { MINIMUM_BUN } from "./version.ts";

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

/** Throws UNSUPPORTED_RUNTIME unless this is Bun >= MINIMUM_BUN. */
function checkRuntime(): void {
  const version = typeof Bun === "undefined" ? undefined : Bun.version;
  if (version === undefined) {
    throw new LibforksError("UNSUPPORTED_RUNTIME", `libforks requires Bun >= ${MINIMUM_BUN}; run this program with bun`);
  }
  const have = version.split(/[.-]/).map(Number);
  const need = MINIMUM_BUN.split(".").map(Number);
  for (let i = 0; i < need.length; i++) {
    if ((have[i] ?? 0) > need[i]!) return;
    if ((have[i] ?? 0) < need[i]!) {
      throw new LibforksError("UNSUPPORTED_RUNTIME", `libforks requires Bun >= ${MINIMUM_BUN}; this is Bun ${version}`);
    }
  }
}

/** True for a path inside a `bun build --compile` executable. */
export function isEmbedded(path: string): boolean {
  return path.startsWith("/$bunfs/");
}

/** The path a `with { type: "file" }` import gave, made absolute. From
 * source, an installed package or a compiled executable it already is; a
 * `bun build --outdir` bundle gets a path relative to the bundle's own
 * directory ("./libforks-1a2b3c.so"), which must not be read relative to
 * the working directory. */
function assetPath(path: string): string {
  return isAbsolute(path) ? path : resolve(import.meta.dir, path);
}

/** Path of the library to load: LIBFORKS_PATH if set, else the prebuilt
 * one for this platform. Throws LOAD_ERROR for a LIBFORKS_PATH that names
 * no file, UNSUPPORTED_PLATFORM where no library is prebuilt. */
export function libraryPath(): string {
  const override = process.env.LIBFORKS_PATH;
  if (override) {
    if (!existsSync(override)) {
      throw new LibforksError("LOAD_ERROR", `LIBFORKS_PATH is ${override}, which does not exist; set it to a libforks ${suffix} file or unset it`);
    }
    return override;
  }
  const key = platformKey();
  const path = prebuilt[key];
  if (!path) {
    throw new LibforksError(
      "UNSUPPORTED_PLATFORM",
      `libforks has no prebuilt library for ${key} (prebuilt: ${Object.keys(prebuilt).join(", ")}); ` +
        `build one with 'python3 -m ziglang build' and set LIBFORKS_PATH to its ${suffix} file`,
    );
  }
  return assetPath(path);
}

/** Path of libforks-server, the program a clean server runs: with
 * LIBFORKS_PATH set, the libforks-server beside that library (one override
 * for both, so they always come from the same build); else the prebuilt
 * one for this platform. Inside a `bun build --compile` executable this is
 * an embedded /$bunfs/ path, which the kernel cannot execute (see
 * server-executable.ts). */
export function serverExecutablePath(): string {
  const override = process.env.LIBFORKS_PATH;
  if (override) {
    const beside = join(dirname(override), "libforks-server");
    if (!existsSync(beside)) {
      throw new LibforksError("LOAD_ERROR", `LIBFORKS_PATH is ${override}, but ${beside} (the clean server) does not exist`);
    }
    return beside;
  }
  const key = platformKey();
  const path = servers[key];
  if (!path) throw new LibforksError("UNSUPPORTED_PLATFORM", `libforks has no prebuilt libforks-server for ${key}`);
  return assetPath(path);
}

/** True if this process may execute the file at `path` (a `bun build
 * --outdir` bundle writes its assets without the exec bit). */
export function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
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
  libforks_kill_async: { args: [ptr, i32, i32, i32, ptr], returns: i32 },
  libforks_free_conn: { args: [ptr], returns: voidType },
  libforks_conn_share: { args: [ptr, ptr], returns: i32 },
  libforks_conn_token: { args: [ptr, ptr], returns: i32 },
  libforks_conn_attach: { args: [u64, ptr], returns: i32 },
  libforks_conn_token_drop: { args: [u64], returns: i32 },
  libforks_thread_adopt_conn: { args: [ptr], returns: i32 },
  libforks_thread_release_conn: { args: [ptr], returns: i32 },
  libforks_thread_adopt_fd: { args: [i32], returns: i32 },
  libforks_thread_release_fd: { args: [i32], returns: i32 },
  libforks_dup_cloexec: { args: [i32], returns: i32 },
  libforks_fork: { args: [ptr, ptr, ptr, ptr, ptr], returns: i32 },
  libforks_fork_symbol: { args: [ptr, ptr, ptr, ptr, ptr, ptr], returns: i32 },
  libforks_fork_async: { args: [ptr, ptr, ptr], returns: i32 },
  libforks_conn_fd: { args: [ptr], returns: i32 },
  libforks_wait_async: { args: [ptr, i32, i32, ptr], returns: i32 },
  libforks_wait_all_async: { args: [ptr, ptr], returns: i32 },
  libforks_stop_async: { args: [ptr, bool, bool, ptr], returns: i32 },
  libforks_stop_finish: { args: [ptr], returns: i32 },
  libforks_reply_read: { args: [i32, ptr], returns: i32 },
  libforks_events_open: { args: [ptr, ptr, ptr], returns: i32 },
  libforks_events_read: { args: [i32, ptr, usize, i32], returns: FFIType.i64_fast },
  libforks_send_event_request: { args: [ptr, ptr], returns: i32 },
  libforks_spawn_async: { args: [ptr, ptr], returns: i32 },
  libforks_spawn_outcome_in_answer: { args: [ptr], returns: bool },
  libforks_read_socket_fds: { args: [i32, ptr, usize, ptr, usize], returns: i32 },
  libforks_write_socket_fds: { args: [i32, ptr, usize, ptr, usize], returns: i32 },
  libforks_socketpair: { args: [ptr], returns: i32 },
  libforks_socket_hangup: { args: [i32], returns: i32 },
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

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function dlopenOrThrow(path: string, what: string) {
  try {
    return dlopen(path, symbols);
  } catch (error) {
    throw new LibforksError("LOAD_ERROR", `cannot load ${what}: ${message(error)}`, { syscall: "dlopen" });
  }
}

/** A library embedded in a compiled executable, loaded from a memfd
 * through /proc/self/fd: Bun's own way (extracting it into TMPDIR) fails
 * when TMPDIR is missing, read-only or mounted noexec. memfd_create comes
 * from the C library itself, since ours is not loaded yet (musl's dlopen
 * answers "libc.so.6" with its own libc too). Returns null where that
 * cannot work (no /proc, no memfd_create), with the reason. */
function dlopenThroughMemfd(path: string): { library: ReturnType<typeof dlopen<typeof symbols>> } | { reason: string } {
  let fd = -1;
  try {
    const libc = dlopen("libc.so.6", {
      memfd_create: { args: [FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
      __errno_location: { args: [], returns: FFIType.ptr },
    });
    let errno = 0;
    try {
      fd = libc.symbols.memfd_create(pointerTo(Buffer.from("libforks.so\0")), 1 /* MFD_CLOEXEC */);
      if (fd < 0) errno = read.i32(libc.symbols.__errno_location()!, 0);
    } finally {
      libc.close();
    }
    if (fd < 0) return { reason: `memfd_create failed (${errnoName(errno) ?? `errno ${errno}`})` };
    const bytes = readFileSync(path);
    for (let offset = 0; offset < bytes.length; ) offset += writeSync(fd, bytes, offset);
    // The mapping keeps the memfd's pages; the fd itself is not needed.
    return { library: dlopen(`/proc/self/fd/${fd}`, symbols) };
  } catch (error) {
    return { reason: message(error) };
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

function load() {
  checkRuntime();
  const path = libraryPath();
  if (process.env.LIBFORKS_PATH) return dlopenOrThrow(path, `LIBFORKS_PATH ${path}`);
  if (!isEmbedded(path)) {
    if (!existsSync(path)) {
      throw new LibforksError("LOAD_ERROR", `the prebuilt library ${path} is missing; reinstall libforks or set LIBFORKS_PATH to a libforks ${suffix} file`);
    }
    return dlopenOrThrow(path, path);
  }
  const viaMemfd = process.platform === "linux" ? dlopenThroughMemfd(path) : { reason: "no memfd on this platform" };
  if ("library" in viaMemfd) return viaMemfd.library;
  // Bun's own way: it extracts the file into BUN_TMPDIR or TMPDIR.
  try {
    return dlopen(path, symbols);
  } catch (error) {
    throw new LibforksError(
      "LOAD_ERROR",
      `cannot load the libforks library embedded in this executable: through a memfd: ${viaMemfd.reason}; ` +
        `extracted by Bun into a temporary directory: ${message(error)}. ` +
        `Set BUN_TMPDIR (or TMPDIR) to an existing, writable directory on a filesystem mounted with exec, ` +
        `or LIBFORKS_PATH to a libforks ${suffix} file on disk`,
      { syscall: "dlopen" },
    );
  }
}

export const native = load();
export const lib = native.symbols;
